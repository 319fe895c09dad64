/*
 * kernels.c: the compute kernels of `cargo bench -p orrery-exec`, without libc or I/O, so the
 * benchmark compares the kernels themselves: natively in Rust (a line-for-line port in
 * crates/orrery-exec/benches/exec.rs) against this C compiled to wasm32.
 *
 * mandelbrot: floating point (the render loop of ../mandelbrot/mandelbrot.c)
 * collatz:    integer only (longest Collatz chain below a limit)
 *
 * Build: ../build.sh
 */
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define MAX_PIXELS (1024 * 1024)

static uint8_t image[MAX_PIXELS * 3];

/* Renders into a static buffer and returns its address; w*h must be <= MAX_PIXELS. */
EXPORT("mandelbrot") uint32_t mandelbrot(unsigned w, unsigned h, unsigned max_iter) {
    if ((uint64_t)w * h > MAX_PIXELS) __builtin_trap();
    uint8_t *px = image;
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
    return (uint32_t)(uintptr_t)image;
}

/* Returns (n << 32) | steps for the n below `limit` with the longest chain. */
EXPORT("collatz") uint64_t collatz(uint32_t limit) {
    uint64_t best = 0, best_n = 0;
    for (uint32_t n = 1; n < limit; n++) {
        uint64_t x = n, steps = 0;
        while (x != 1) {
            x = (x & 1) ? 3 * x + 1 : x >> 1;
            steps++;
        }
        if (steps > best) {
            best = steps;
            best_n = n;
        }
    }
    return best_n << 32 | best;
}
