/* test_tensor_types.c: the element types of src/tensor.c.
 *
 * f16: all 65536 halves round-trip through f32 and agree with the compiler's _Float16 (where
 * it has one) both ways, on every rounding midpoint and a sweep of f32 bit patterns; hand-checked
 * cases (ties to even, subnormals, overflow). bf16: all 65536 round-trip, a double-precision
 * reference for round-to-nearest-even on a sweep, NaN kept quiet. Q8_0 and Q4_0: hand-worked
 * blocks, the nibble layout, and the error bound of each block on random data, with the largest
 * error relative to its bound printed.
 */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static uint32_t rng_state = 12345;
static float rand_uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 23) - 1.0f;
}

#ifdef __FLT16_MAX__
static uint16_t hw_to_f16(float f) { _Float16 h = (_Float16)f; uint16_t u; memcpy(&u, &h, 2); return u; }
static float hw_from_f16(uint16_t u) { _Float16 h; memcpy(&h, &u, 2); return (float)h; }
#endif

static void test_fp16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sm_fp16_to_fp32((uint16_t)h);
        uint16_t back = sm_fp32_to_fp16(f);
        int is_nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (is_nan) {
            if (!isnan(f) || ((back >> 10) & 0x1f) != 0x1f || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000)) bad++;
        } else if (back != h) {
            bad++;
        }
#ifdef __FLT16_MAX__
        if (!is_nan && f32_bits(f) != f32_bits(hw_from_f16((uint16_t)h))) bad++;
#endif
    }
    CHECK(bad == 0, "%d of 65536 halves do not round-trip", bad);

    struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800},
        {65504.0f, 0x7bff},                   /* largest half */
        {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, /* the midpoint to 65536 rounds (to even) to inf */
        {1e10f, 0x7c00}, {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},                   /* smallest normal */
        {0x1p-24f, 0x0001},                   /* smallest subnormal */
        {0x1p-25f, 0x0000},                   /* half of it: a tie, to even (0) */
        {0x1.8p-24f, 0x0002},                 /* 1.5 subnormal units: a tie, to even (2) */
        {0x1.000002p-25f, 0x0001},            /* just above the tie */
        {0x1.ff8p-15f, 0x03ff},               /* largest subnormal */
        {0x1.ffcp-15f, 0x0400},               /* between it and 2^-14: a tie, to even */
        {1.0f + 0x1p-11f, 0x3c00},            /* tie between 1 and 1+2^-10: to even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* tie between 1+2^-10 and 1+2^-9: to even */
        {0x1.002002p+0f, 0x3c01},             /* one f32 step above that tie */
        {0.1f, 0x2e66}, {3.14159265f, 0x4248},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(sm_fp32_to_fp16(cases[i].f) == cases[i].h, "fp16(%a) = 0x%04x, want 0x%04x", cases[i].f,
              sm_fp32_to_fp16(cases[i].f), cases[i].h);
    CHECK((sm_fp32_to_fp16(NAN) & 0x7c00) == 0x7c00 && (sm_fp32_to_fp16(NAN) & 0x3ff), "NaN stays NaN");

#ifdef __FLT16_MAX__
    /* Every midpoint between neighbouring halves, and one f32 step either side of it. */
    bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float lo = sm_fp16_to_fp32((uint16_t)h), hi = h + 1 == 0x7c00 ? 65536.0f : sm_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2); /* exact in f32 */
        float probes[] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int p = 0; p < 3; p++)
            for (int s = 0; s < 2; s++) {
                float f = s ? -probes[p] : probes[p];
                if (sm_fp32_to_fp16(f) != hw_to_f16(f)) bad++;
            }
    }
    /* A sweep over f32 bit patterns with a prime stride (NaN payloads aside). */
    long n = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 1021, n++) {
        float f = bits_f32((uint32_t)u);
        if (isnan(f)) continue;
        if (sm_fp32_to_fp16(f) != hw_to_f16(f)) bad++;
    }
    CHECK(bad == 0, "%d conversions differ from _Float16", bad);
    printf("fp16: 65536 halves round-trip; midpoints and %ld f32 patterns agree with _Float16\n", n);
#else
    printf("fp16: 65536 halves round-trip (no _Float16 in this compiler: hand-checked cases only)\n");
#endif
}

/* bf16 by round-to-nearest-even in double precision, for finite f. */
static uint16_t ref_bf16(float f) {
    uint32_t u = f32_bits(f), lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double v = f, a = bits_f32(lo), b = (hi & 0x7fffffffu) >= 0x7f800000u ? copysign(0x1p128, v) : bits_f32(hi);
    double da = fabs(v - a), db = fabs(b - v);
    if (da < db || (da == db && !((lo >> 16) & 1))) return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sm_bf16_to_fp32((uint16_t)h);
        CHECK(f32_bits(f) == h << 16, "bf16 0x%04x widens wrongly", h);
        uint16_t back = sm_fp32_to_bf16(f);
        if (isnan(f) ? !isnan(sm_bf16_to_fp32(back)) || !(back & 0x40) : back != h) bad++;
    }
    CHECK(bad == 0, "%d of 65536 bf16 values do not round-trip", bad);
    bad = 0;
    long n = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 1031, n++) {
        float f = bits_f32((uint32_t)u);
        if (!isnan(f) && sm_fp32_to_bf16(f) != ref_bf16(f)) bad++;
    }
    CHECK(bad == 0, "%d of %ld f32 patterns round differently from the reference", bad, n);
    struct { uint32_t f; uint16_t h; } cases[] = {
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: a tie, to even */
        {0x3f818000u, 0x3f82}, /* a tie, to even (up) */
        {0x3f808001u, 0x3f81}, /* just above a tie */
        {0x7f7fffffu, 0x7f80}, /* the largest float rounds to inf */
        {0x7f800001u, 0x7fc0}, /* a signalling NaN comes back quiet */
        {0xff800000u, 0xff80}, {0x80000000u, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(sm_fp32_to_bf16(bits_f32(cases[i].f)) == cases[i].h, "bf16(0x%08x) = 0x%04x, want 0x%04x", cases[i].f,
              sm_fp32_to_bf16(bits_f32(cases[i].f)), cases[i].h);
    printf("bf16: 65536 values round-trip; %ld f32 patterns agree with a double-precision reference\n", n);
}

static void test_q8_0(void) {
    /* Hand-worked: amax 63.5 gives d = 0.5, so x = q/2 exactly. */
    float x[SM_QK], y[SM_QK];
    for (int j = 0; j < SM_QK; j++) x[j] = (float)(j - 16) * 0.5f;
    x[0] = 63.5f, x[1] = -63.5f, x[2] = 0.75f; /* 0.75/0.5 = 1.5 rounds away from zero: 2 */
    sm_block_q8_0 b;
    sm_quantize_row(SM_TYPE_Q8_0, &b, x, SM_QK);
    CHECK(b.d == sm_fp32_to_fp16(0.5f) && b.qs[0] == 127 && b.qs[1] == -127 && b.qs[2] == 2 && b.qs[3] == -13,
          "q8_0 hand block: d 0x%04x q %d %d %d %d", b.d, b.qs[0], b.qs[1], b.qs[2], b.qs[3]);
    sm_dequantize_row(SM_TYPE_Q8_0, y, &b, SM_QK);
    CHECK(y[0] == 63.5f && y[1] == -63.5f && y[2] == 1.0f && y[5] == -5.5f, "q8_0 hand block dequantized");
    memset(x, 0, sizeof x);
    sm_quantize_row(SM_TYPE_Q8_0, &b, x, SM_QK);
    sm_dequantize_row(SM_TYPE_Q8_0, y, &b, SM_QK);
    CHECK(b.d == 0 && y[7] == 0.0f, "q8_0 of zeros");

    /* Random blocks at many scales: |x - x'| <= d/2 + 127 |d - fp16(d)| per element. */
    enum { NB = 2000 };
    static float src[NB * SM_QK], out[NB * SM_QK];
    static sm_block_q8_0 q[NB];
    for (int bl = 0; bl < NB; bl++) {
        float scale = powf(10.0f, (float)(bl % 9) - 4.0f);
        for (int j = 0; j < SM_QK; j++) src[bl * SM_QK + j] = rand_uniform() * scale;
    }
    sm_quantize_row(SM_TYPE_Q8_0, q, src, NB * SM_QK);
    sm_dequantize_row(SM_TYPE_Q8_0, out, q, NB * SM_QK);
    double worst = 0;
    for (int bl = 0; bl < NB; bl++) {
        float amax = 0;
        for (int j = 0; j < SM_QK; j++) amax = fmaxf(amax, fabsf(src[bl * SM_QK + j]));
        double d = amax / 127.0, dh = sm_fp16_to_fp32(q[bl].d);
        double bound = d / 2 + 127 * fabs(d - dh) + 1e-6 * amax;
        for (int j = 0; j < SM_QK; j++) {
            double err = fabs((double)src[bl * SM_QK + j] - out[bl * SM_QK + j]);
            if (err / bound > worst) worst = err / bound;
        }
    }
    CHECK(worst <= 1.0, "q8_0 error %.3f of its bound", worst);
    printf("q8_0: %d random blocks, largest error %.3f of the block bound d/2 + 127|d - fp16(d)|\n", NB, worst);
}

static void test_q4_0(void) {
    /* Hand-worked: the element of largest magnitude is +8, so d = -1 and q = floor(8.5 - x), at most 15. */
    float x[SM_QK], y[SM_QK];
    for (int j = 0; j < SM_QK; j++) x[j] = 0.0f;
    x[0] = 8.0f;   /* q 0: -1 * (0 - 8) = 8 */
    x[1] = -8.0f;  /* q 16, clamped to 15: 7 */
    x[2] = 3.0f;   /* q 5: 3 */
    x[3] = 2.5f;   /* q floor(6.0) = 6: 2 */
    x[16] = -1.0f; /* q 9: -1, the high nibble of byte 0 */
    sm_block_q4_0 b;
    sm_quantize_row(SM_TYPE_Q4_0, &b, x, SM_QK);
    CHECK(b.d == sm_fp32_to_fp16(-1.0f), "q4_0 d 0x%04x", b.d);
    CHECK(b.qs[0] == (0 | 9 << 4) && (b.qs[1] & 15) == 15 && (b.qs[2] & 15) == 5 && (b.qs[3] & 15) == 6 && (b.qs[4] & 15) == 8,
          "q4_0 nibbles %02x %02x %02x %02x %02x", b.qs[0], b.qs[1], b.qs[2], b.qs[3], b.qs[4]);
    sm_dequantize_row(SM_TYPE_Q4_0, y, &b, SM_QK);
    CHECK(y[0] == 8.0f && y[1] == -7.0f && y[2] == 3.0f && y[3] == 2.0f && y[16] == -1.0f && y[5] == 0.0f,
          "q4_0 hand block dequantized: %g %g %g %g %g", y[0], y[1], y[2], y[3], y[16]);

    /* Random blocks: |x - x'| <= |d|/2 + 8 |d - fp16(d)|, or |d| + ... where x/d rounds past 7 (the clamp). */
    enum { NB = 2000 };
    static float src[NB * SM_QK], out[NB * SM_QK];
    static sm_block_q4_0 q[NB];
    for (int bl = 0; bl < NB; bl++) {
        float scale = powf(10.0f, (float)(bl % 9) - 4.0f);
        for (int j = 0; j < SM_QK; j++) src[bl * SM_QK + j] = rand_uniform() * scale;
    }
    sm_quantize_row(SM_TYPE_Q4_0, q, src, NB * SM_QK);
    sm_dequantize_row(SM_TYPE_Q4_0, out, q, NB * SM_QK);
    double worst = 0;
    for (int bl = 0; bl < NB; bl++) {
        const float *s = src + bl * SM_QK;
        float amax = 0, max = 0;
        for (int j = 0; j < SM_QK; j++) if (amax < fabsf(s[j])) amax = fabsf(s[j]), max = s[j];
        double d = max / -8.0, dh = sm_fp16_to_fp32(q[bl].d);
        for (int j = 0; j < SM_QK; j++) {
            double t = s[j] / d, bound = (t >= 7.5 ? fabs(d) : fabs(d) / 2) + 8 * fabs(d - dh) + 1e-6 * amax;
            double err = fabs((double)s[j] - out[bl * SM_QK + j]);
            if (err / bound > worst) worst = err / bound;
        }
    }
    CHECK(worst <= 1.0, "q4_0 error %.3f of its bound", worst);
    printf("q4_0: %d random blocks, largest error %.3f of the block bound |d|/2 (|d| at the clamp) + 8|d - fp16(d)|\n", NB, worst);
}

static void test_type_table(void) {
    CHECK(sizeof(sm_block_q8_0) == 34 && sizeof(sm_block_q4_0) == 18, "block sizes");
    static const int types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
    for (int i = 0; i < 5; i++) {
        CHECK(sm_type_supported(types[i]) && sm_type_from_name(sm_type_name(types[i])) == types[i], "type %d", types[i]);
    }
    CHECK(sm_type_from_name("Q8_0") == SM_TYPE_Q8_0 && sm_type_from_name("q5_k") == -1, "names");
    CHECK(!sm_type_supported(3) && sm_type_block_elems(3) == 0 && !strcmp(sm_type_name(3), "?"), "unsupported");
    size_t n;
    CHECK(sm_type_row_bytes(SM_TYPE_Q8_0, 64, &n) == 0 && n == 68, "q8_0 row");
    CHECK(sm_type_row_bytes(SM_TYPE_Q4_0, 96, &n) == 0 && n == 54, "q4_0 row");
    CHECK(sm_type_row_bytes(SM_TYPE_BF16, 3, &n) == 0 && n == 6, "bf16 row");
    CHECK(sm_type_row_bytes(SM_TYPE_Q8_0, 31, &n) == -1, "q8_0 of 31");
    CHECK(sm_type_row_bytes(SM_TYPE_F32, INT64_MAX, &n) == -1, "overflow");
    CHECK(sm_type_row_bytes(3, 32, &n) == -1, "unsupported row");
}

int main(void) {
    test_type_table();
    test_fp16();
    test_bf16();
    test_q8_0();
    test_q4_0();
    if (failures) { fprintf(stderr, "test_tensor_types: %d failures\n", failures); return 1; }
    printf("test_tensor_types: ok\n");
    return 0;
}
