/*
 * heat.c: a stepper job in C. Solves the 2D heat equation on a square plate by Jacobi
 * iteration: the top edge is held at 100 degrees, the other edges at 0, and a hot spot sits
 * in the middle. Each step runs `sweeps` Jacobi sweeps; the output is a colour PPM image of
 * the temperature field.
 *
 * input  : text "WIDTH HEIGHT SWEEPS" (defaults 96 96 50; each clamped to a sane range)
 * state  : struct header, then WIDTH*HEIGHT doubles (row-major temperatures)
 * output : binary PPM (P6)
 *
 * Stepper ABI (docs/workloads.md): export memory, alloc, init, step, output; every result is
 * returned as (ptr << 32) | len. Each call runs in a fresh instance, so malloc never needs a
 * matching free.
 *
 * Build: ./build.sh (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

#define MAGIC 0x54414548u /* "HEAT" */
#define MAX_SIDE 512
#define MAX_SWEEPS 5000

struct header {
    uint32_t magic;
    uint32_t width;
    uint32_t height;
    uint32_t sweeps;
    uint64_t steps_done;
};

static uint64_t pack(const void *ptr, uint32_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | len;
}

/* Reading a bad state is a hard error: trap, and the host reports it. */
static void fail(void) { __builtin_trap(); }

EXPORT("alloc") void *orrery_alloc(uint32_t len) {
    void *p = malloc(len ? len : 1);
    if (!p) fail();
    return p;
}

static uint32_t parse_uint(const char **cursor, const char *end, uint32_t dflt) {
    const char *p = *cursor;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    if (p == end || *p < '0' || *p > '9') { *cursor = p; return dflt; }
    uint32_t v = 0;
    while (p < end && *p >= '0' && *p <= '9' && v < 100000000u) v = v * 10 + (uint32_t)(*p++ - '0');
    *cursor = p;
    return v;
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static size_t state_len(uint32_t w, uint32_t h) {
    return sizeof(struct header) + (size_t)w * h * sizeof(double);
}

static void boundary(double *t, uint32_t w, uint32_t h) {
    for (uint32_t x = 0; x < w; x++) { t[x] = 100.0; t[(size_t)(h - 1) * w + x] = 0.0; }
    for (uint32_t y = 1; y < h; y++) { t[(size_t)y * w] = 0.0; t[(size_t)y * w + w - 1] = 0.0; }
    /* A hot spot in the middle, a tenth of the side across. */
    uint32_t r = w / 20 + 1;
    for (uint32_t y = h / 2 - r; y <= h / 2 + r; y++)
        for (uint32_t x = w / 2 - r; x <= w / 2 + r; x++) t[(size_t)y * w + x] = 80.0;
}

EXPORT("init") uint64_t orrery_init(const char *in, uint32_t len) {
    const char *cur = in, *end = in + len;
    uint32_t w = clamp(parse_uint(&cur, end, 96), 8, MAX_SIDE);
    uint32_t h = clamp(parse_uint(&cur, end, 96), 8, MAX_SIDE);
    uint32_t sweeps = clamp(parse_uint(&cur, end, 50), 1, MAX_SWEEPS);
    size_t n = state_len(w, h);
    uint8_t *st = orrery_alloc((uint32_t)n);
    struct header hd = {MAGIC, w, h, sweeps, 0};
    memcpy(st, &hd, sizeof hd);
    double *t = (double *)(st + sizeof hd);
    memset(t, 0, (size_t)w * h * sizeof(double));
    boundary(t, w, h);
    return pack(st, (uint32_t)n);
}

static struct header read_header(const uint8_t *st, uint32_t len) {
    struct header hd;
    if (len < sizeof hd) fail();
    memcpy(&hd, st, sizeof hd);
    if (hd.magic != MAGIC || hd.width > MAX_SIDE || hd.height > MAX_SIDE || hd.width < 8 ||
        hd.height < 8 || len != state_len(hd.width, hd.height))
        fail();
    return hd;
}

EXPORT("step") uint64_t orrery_step(int64_t k, const uint8_t *st, uint32_t len) {
    (void)k; /* the state carries its own progress */
    struct header hd = read_header(st, len);
    uint32_t w = hd.width, h = hd.height;
    size_t cells = (size_t)w * h;
    double *a = orrery_alloc((uint32_t)(cells * sizeof(double)));
    double *b = orrery_alloc((uint32_t)(cells * sizeof(double)));
    memcpy(a, st + sizeof hd, cells * sizeof(double));
    memcpy(b, a, cells * sizeof(double));
    for (uint32_t s = 0; s < hd.sweeps; s++) {
        for (uint32_t y = 1; y + 1 < h; y++)
            for (uint32_t x = 1; x + 1 < w; x++) {
                size_t i = (size_t)y * w + x;
                b[i] = 0.25 * (a[i - 1] + a[i + 1] + a[i - w] + a[i + w]);
            }
        boundary(b, w, h);
        double *tmp = a; a = b; b = tmp;
    }
    uint8_t *out = orrery_alloc((uint32_t)len);
    hd.steps_done += 1;
    memcpy(out, &hd, sizeof hd);
    memcpy(out + sizeof hd, a, cells * sizeof(double));
    return pack(out, len);
}

static uint8_t channel(double v) {
    if (v <= 0.0) return 0;
    if (v >= 1.0) return 255;
    return (uint8_t)(v * 255.0);
}

EXPORT("output") uint64_t orrery_output(const uint8_t *st, uint32_t len) {
    struct header hd = read_header(st, len);
    uint32_t w = hd.width, h = hd.height;
    const double *t = (const double *)(st + sizeof hd);
    char head[32];
    int hl = 0;
    /* "P6\n<w> <h>\n255\n" without printf, to keep the module small. */
    const char *p6 = "P6\n";
    while (*p6) head[hl++] = *p6++;
    uint32_t dims[2] = {w, h};
    for (int d = 0; d < 2; d++) {
        char digits[10];
        int nd = 0;
        uint32_t v = dims[d];
        do { digits[nd++] = (char)('0' + v % 10); v /= 10; } while (v);
        while (nd) head[hl++] = digits[--nd];
        head[hl++] = d == 0 ? ' ' : '\n';
    }
    const char *maxv = "255\n";
    while (*maxv) head[hl++] = *maxv++;
    size_t n = (size_t)hl + (size_t)w * h * 3;
    uint8_t *out = orrery_alloc((uint32_t)n);
    memcpy(out, head, (size_t)hl);
    uint8_t *px = out + hl;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        double v = t[i] / 100.0; /* 0..1, black -> red -> yellow -> white */
        *px++ = channel(3.0 * v);
        *px++ = channel(3.0 * v - 1.0);
        *px++ = channel(3.0 * v - 2.0);
    }
    return pack(out, (uint32_t)n);
}
