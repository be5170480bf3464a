/* kernels_avx512.c: the AVX-512 path of the kernels (kernels_isa.h), for CPUs with AVX-512 F, BW,
 * VL, DQ and VNNI. Compiled for that instruction set whatever the build's -march; kernels.c
 * calls it only on a CPU that has it.
 *
 * Float weights (F32, F16, BF16): one token is a GEMV that streams the weight rows once, one
 * after another; more tokens pack a panel of 32 weight rows, converted to f32 and transposed
 * (k-major), interleave the tokens 8 at a time, and run an 8-token x 32-row register tile of
 * broadcast FMAs over them.
 *
 * Quantized weights (Q8_0, Q4_0): the activations are quantized to Q8_0 exactly as the reference
 * does, then laid out two blocks at a time (`xq_pair`) for vpdpbusd, which multiplies unsigned by
 * signed bytes. The weights are made unsigned (Q8_0: q + 128; Q4_0: the raw nibble q, that is
 * (q - 8) + 8) and the activation pair carries the correction -offset * sum(x), four bytes per
 * int32 lane, as the dot's starting value, so each lane holds an exact integer partial dot. A
 * 4-row x 4-token tile shares every decoded weight pair among the tokens; one token streams the
 * rows one after another. One token against Q4_0 weights, the decode step, takes four blocks a
 * step instead (`xq_quad`): the activations laid out in the order of the weights' nibbles, so a
 * word permute of the raw 72 bytes yields 64 nibble bytes to mask and shift, with no block-by-
 * block shuffling.
 */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__) /* clang ignores #pragma GCC target */
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#endif

#include "kernels_isa.h"

#include "tensor.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* ---- vector exp ---------------------------------------------------------------------------- */

/* e^x to about 2 ulp: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r, then 2^n. */
INLINE __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

INLINE __mmask16 tail_mask(int m) { return (__mmask16)((1u << m) - 1); }

/* The lane sums of a, b, c, d, in that order: one transposed reduction for four vectors. */
INLINE __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static void avx512_softmax(float *x, int n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n) vmax = _mm512_mask_max_ps(vmax, tail_mask(n - i), vmax, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), max));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (i < n) _mm512_mask_storeu_ps(x + i, tail_mask(n - i), _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(n - i), x + i), inv));
}

INLINE __m512 swiglu16(__m512 g, __m512 u) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

static void avx512_swiglu(float *h, const float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(h + i, swiglu16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(h + i, m, swiglu16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

/* ---- attention ------------------------------------------------------------------------------ */

/* 16 scores q.k_j * scale for keys j0..j0+15 into att, eight keys at a time (eight row
 * pointers and accumulators leave the compiler registers to spare). */
INLINE void scores16(float *att, const float *q, const float *k, int j0, int kv_stride, int head_dim, float scale) {
    const int full = head_dim / 16;
    const __mmask16 mt = tail_mask(head_dim % 16);
    for (int h8 = 0; h8 < 16; h8 += 8) {
        const float *kb = k + (size_t)(j0 + h8) * kv_stride;
        __m512 s[8];
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++) s[u] = _mm512_setzero_ps();
        for (int c = 0; c < full; c++) { /* eight independent FMAs per step */
            const __m512 qc = _mm512_loadu_ps(q + 16 * c);
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) s[u] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kb + (size_t)u * kv_stride + 16 * c), s[u]);
        }
        if (mt) {
            const __m512 qc = _mm512_maskz_loadu_ps(mt, q + 16 * full);
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) s[u] = _mm512_fmadd_ps(qc, _mm512_maskz_loadu_ps(mt, kb + (size_t)u * kv_stride + 16 * full), s[u]);
        }
        const __m256 sum = _mm256_insertf128_ps(_mm256_castps128_ps256(reduce4(s[0], s[1], s[2], s[3])), reduce4(s[4], s[5], s[6], s[7]), 1);
        _mm256_storeu_ps(att + j0 + h8, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
    }
}

/* Scores of H (1..4) query heads (q_h at q + h*head_dim, their rows at att + h*n_kv) against the
 * four keys j0..j0+3: each key load serves all the heads. */
INLINE void scores4(float *att, int n_kv, const float *q, const float *k, int j0, int kv_stride, int head_dim,
                    float scale, const int H) {
    const float *kb = k + (size_t)j0 * kv_stride;
    __m512 s[4][4];
#pragma GCC unroll 4
    for (int h = 0; h < H; h++) s[h][0] = s[h][1] = s[h][2] = s[h][3] = _mm512_setzero_ps();
    for (int c = 0; c < head_dim; c += 16) {
        const __mmask16 m = head_dim - c >= 16 ? 0xffff : tail_mask(head_dim - c);
        __m512 kv[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) kv[u] = _mm512_maskz_loadu_ps(m, kb + (size_t)u * kv_stride + c);
#pragma GCC unroll 4
        for (int h = 0; h < H; h++) {
            const __m512 qc = _mm512_maskz_loadu_ps(m, q + (size_t)h * head_dim + c);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) s[h][u] = _mm512_fmadd_ps(qc, kv[u], s[h][u]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < H; h++)
        _mm_storeu_ps(att + (size_t)h * n_kv + j0, _mm_mul_ps(reduce4(s[h][0], s[h][1], s[h][2], s[h][3]), _mm_set1_ps(scale)));
}

INLINE float score1(const float *q, const float *kj, int head_dim, float scale) {
    __m512 s = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= head_dim; c += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(kj + c), s);
    if (c < head_dim) {
        const __mmask16 m = tail_mask(head_dim - c);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + c), _mm512_maskz_loadu_ps(m, kj + c), s);
    }
    return _mm512_reduce_add_ps(s) * scale;
}

/* out_i = softmax(q_i K^T) V for H (1..4) query heads sharing the keys, 64 outputs per pass: each
 * value row is loaded once for all the heads. */
INLINE void weighted_values(float *out, const float *v, const float *att, int n_kv, int kv_stride, int head_dim, const int H) {
    for (int i0 = 0; i0 < head_dim; i0 += 64) {
        __mmask16 m[4];
        for (int c = 0; c < 4; c++) {
            const int left = head_dim - i0 - 16 * c;
            m[c] = left >= 16 ? 0xffff : left > 0 ? tail_mask(left) : 0;
        }
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int h = 0; h < H; h++) acc[h][0] = acc[h][1] = acc[h][2] = acc[h][3] = _mm512_setzero_ps();
        for (int j = 0; j < n_kv; j++) {
            const float *vj = v + (size_t)j * kv_stride + i0;
            const __m512 v0 = _mm512_maskz_loadu_ps(m[0], vj), v1 = _mm512_maskz_loadu_ps(m[1], vj + 16);
            const __m512 v2 = _mm512_maskz_loadu_ps(m[2], vj + 32), v3 = _mm512_maskz_loadu_ps(m[3], vj + 48);
#pragma GCC unroll 4
            for (int h = 0; h < H; h++) {
                const __m512 p = _mm512_set1_ps(att[(size_t)h * n_kv + j]);
                acc[h][0] = _mm512_fmadd_ps(p, v0, acc[h][0]);
                acc[h][1] = _mm512_fmadd_ps(p, v1, acc[h][1]);
                acc[h][2] = _mm512_fmadd_ps(p, v2, acc[h][2]);
                acc[h][3] = _mm512_fmadd_ps(p, v3, acc[h][3]);
            }
        }
#pragma GCC unroll 4
        for (int h = 0; h < H; h++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) _mm512_mask_storeu_ps(out + (size_t)h * head_dim + i0 + 16 * c, m[c], acc[h][c]);
    }
}

static void avx512_attention_heads(float *out, const float *q, const float *k, const float *v, float *att,
                                   int n_q, int n_kv, int kv_stride, int head_dim, float scale) {
    int j = 0;
    if (n_q == 1) /* one head: sixteen keys at a time keep more FMAs in flight */
        for (; j + 16 <= n_kv; j += 16) scores16(att, q, k, j, kv_stride, head_dim, scale);
    for (; j + 4 <= n_kv; j += 4)
        for (int h = 0; h < n_q; h += 4) {
            float *a = att + (size_t)h * n_kv;
            const float *qh = q + (size_t)h * head_dim;
            switch (n_q - h < 4 ? n_q - h : 4) {
            case 4: scores4(a, n_kv, qh, k, j, kv_stride, head_dim, scale, 4); break;
            case 3: scores4(a, n_kv, qh, k, j, kv_stride, head_dim, scale, 3); break;
            case 2: scores4(a, n_kv, qh, k, j, kv_stride, head_dim, scale, 2); break;
            default: scores4(a, n_kv, qh, k, j, kv_stride, head_dim, scale, 1); break;
            }
        }
    for (; j < n_kv; j++)
        for (int h = 0; h < n_q; h++) att[(size_t)h * n_kv + j] = score1(q + (size_t)h * head_dim, k + (size_t)j * kv_stride, head_dim, scale);
    for (int h = 0; h < n_q; h++) avx512_softmax(att + (size_t)h * n_kv, n_kv);
    for (int h = 0; h < n_q; h += 4) {
        const float *a = att + (size_t)h * n_kv;
        float *o = out + (size_t)h * head_dim;
        switch (n_q - h < 4 ? n_q - h : 4) {
        case 4: weighted_values(o, v, a, n_kv, kv_stride, head_dim, 4); break;
        case 3: weighted_values(o, v, a, n_kv, kv_stride, head_dim, 3); break;
        case 2: weighted_values(o, v, a, n_kv, kv_stride, head_dim, 2); break;
        default: weighted_values(o, v, a, n_kv, kv_stride, head_dim, 1); break;
        }
    }
}

/* ---- float weights -------------------------------------------------------------------------- */

/* 16 weights from element i of a row of `type`, as f32; lanes outside m read as 0. */
INLINE __m512 load_w16(const void *w, const int type, size_t i, __mmask16 m) {
    if (type == SM_TYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    if (type == SM_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* BF16 */
}

/* y[o] for one token: row o of W against x, in four partial sums. A GEMV is bound by memory:
 * taking one row after another keeps the reads a single sequential stream, which the hardware
 * prefetcher serves best (measured: interleaving four rows, or software prefetch, was slower). */
INLINE void gemv_row(float *y, const float *x, const void *w, const int type, int in, int o) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 64 <= in; i += 64) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[u] = _mm512_fmadd_ps(load_w16(w, type, (size_t)o * in + i + 16 * u, 0xffff), _mm512_loadu_ps(x + i + 16 * u), acc[u]);
    }
    for (; i < in; i += 16) {
        const __mmask16 m = in - i >= 16 ? 0xffff : tail_mask(in - i);
        acc[0] = _mm512_fmadd_ps(load_w16(w, type, (size_t)o * in + i, m), _mm512_maskz_loadu_ps(m, x + i), acc[0]);
    }
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

INLINE void gemv_rows(float *y, const float *x, const void *w, const int type, int in, int o0, int o1) {
    for (int o = o0; o < o1; o++) gemv_row(y, x, w, type, in, o);
}

#define PANEL 32 /* weight rows per packed panel (two zmm) */
#define TILE_T 8 /* tokens per register tile */
_Static_assert(PANEL == SM_ROW_CHUNK, "one packed panel per chunk of rows");
_Static_assert(TILE_T == SM_X_TILE, "prepare_x interleaves one register tile of tokens");

/* Stores the transpose of the 8 x 8 block r: column i (r[0][i] .. r[7][i]) at dst + i*stride. */
INLINE void store_transposed8(float *dst, size_t stride, const __m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * stride, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * stride, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

/* 8 weights from element i of a row of `type`, as f32. */
INLINE __m256 load_w8(const void *w, const int type, size_t i) {
    if (type == SM_TYPE_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (type == SM_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* BF16 */
}

/* p (in, PANEL) = rows o0..o0+rows of W, converted to f32 and transposed; missing rows are 0. */
INLINE void pack_panel_type(float *p, const void *w, const int type, int in, int o0, int rows) {
    int k0 = 0;
    for (; k0 + 8 <= in; k0 += 8)
        for (int r0 = 0; r0 < PANEL; r0 += 8) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] = r0 + i < rows ? load_w8(w, type, (size_t)(o0 + r0 + i) * in + k0) : _mm256_setzero_ps();
            store_transposed8(p + (size_t)k0 * PANEL + r0, PANEL, r);
        }
    for (; k0 < in; k0++)
        for (int r = 0; r < PANEL; r++) {
            const size_t i = (size_t)(o0 + r) * in + k0;
            p[(size_t)k0 * PANEL + r] = r >= rows ? 0.0f
                : type == SM_TYPE_F32 ? ((const float *)w)[i]
                : type == SM_TYPE_F16 ? sm_fp16_to_fp32(((const uint16_t *)w)[i]) : sm_bf16_to_fp32(((const uint16_t *)w)[i]);
        }
}

static void pack_panel(float *p, const void *w, int type, int in, int o0, int rows) {
    switch (type) {
    case SM_TYPE_F32: pack_panel_type(p, w, SM_TYPE_F32, in, o0, rows); break;
    case SM_TYPE_F16: pack_panel_type(p, w, SM_TYPE_F16, in, o0, rows); break;
    default: pack_panel_type(p, w, SM_TYPE_BF16, in, o0, rows); break;
    }
}

/* xp (in, TILE_T) = rows 0..rows-1 of x (rows, in) interleaved; missing rows are 0. */
static void pack_x_tile(float *xp, const float *x, int in, int rows) {
    int k0 = 0;
    for (; k0 + 8 <= in; k0 += 8) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(x + (size_t)i * in + k0) : _mm256_setzero_ps();
        store_transposed8(xp + (size_t)k0 * TILE_T, TILE_T, r);
    }
    for (; k0 < in; k0++)
        for (int i = 0; i < TILE_T; i++) xp[(size_t)k0 * TILE_T + i] = i < rows ? x[(size_t)i * in + k0] : 0.0f;
}

/* y[t][0..PANEL) for R <= TILE_T tokens from a packed panel p and an interleaved input tile xp. */
static void gemm_tile(float *y, int ldy, const float *xp, const float *p, int in, __mmask16 m0, __mmask16 m1, int R) {
    __m512 acc[TILE_T][2];
#pragma GCC unroll 8
    for (int r = 0; r < TILE_T; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < in; k++) {
        const __m512 w0 = _mm512_load_ps(p + (size_t)k * PANEL), w1 = _mm512_load_ps(p + (size_t)k * PANEL + 16);
#pragma GCC unroll 8
        for (int r = 0; r < TILE_T; r++) {
            const __m512 xb = _mm512_set1_ps(xp[(size_t)k * TILE_T + r]);
            acc[r][0] = _mm512_fmadd_ps(w0, xb, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(w1, xb, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, m0, acc[r][0]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, m1, acc[r][1]);
    }
}

static void gemm_rows(float *y, const float *xq, const void *w, int type, int n, int in, int out,
                      int o0, int o1, float *panel) {
    const int rows = o1 - o0;
    pack_panel(panel, w, type, in, o0, rows);
    const __mmask16 m0 = rows >= 16 ? 0xffff : tail_mask(rows), m1 = rows >= 32 ? 0xffff : rows > 16 ? tail_mask(rows - 16) : 0;
    for (int t = 0; t < n; t += TILE_T)
        gemm_tile(y + (size_t)t * out + o0, out, xq + (size_t)t * in, panel, in, m0, m1, n - t < TILE_T ? n - t : TILE_T);
}

/* ---- quantized weights ---------------------------------------------------------------------- */

/* Two Q8_0 activation blocks: 64 quants, each block's scale in its 8 lanes, and the starting
 * value of the dot (-offset * sum of the 4 quants under each int32 lane). */
typedef struct {
    int8_t qs[64];
    float d[16];
    int32_t start[16];
} xq_pair;


/* roundf (ties away from zero) of each lane, exactly. */
INLINE __m512 round_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, one);
}

/* One Q8_0 block of x, as sm_quantize_row makes it: quants into q (32), scale (f16 value) out. */
INLINE float quantize_block(int8_t *q, const float *x) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(round_away(_mm512_mul_ps(v0, vid)))));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(round_away(_mm512_mul_ps(v1, vid)))));
    return sm_fp16_to_fp32(sm_fp32_to_fp16(d));
}

static void quantize_row_pairs(xq_pair *p, const float *x, int type, int in) {
    const int nb = in / SM_QK;
    const __m512i offset = _mm512_set1_epi8(type == SM_TYPE_Q8_0 ? (char)0x80 : 8);
    for (int b = 0; b < nb; b += 2, p++) {
        const float da = quantize_block(p->qs, x + (size_t)b * SM_QK);
        float db = 0.0f;
        if (b + 1 < nb) db = quantize_block(p->qs + 32, x + (size_t)(b + 1) * SM_QK);
        else memset(p->qs + 32, 0, 32);
        _mm512_store_ps(p->d, _mm512_insertf32x8(_mm512_set1_ps(da), _mm256_set1_ps(db), 1));
        const __m512i sum4 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, _mm512_load_si512(p->qs));
        _mm512_store_si512(p->start, _mm512_sub_epi32(_mm512_setzero_si512(), sum4));
    }
}

/* Blocks b and b+1 of a weight row (only b when single), as unsigned bytes, and their scales. */
INLINE void load_wpair(__m512i *wq, __m512 *dw, const void *row, const int type, int b, int single) {
    if (type == SM_TYPE_Q8_0) {
        const sm_block_q8_0 *blk = (const sm_block_q8_0 *)row + b;
        const __m256i lo = _mm256_loadu_si256((const __m256i *)blk[0].qs);
        const __m256i hi = single ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i *)blk[1].qs);
        *wq = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8((char)0x80));
        const __m128i da = _mm_set1_epi16((short)blk[0].d), db = _mm_set1_epi16(single ? 0 : (short)blk[1].d);
        *dw = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(da), db, 1));
    } else {
        const sm_block_q4_0 *blk = (const sm_block_q4_0 *)row + b;
        const __m128i a = _mm_loadu_si128((const __m128i *)blk[0].qs);
        const __m128i c = single ? _mm_setzero_si128() : _mm_loadu_si128((const __m128i *)blk[1].qs);
        const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(a), c, 1), low4 = _mm256_set1_epi8(0x0f);
        const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* lo_a lo_b hi_a hi_b */
        *wq = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));               /* lo_a hi_a lo_b hi_b */
        const __m128i da = _mm_set1_epi16((short)blk[0].d), db = _mm_set1_epi16(single ? 0 : (short)blk[1].d);
        *dw = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(da), db, 1));
    }
}

/* y[t*ldy + c] for C weight rows (row c at w + c*row_bytes) and R tokens (pairs at x + t*xs). */
INLINE void qtile(float *y, int ldy, const unsigned char *w, size_t row_bytes, const int type,
                  const xq_pair *x, int xs, int nb, const int C, const int R) {
    __m512 acc[4][4];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) acc[c][r] = _mm512_setzero_ps();
    const int np = (nb + 1) / 2;
    for (int p = 0; p < np; p++) {
        const int single = (nb & 1) && p == np - 1;
        __m512i wq[4];
        __m512 dw[4];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) load_wpair(&wq[c], &dw[c], w + c * row_bytes, type, 2 * p, single);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const xq_pair *xp = x + (size_t)r * xs + p;
            const __m512i xv = _mm512_load_si512(xp->qs);
            const __m512 dx = _mm512_load_ps(xp->d);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                /* vpdpbusd overwrites its accumulator: take `start` fresh from memory for each row
                 * (a load) rather than let the compiler copy a register (an ALU op). The empty asm
                 * hides that the address is the same. */
                const int32_t *sp = xp->start;
                __asm__("" : "+r"(sp));
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(sp), wq[c], xv);
                acc[c][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[c], dx), acc[c][r]);
            }
        }
    }
    if (C == 4) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) _mm_storeu_ps(y + (size_t)r * ldy, reduce4(acc[0][r], acc[1][r], acc[2][r], acc[3][r]));
        return;
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) y[(size_t)r * ldy + c] = _mm512_reduce_add_ps(acc[c][r]);
}

#define QTILE_T 4  /* tokens per quantized tile */
#define QBLOCK_T 64 /* tokens whose prepared activations stay in L2 while a chunk of rows passes */

INLINE void qrows(float *y, const void *xq, const void *w, const int type, int n, int in, int out, int o0, int o1) {
    const int nb = in / SM_QK, xs = (nb + 1) / 2;
    const size_t row_bytes = (size_t)nb * (type == SM_TYPE_Q8_0 ? sizeof(sm_block_q8_0) : sizeof(sm_block_q4_0));
    const unsigned char *wb = w;
    for (int t0 = 0; t0 < n; t0 += QBLOCK_T) {
        const int t1 = t0 + QBLOCK_T < n ? t0 + QBLOCK_T : n;
        for (int o = o0; o < o1;) {
            /* a few tokens: row after row (see gemv_row), each weight row against all of them;
             * four rows at a time only pay from more tokens on, for Q8_0 from more than 8 (at 1
             * thread, 49152 x 576: Q8_0 n=4 2.2 ms row after row, 5.0 ms four rows at a time,
             * n=1 1.0 ms; Q4_0 four rows at a time is faster from n=2) */
            const int C = o1 - o >= 4 && n > (type == SM_TYPE_Q8_0 ? 8 : 1) ? 4 : 1;
            for (int t = t0; t < t1; t += QTILE_T) {
                float *yt = y + (size_t)t * out + o;
                const xq_pair *xt = (const xq_pair *)xq + (size_t)t * xs;
                const unsigned char *wo = wb + (size_t)o * row_bytes;
                const int R = t1 - t < QTILE_T ? t1 - t : QTILE_T;
                if (C == 4) {
                    switch (R) {
                    case 4: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 4, 4); break;
                    case 3: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 4, 3); break;
                    case 2: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 4, 2); break;
                    default: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 4, 1); break;
                    }
                } else {
                    switch (R) {
                    case 4: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 1, 4); break;
                    case 3: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 1, 3); break;
                    case 2: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 1, 2); break;
                    default: qtile(yt, out, wo, row_bytes, type, xt, xs, nb, 1, 1); break;
                    }
                }
            }
            o += C;
        }
    }
}

/* ---- one token, Q4_0 weights ---------------------------------------------------------------- */

/* Four Q8_0 activation blocks a..d for one token against Q4_0 weights, in the order of the
 * weights' nibbles: lo holds elements 0..15 of a, b, c, d (the low nibbles of each block's 16
 * bytes), hi elements 16..31 (the high nibbles); each block's scale in its 4 lanes; the starting
 * value of the dot, -8 * the sum of the 8 quants under each int32 lane. Missing blocks are 0. */
typedef struct {
    int8_t lo[64];
    int8_t hi[64];
    float d[16];
    int32_t start[16];
} xq_quad;

static void quantize_row_quads(xq_quad *p, const float *x, int in) {
    const int nb = in / SM_QK;
    const __m512i eight = _mm512_set1_epi8(8);
    for (int b = 0; b < nb; b += 4, p++) {
        int8_t q[32];
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        memset(p->lo, 0, sizeof p->lo + sizeof p->hi);
        for (int k = 0; k < 4 && b + k < nb; k++) {
            d[k] = quantize_block(q, x + (size_t)(b + k) * SM_QK);
            memcpy(p->lo + 16 * k, q, 16);
            memcpy(p->hi + 16 * k, q + 16, 16);
        }
        const __m512 vd = _mm512_setr_ps(d[0], d[0], d[0], d[0], d[1], d[1], d[1], d[1],
                                         d[2], d[2], d[2], d[2], d[3], d[3], d[3], d[3]);
        _mm512_store_ps(p->d, vd);
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, _mm512_load_si512(p->lo)),
                                                eight, _mm512_load_si512(p->hi));
        _mm512_store_si512(p->start, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
    }
}

/* One Q4_0 weight row (nb blocks at w) against one token's quads. Four blocks (72 bytes) per step:
 * one 64-byte and one 8-byte load, a word permute that gathers the 4 x 16 nibble bytes, another
 * that spreads the 4 scales over their lanes, and two vpdpbusd of the unsigned nibbles (q + 8) by
 * the activations, from `start`. Rows go one after another, so the weights stream in order (four
 * rows side by side halved the speed of the 1536-wide rows of ffn_down). */
static float q4_gemv_row(const unsigned char *w, const xq_quad *x, int nb) {
    /* word i of the nibbles: block i/8, its byte pair i%8, at word 1 + 9*(i/8) + i%8 of the
     * 36 words of four blocks (words 32..35 come from the second source) */
    const __m512i qidx = _mm512_setr_epi32(
        1 | 2 << 16, 3 | 4 << 16, 5 | 6 << 16, 7 | 8 << 16, 10 | 11 << 16, 12 | 13 << 16, 14 | 15 << 16, 16 | 17 << 16,
        19 | 20 << 16, 21 | 22 << 16, 23 | 24 << 16, 25 | 26 << 16, 28 | 29 << 16, 30 | 31 << 16, 32 | 33 << 16, 34 | 35 << 16);
    /* the scales, words 0, 9, 18, 27, each to 4 halves of the low 256 bits */
    const __m512i didx = _mm512_setr_epi32(0, 0, 9 | 9 << 16, 9 | 9 << 16, 18 | 18 << 16, 18 | 18 << 16, 27 | 27 << 16, 27 | 27 << 16,
                                           0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps();
    const int nq = (nb + 3) / 4;
    for (int g = 0; g < nq; g++) {
        const xq_quad *xg = x + g;
        const unsigned char *blk = w + (size_t)g * 4 * sizeof(sm_block_q4_0);
        const int kb = nb - 4 * g;
        __m512i v0, v1;
        if (kb >= 4) {
            v0 = _mm512_loadu_si512(blk);
            v1 = _mm512_zextsi128_si512(_mm_loadl_epi64((const __m128i *)(blk + 64)));
        } else { /* the row's last 1..3 blocks; the rest read as 0, scales included */
            v0 = _mm512_maskz_loadu_epi8(~0ull >> (64 - kb * (int)sizeof(sm_block_q4_0)), blk);
            v1 = _mm512_setzero_si512();
        }
        const __m512i q = _mm512_permutex2var_epi16(v0, qidx, v1);
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(didx, v0)));
        const __m512i lo = _mm512_and_si512(q, low4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_load_si512(xg->start), lo, _mm512_load_si512(xg->lo)),
                                                hi, _mm512_load_si512(xg->hi));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_load_ps(xg->d)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static void q4_gemv_rows(float *y, const void *xq, const void *w, int in, int o0, int o1) {
    const int nb = in / SM_QK;
    const size_t row_bytes = (size_t)nb * sizeof(sm_block_q4_0);
    for (int o = o0; o < o1; o++) y[o] = q4_gemv_row((const unsigned char *)w + (size_t)o * row_bytes, xq, nb);
}

/* Prepared activations: for quantized weights each row as xq_pairs; for float weights and more
 * than one token, tiles of TILE_T rows interleaved (k-major), so that the GEMM tile broadcasts
 * its TILE_T inputs from one pointer. */
static size_t avx512_xq_bytes(int type, int n, int in) {
    if (type == SM_TYPE_Q4_0 && n == 1) return (size_t)((in / SM_QK + 3) / 4) * sizeof(xq_quad);
    if (type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0) return (size_t)n * ((in / SM_QK + 1) / 2) * sizeof(xq_pair);
    if (n == 1) return 0;
    return (size_t)((n + TILE_T - 1) / TILE_T) * TILE_T * in * sizeof(float);
}

static void avx512_prepare_x(void *xq, const float *x, int type, int n, int in, int t0, int t1) {
    if (type == SM_TYPE_Q4_0 && n == 1) {
        quantize_row_quads(xq, x, in);
        return;
    }
    if (type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0) {
        const size_t pairs = (size_t)(in / SM_QK + 1) / 2;
        for (int t = t0; t < t1; t++) quantize_row_pairs((xq_pair *)xq + (size_t)t * pairs, x + (size_t)t * in, type, in);
        return;
    }
    (void)n;
    pack_x_tile((float *)xq + (size_t)t0 * in, x + (size_t)t0 * in, in, t1 - t0);
}

static size_t avx512_scratch_floats(int type, int n, int in) {
    if (n == 1 || type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0) return 0;
    return (size_t)PANEL * in;
}

static void avx512_matmul_rows(float *y, const float *x, const void *xq, const void *w, int type,
                               int n, int in, int out, int o0, int o1, float *scratch) {
    switch (type) {
    case SM_TYPE_Q8_0: qrows(y, xq, w, SM_TYPE_Q8_0, n, in, out, o0, o1); return;
    case SM_TYPE_Q4_0:
        if (n == 1) q4_gemv_rows(y, xq, w, in, o0, o1); /* prepared as xq_quads */
        else qrows(y, xq, w, SM_TYPE_Q4_0, n, in, out, o0, o1);
        return;
    }
    if (n > 1) { gemm_rows(y, xq, w, type, n, in, out, o0, o1, scratch); return; }
    switch (type) {
    case SM_TYPE_F32: gemv_rows(y, x, w, SM_TYPE_F32, in, o0, o1); break;
    case SM_TYPE_F16: gemv_rows(y, x, w, SM_TYPE_F16, in, o0, o1); break;
    default: gemv_rows(y, x, w, SM_TYPE_BF16, in, o0, o1); break;
    }
}

const sm_kernel_ops sm_kernels_avx512 = {
    .name = "avx512",
    .xq_bytes = avx512_xq_bytes,
    .prepare_x = avx512_prepare_x,
    .scratch_floats = avx512_scratch_floats,
    .matmul_rows = avx512_matmul_rows,
    .softmax = avx512_softmax,
    .swiglu = avx512_swiglu,
    .attention_heads = avx512_attention_heads,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
