/* kernels_avx2.c: the AVX2 path of the kernels (kernels_isa.h), for CPUs with AVX2, FMA and F16C
 * but no AVX-512. Compiled for that instruction set whatever the build's -march.
 *
 * Float weights: a row-after-row GEMV for one token; for more, a packed 16-row panel (f32,
 * k-major) and a 6-token x 16-row tile of broadcast FMAs. Quantized weights: the activations as
 * Q8_0 blocks (sm_quantize_row), each 32-block dot by the sign trick: |w| (unsigned) times x with
 * w's sign, vpmaddubsw, whose int16 pair sums cannot saturate as |w| <= 127 (Q8_0) or 8 (Q4_0's
 * q - 8) and |x| <= 127. One weight row and one token at a time: a fallback, not tuned further.
 */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__) /* clang ignores #pragma GCC target */
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

#include "kernels_isa.h"

#include "tensor.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A mask of the first m (0..8) lanes, for maskload/maskstore. */
INLINE __m256i lanes(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* e^x to about 2 ulp for x in [-87.3, 88.3] (clamped there): x = n ln2 + r, a degree-6
 * polynomial for e^r, then 2^n through the exponent bits. */
INLINE __m256 exp256(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static void avx2_softmax(float *x, int n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float max = -INFINITY;
    for (int j = i; j < n; j++) max = fmaxf(max, x[j]);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    max = fmaxf(max, _mm_cvtss_f32(m4));
    const __m256 vm = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (i < n) {
        const __m256i m = lanes(n - i);
        const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + i, m, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum256(vsum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    if (i < n) {
        const __m256i m = lanes(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
    }
}

INLINE __m256 swiglu8(__m256 g, __m256 u) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void avx2_swiglu(float *h, const float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(h + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        const __m256i m = lanes(n - i);
        _mm256_maskstore_ps(h + i, m, swiglu8(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
    }
}

static void avx2_attention_head(float *out, const float *q, const float *k, const float *v, float *att,
                                int n_kv, int kv_stride, int head_dim, float scale) {
    const int full = head_dim / 8 * 8;
    for (int j = 0; j < n_kv; j++) {
        const float *kj = k + (size_t)j * kv_stride;
        __m256 s = _mm256_setzero_ps();
        for (int i = 0; i < full; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), s);
        float t = hsum256(s);
        for (int i = full; i < head_dim; i++) t += q[i] * kj[i];
        att[j] = t * scale;
    }
    avx2_softmax(att, n_kv);
    for (int i0 = 0; i0 < full; i0 += 32) {
        const int m = full - i0 < 32 ? (full - i0) / 8 : 4; /* vectors of 8 in this pass */
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int j = 0; j < n_kv; j++) {
            const float *vj = v + (size_t)j * kv_stride + i0;
            const __m256 p = _mm256_set1_ps(att[j]);
            for (int c = 0; c < m; c++) a[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * c), a[c]);
        }
        for (int c = 0; c < m; c++) _mm256_storeu_ps(out + i0 + 8 * c, a[c]);
    }
    for (int i = full; i < head_dim; i++) {
        float s = 0.0f;
        for (int j = 0; j < n_kv; j++) s += att[j] * v[(size_t)j * kv_stride + i];
        out[i] = s;
    }
}

static void avx2_attention_heads(float *out, const float *q, const float *k, const float *v, float *att,
                                  int n_q, int n_kv, int kv_stride, int head_dim, float scale) {
    for (int h = 0; h < n_q; h++)
        avx2_attention_head(out + (size_t)h * head_dim, q + (size_t)h * head_dim, k, v, att + (size_t)h * n_kv, n_kv, kv_stride, head_dim, scale);
}

/* ---- float weights ---------------------------------------------------------------------------- */

INLINE __m256 load_w8(const void *w, const int type, size_t i) {
    if (type == SM_TYPE_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (type == SM_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE float load_w1(const void *w, const int type, size_t i) {
    if (type == SM_TYPE_F32) return ((const float *)w)[i];
    if (type == SM_TYPE_F16) return sm_fp16_to_fp32(((const uint16_t *)w)[i]);
    return sm_bf16_to_fp32(((const uint16_t *)w)[i]);
}

INLINE void gemv_tile(float *y, const float *x, const void *w, const int type, int in, int o, const int C) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int i = 0;
    for (; i + 8 <= in; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) acc[c] = _mm256_fmadd_ps(load_w8(w, type, (size_t)(o + c) * in + i), xv, acc[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        float s = hsum256(acc[c]);
        for (int j = i; j < in; j++) s += load_w1(w, type, (size_t)(o + c) * in + j) * x[j];
        y[o + c] = s;
    }
}

/* Row after row: one sequential stream of weights (see kernels_avx512.c's gemv_row). */
INLINE void gemv_rows(float *y, const float *x, const void *w, const int type, int in, int o0, int o1) {
    for (int o = o0; o < o1; o++) gemv_tile(y, x, w, type, in, o, 1);
}

#define PANEL 16 /* weight rows per packed panel (two ymm); a chunk of rows holds whole panels */
#define TILE_T 6  /* tokens per register tile */
_Static_assert(SM_ROW_CHUNK % PANEL == 0, "whole panels per chunk of rows");

static void pack_panel(float *p, const void *w, int type, int in, int o0, int rows) {
    for (int k = 0; k < in; k++)
        for (int r = 0; r < PANEL; r++) p[(size_t)k * PANEL + r] = r < rows ? load_w1(w, type, (size_t)(o0 + r) * in + k) : 0.0f;
}

INLINE void gemm_tile(float *y, int ldy, const float *x, int ldx, const float *p, int in, int rows, const int R) {
    __m256 acc[TILE_T][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < in; k++) {
        const __m256 w0 = _mm256_load_ps(p + (size_t)k * PANEL), w1 = _mm256_load_ps(p + (size_t)k * PANEL + 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k);
            acc[r][0] = _mm256_fmadd_ps(w0, xb, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(w1, xb, acc[r][1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        if (rows == PANEL) {
            _mm256_storeu_ps(y + (size_t)r * ldy, acc[r][0]);
            _mm256_storeu_ps(y + (size_t)r * ldy + 8, acc[r][1]);
        } else {
            float tmp[PANEL];
            _mm256_storeu_ps(tmp, acc[r][0]);
            _mm256_storeu_ps(tmp + 8, acc[r][1]);
            for (int c = 0; c < rows; c++) y[(size_t)r * ldy + c] = tmp[c];
        }
    }
}

static void gemm_rows(float *y, const float *x, const void *w, int type, int n, int in, int out,
                      int o0, int o1, float *panel) {
    for (int ob = o0; ob < o1; ob += PANEL) {
        const int rows = o1 - ob < PANEL ? o1 - ob : PANEL;
        pack_panel(panel, w, type, in, ob, rows);
        for (int t = 0; t < n; t += TILE_T) {
            float *yt = y + (size_t)t * out + ob;
            const float *xt = x + (size_t)t * in;
            switch (n - t < TILE_T ? n - t : TILE_T) {
            case 6: gemm_tile(yt, out, xt, in, panel, in, rows, 6); break;
            case 5: gemm_tile(yt, out, xt, in, panel, in, rows, 5); break;
            case 4: gemm_tile(yt, out, xt, in, panel, in, rows, 4); break;
            case 3: gemm_tile(yt, out, xt, in, panel, in, rows, 3); break;
            case 2: gemm_tile(yt, out, xt, in, panel, in, rows, 2); break;
            default: gemm_tile(yt, out, xt, in, panel, in, rows, 1); break;
            }
        }
    }
}

/* ---- quantized weights ------------------------------------------------------------------------ */

static size_t avx2_xq_bytes(int type, int n, int in) {
    if (type != SM_TYPE_Q8_0 && type != SM_TYPE_Q4_0) return 0;
    return (size_t)n * (size_t)(in / SM_QK) * sizeof(sm_block_q8_0);
}

static void avx2_prepare_x(void *xq, const float *x, int type, int n, int in, int t0, int t1) {
    (void)type; (void)n;
    for (int t = t0; t < t1; t++)
        sm_quantize_row(SM_TYPE_Q8_0, (sm_block_q8_0 *)xq + (size_t)t * (in / SM_QK), x + (size_t)t * in, in);
}

/* The 8 int32 partial sums of a signed 32-byte dot, by the sign trick. */
INLINE __m256 dot32(__m256i w, __m256i x) {
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

INLINE __m256i q4_bytes(const uint8_t *qs) { /* 32 values q - 8, in element order */
    const __m128i v = _mm_loadu_si128((const __m128i *)qs), low4 = _mm_set1_epi8(0x0f);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(v, low4)), _mm_and_si128(_mm_srli_epi16(v, 4), low4), 1);
    return _mm256_sub_epi8(b, _mm256_set1_epi8(8));
}

INLINE float qdot(const void *wrow, const sm_block_q8_0 *x, int nb, const int type) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i wv;
        float dw;
        if (type == SM_TYPE_Q8_0) {
            const sm_block_q8_0 *blk = (const sm_block_q8_0 *)wrow + b;
            wv = _mm256_loadu_si256((const __m256i *)blk->qs);
            dw = _cvtsh_ss(blk->d);
        } else {
            const sm_block_q4_0 *blk = (const sm_block_q4_0 *)wrow + b;
            wv = q4_bytes(blk->qs);
            dw = _cvtsh_ss(blk->d);
        }
        const __m256 d = _mm256_set1_ps(dw * _cvtsh_ss(x[b].d));
        acc = _mm256_fmadd_ps(dot32(wv, _mm256_loadu_si256((const __m256i *)x[b].qs)), d, acc);
    }
    return hsum256(acc);
}

INLINE void qrows(float *y, const void *xq, const void *w, const int type, int n, int in, int out, int o0, int o1) {
    const int nb = in / SM_QK;
    const size_t row_bytes = (size_t)nb * (type == SM_TYPE_Q8_0 ? sizeof(sm_block_q8_0) : sizeof(sm_block_q4_0));
    for (int o = o0; o < o1; o++)
        for (int t = 0; t < n; t++)
            y[(size_t)t * out + o] = qdot((const unsigned char *)w + (size_t)o * row_bytes, (const sm_block_q8_0 *)xq + (size_t)t * nb, nb, type);
}

static size_t avx2_scratch_floats(int type, int n, int in) {
    if (n == 1 || type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0) return 0;
    return (size_t)PANEL * in;
}

static void avx2_matmul_rows(float *y, const float *x, const void *xq, const void *w, int type,
                             int n, int in, int out, int o0, int o1, float *scratch) {
    switch (type) {
    case SM_TYPE_Q8_0: qrows(y, xq, w, SM_TYPE_Q8_0, n, in, out, o0, o1); return;
    case SM_TYPE_Q4_0: qrows(y, xq, w, SM_TYPE_Q4_0, n, in, out, o0, o1); return;
    }
    if (n > 1) { gemm_rows(y, x, w, type, n, in, out, o0, o1, scratch); return; }
    switch (type) {
    case SM_TYPE_F32: gemv_rows(y, x, w, SM_TYPE_F32, in, o0, o1); break;
    case SM_TYPE_F16: gemv_rows(y, x, w, SM_TYPE_F16, in, o0, o1); break;
    default: gemv_rows(y, x, w, SM_TYPE_BF16, in, o0, o1); break;
    }
}

const sm_kernel_ops sm_kernels_avx2 = {
    .name = "avx2",
    .xq_bytes = avx2_xq_bytes,
    .prepare_x = avx2_prepare_x,
    .scratch_floats = avx2_scratch_floats,
    .matmul_rows = avx2_matmul_rows,
    .softmax = avx2_softmax,
    .swiglu = avx2_swiglu,
    .attention_heads = avx2_attention_heads,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
