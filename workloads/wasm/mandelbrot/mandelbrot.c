/*
 * mandelbrot.c: a WASI command job. Reads "WIDTH HEIGHT MAX_ITER" from stdin (defaults
 * 640 480 500) and writes a colour PPM (P6) image of the Mandelbrot set to stdout.
 *
 * An ordinary C program: main(), stdin, stdout. Inside Orrery it runs as one step of a
 * `command` job, with no files, no clock and no network.
 *
 * Build: ./build.sh (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned read_uint(unsigned dflt, unsigned lo, unsigned hi) {
    unsigned v;
    if (scanf("%u", &v) != 1) return dflt;
    return v < lo ? lo : v > hi ? hi : v;
}

/* The kernel. benches/exec.rs has a line-for-line Rust port of it for the native baseline. */
static void render(uint8_t *px, unsigned w, unsigned h, unsigned max_iter) {
    const double x0 = -2.5, x1 = 1.0;
    const double half_h = (x1 - x0) * h / w / 2.0;
    const double dx = (x1 - x0) / w, dy = 2.0 * half_h / h;
    for (unsigned y = 0; y < h; y++) {
        double ci = -half_h + y * dy;
        for (unsigned x = 0; x < w; x++) {
            double cr = x0 + x * dx;
            double zr = 0.0, zi = 0.0;
            unsigned i = 0;
            while (i < max_iter && zr * zr + zi * zi <= 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                i++;
            }
            double t = (double)i / max_iter;
            double u = 1.0 - t;
            *px++ = (uint8_t)(9.0 * u * t * t * t * 255.0);
            *px++ = (uint8_t)(15.0 * u * u * t * t * 255.0);
            *px++ = (uint8_t)(8.5 * u * u * u * t * 255.0);
        }
    }
}

int main(void) {
    unsigned w = read_uint(640, 1, 4096);
    unsigned h = read_uint(480, 1, 4096);
    unsigned max_iter = read_uint(500, 1, 100000);
    size_t n = (size_t)w * h * 3;
    uint8_t *px = malloc(n);
    if (!px) {
        fprintf(stderr, "out of memory for a %ux%u image\n", w, h);
        return 1;
    }
    render(px, w, h, max_iter);
    printf("P6\n%u %u\n255\n", w, h);
    fwrite(px, 1, n, stdout);
    return 0;
}
