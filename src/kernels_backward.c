/* kernels_backward.c: the optimised training kernels (kernels_backward.h).
 *
 * The three matrix products of training (y = x W^T in full mode, dx = dy W, dW += dy^T x) run
 * on one blocked engine: C (M,N) += A (M,K) · B (K,N), where A is read in place through two
 * strides (so dy and dy^T need no copy) and B is packed, panel by panel of GEMM_NP columns and
 * GEMM_KC rows, into a per-thread f32 buffer, dequantizing a stored weight or transposing an f32
 * one on the way. A register-tiled micro-kernel (AVX-512 or AVX2+FMA, chosen at run time, with
 * a portable fallback) multiplies GEMM_MR rows of A by a packed panel. Units of work are
 * (row block, column panel) pairs that write disjoint parts of C, each summed in a fixed order,
 * so results do not depend on the thread count or the schedule. The elementwise kernels are
 * portable loops over rows that the compiler vectorises.
 */
#include "kernels_backward.h"

#include "kernels.h"
#include "tensor.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SM_X86 1
#endif

enum {
    GEMM_MR = 6,   /* rows of A per micro-kernel call */
    GEMM_NP = 64,  /* columns of a packed B panel */
    GEMM_KC = 512, /* rows of B per packed panel */
    GEMM_MB = 96,  /* the fewest rows of C per unit of work when threads share the product */
};

/* Where B (K,N) comes from. */
typedef enum {
    B_ROWS,  /* B(k,n) = element n of row k of a matrix of `type` (row_bytes per row) */
    B_TRANS, /* B(k,n) = w[n * ldw + k], f32 */
} b_kind;

typedef struct {
    float *c;             /* C(m,n) at c[m * ldc + n] */
    size_t ldc;
    const float *a;       /* A(m,k) at a[m * a_rs + k * a_ks] */
    size_t a_rs, a_ks;
    const void *b;
    b_kind kind;
    int b_type;           /* B_ROWS: ggml type of the rows */
    size_t b_ld;          /* B_ROWS: bytes per row; B_TRANS: floats per row of w */
    int M, N, K;
} gemm_args;

/* Packs B rows k0..k0+kc-1, columns n0..n0+GEMM_NP-1 (zero beyond N) into panel (kc, GEMM_NP). */
static void pack_panel(float *panel, const gemm_args *g, int k0, int kc, int n0) {
    const int nc = g->N - n0 < GEMM_NP ? g->N - n0 : GEMM_NP;
    if (g->kind == B_TRANS) {
        const float *w = g->b;
        if (nc < GEMM_NP) memset(panel, 0, sizeof(float) * (size_t)kc * GEMM_NP);
        for (int c = 0; c < nc; c++) {
            const float *src = w + (size_t)(n0 + c) * g->b_ld + k0;
            for (int k = 0; k < kc; k++) panel[(size_t)k * GEMM_NP + c] = src[k];
        }
        return;
    }
    size_t col_off = 0;
    int bad = sm_type_row_bytes(g->b_type, n0, &col_off);
    assert(!bad); /* n0 is a multiple of GEMM_NP, so of any block size */
    (void)bad;
    for (int k = 0; k < kc; k++) {
        float *dst = panel + (size_t)k * GEMM_NP;
        const char *src = (const char *)g->b + (size_t)(k0 + k) * g->b_ld + col_off;
        if (g->b_type == SM_TYPE_F32) memcpy(dst, src, sizeof(float) * (size_t)nc);
        else sm_dequantize_row(g->b_type, dst, src, nc);
        for (int c = nc; c < GEMM_NP; c++) dst[c] = 0.0f;
    }
}

/* tile (GEMM_MR, GEMM_NP) = the rows a[r] (r < GEMM_MR, stepping a_ks per k) times panel (kc, GEMM_NP). */
typedef void (*micro_fn)(float *tile, const float *const *a, size_t a_ks, const float *panel, int kc);

static void micro_portable(float *tile, const float *const *a, size_t a_ks, const float *panel, int kc) {
    for (int i = 0; i < GEMM_MR * GEMM_NP; i++) tile[i] = 0.0f;
    for (int k = 0; k < kc; k++) {
        const float *p = panel + (size_t)k * GEMM_NP;
        for (int r = 0; r < GEMM_MR; r++) {
            const float av = a[r][(size_t)k * a_ks];
            float *t = tile + r * GEMM_NP;
#pragma omp simd
            for (int c = 0; c < GEMM_NP; c++) t[c] += av * p[c];
        }
    }
}

#ifdef SM_X86
__attribute__((target("avx512f"))) static void micro_avx512(float *tile, const float *const *a, size_t a_ks,
                                                            const float *panel, int kc) {
    __m512 acc[GEMM_MR][4];
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < kc; k++) {
        const float *p = panel + (size_t)k * GEMM_NP;
        const __m512 b0 = _mm512_load_ps(p), b1 = _mm512_load_ps(p + 16), b2 = _mm512_load_ps(p + 32),
                     b3 = _mm512_load_ps(p + 48);
        const size_t ko = (size_t)k * a_ks;
#define ROW(r, ar)                                                    \
    do {                                                              \
        const __m512 av = _mm512_set1_ps(ar[ko]);                     \
        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);               \
        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);               \
        acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);               \
        acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);               \
    } while (0)
        ROW(0, a0); ROW(1, a1); ROW(2, a2); ROW(3, a3); ROW(4, a4); ROW(5, a5);
#undef ROW
    }
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < 4; j++) _mm512_store_ps(tile + r * GEMM_NP + 16 * j, acc[r][j]);
}

/* 16 registers: six rows by two 8-wide columns at a time, four times across the panel. */
__attribute__((target("avx2,fma"))) static void micro_avx2(float *tile, const float *const *a, size_t a_ks,
                                                           const float *panel, int kc) {
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int c0 = 0; c0 < GEMM_NP; c0 += 16) {
        __m256 acc[GEMM_MR][2];
        for (int r = 0; r < GEMM_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (int k = 0; k < kc; k++) {
            const float *p = panel + (size_t)k * GEMM_NP + c0;
            const __m256 b0 = _mm256_load_ps(p), b1 = _mm256_load_ps(p + 8);
            const size_t ko = (size_t)k * a_ks;
#define ROW(r, ar)                                                    \
    do {                                                              \
        const __m256 av = _mm256_broadcast_ss(ar + ko);               \
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);               \
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);               \
    } while (0)
            ROW(0, a0); ROW(1, a1); ROW(2, a2); ROW(3, a3); ROW(4, a4); ROW(5, a5);
#undef ROW
        }
        for (int r = 0; r < GEMM_MR; r++) {
            _mm256_store_ps(tile + r * GEMM_NP + c0, acc[r][0]);
            _mm256_store_ps(tile + r * GEMM_NP + c0 + 8, acc[r][1]);
        }
    }
}
#endif

/* The path of the forward kernels (kernels.h), so that sm_kernels_force_isa steers both. */
static micro_fn pick_micro(void) {
#ifdef SM_X86
    const char *isa = sm_kernels_isa();
    if (strcmp(isa, "avx512") == 0) return micro_avx512;
    if (strcmp(isa, "avx2") == 0) return micro_avx2;
#endif
    return micro_portable;
}

static void gemm(const gemm_args *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return;
    const micro_fn micro = pick_micro();
    const double flops = 2.0 * g->M * g->N * g->K;
    const int team = flops < 4e6 ? 1 : omp_get_max_threads();
    /* Each unit packs its panel of B once per GEMM_KC rows and runs all its rows of A over it, so
     * the fewer row blocks the less packing; but enough units (about 6 per thread) are needed
     * for the dynamic schedule to balance. */
    const int n_panels = (g->N + GEMM_NP - 1) / GEMM_NP;
    int m_blocks = (6 * team + n_panels - 1) / n_panels;
    if (team == 1) m_blocks = 1;
    int mb = (g->M + m_blocks - 1) / m_blocks;
    mb = (mb + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    if (mb < GEMM_MB && team > 1) mb = GEMM_MB < g->M ? GEMM_MB : (g->M + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    m_blocks = (g->M + mb - 1) / mb;
    const int units = m_blocks * n_panels;
    const size_t panel_floats = (size_t)GEMM_KC * GEMM_NP, tile_floats = GEMM_MR * GEMM_NP;
    float *buf = aligned_alloc(64, sizeof(float) * (panel_floats + tile_floats) * (size_t)team);
    assert(buf); /* a few hundred KiB */
#pragma omp parallel num_threads(team)
    {
        float *panel = buf + (panel_floats + tile_floats) * (size_t)omp_get_thread_num();
        float *tile = panel + panel_floats;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < units; u++) {
            const int n0 = (u % n_panels) * GEMM_NP, m0 = (u / n_panels) * mb;
            const int m1 = m0 + mb < g->M ? m0 + mb : g->M;
            const int nc = g->N - n0 < GEMM_NP ? g->N - n0 : GEMM_NP;
            for (int k0 = 0; k0 < g->K; k0 += GEMM_KC) {
                const int kc = g->K - k0 < GEMM_KC ? g->K - k0 : GEMM_KC;
                pack_panel(panel, g, k0, kc, n0);
                for (int m = m0; m < m1; m += GEMM_MR) {
                    const float *rows[GEMM_MR];
                    for (int r = 0; r < GEMM_MR; r++) {
                        const int mr = m + r < m1 ? m + r : m1 - 1; /* past the end: repeat, discard */
                        rows[r] = g->a + (size_t)mr * g->a_rs + (size_t)k0 * g->a_ks;
                    }
                    micro(tile, rows, g->a_ks, panel, kc);
                    for (int r = 0; r < GEMM_MR && m + r < m1; r++) {
                        float *c = g->c + (size_t)(m + r) * g->ldc + n0;
                        const float *t = tile + r * GEMM_NP;
#pragma omp simd
                        for (int j = 0; j < nc; j++) c[j] += t[j];
                    }
                }
            }
        }
    }
    free(buf);
}

void matmul_backward_dx(float *dx, const float *dy, const void *w, int type, int n, int in, int out) {
    size_t row_bytes = 0;
    int bad = sm_type_row_bytes(type, in, &row_bytes);
    assert(!bad);
    (void)bad;
    gemm_args g = {.c = dx, .ldc = (size_t)in, .a = dy, .a_rs = (size_t)out, .a_ks = 1, .b = w, .kind = B_ROWS,
                   .b_type = type, .b_ld = row_bytes, .M = n, .N = in, .K = out};
    gemm(&g);
}

void matmul_backward_dw(float *dw, float *db, const float *dy, const float *x, int n, int in, int out) {
    gemm_args g = {.c = dw, .ldc = (size_t)in, .a = dy, .a_rs = 1, .a_ks = (size_t)out, .b = x, .kind = B_ROWS,
                   .b_type = SM_TYPE_F32, .b_ld = sizeof(float) * (size_t)in, .M = out, .N = in, .K = n};
    gemm(&g);
    if (!db) return;
#pragma omp parallel for schedule(static) if ((long)n * out >= 65536)
    for (int o0 = 0; o0 < out; o0 += 64) {
        const int o1 = o0 + 64 < out ? o0 + 64 : out;
        for (int t = 0; t < n; t++) {
            const float *g_t = dy + (size_t)t * out;
            for (int o = o0; o < o1; o++) db[o] += g_t[o];
        }
    }
}

void matmul_forward_f32(float *y, const float *x, const float *w, int n, int in, int out) {
    for (size_t i = 0; i < (size_t)n * out; i++) y[i] = 0.0f;
    gemm_args g = {.c = y, .ldc = (size_t)out, .a = x, .a_rs = (size_t)in, .a_ks = 1, .b = w, .kind = B_TRANS,
                   .b_ld = (size_t)in, .M = n, .N = out, .K = in};
    gemm(&g);
}

/* c (rows, cols) scratch, then dst (cols, rows) += c^T; add 0: dst = c^T. */
static void add_transposed(float *dst, const float *c, int rows, int cols, int add) {
#pragma omp parallel for schedule(static) if ((long)rows * cols >= 65536)
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++) {
            const float v = c[(size_t)i * cols + j];
            dst[(size_t)j * rows + i] = add ? dst[(size_t)j * rows + i] + v : v;
        }
}

void matmul_forward_narrow(float *y, const float *x, const float *w, int n, int in, int out) {
    /* y^T (out, n) = W (out, in) · x^T: B(k=i, t) = x[t * in + i] */
    float *c = calloc((size_t)out * n, sizeof(float));
    assert(c);
    gemm_args g = {.c = c, .ldc = (size_t)n, .a = w, .a_rs = (size_t)in, .a_ks = 1, .b = x, .kind = B_TRANS,
                   .b_ld = (size_t)in, .M = out, .N = n, .K = in};
    gemm(&g);
    add_transposed(y, c, out, n, 0);
    free(c);
}

void matmul_backward_dx_narrow(float *dx, const float *dy, const float *w, int n, int in, int out) {
    /* dx^T (in, n) = W^T (in, out) · dy^T: A(i, o) = w[o * in + i], B(o, t) = dy[t * out + o] */
    float *c = calloc((size_t)in * n, sizeof(float));
    assert(c);
    gemm_args g = {.c = c, .ldc = (size_t)n, .a = w, .a_rs = 1, .a_ks = (size_t)in, .b = dy, .kind = B_TRANS,
                   .b_ld = (size_t)out, .M = in, .N = n, .K = out};
    gemm(&g);
    add_transposed(dx, c, in, n, 1);
    free(c);
}

void matmul_backward_dw_narrow(float *dw, const float *dy, const float *x, int n, int in, int out) {
    /* dW^T (in, out) = x^T (in, n) · dy: A(i, t) = x[t * in + i], B(t, o) = dy[t * out + o] */
    float *c = calloc((size_t)in * out, sizeof(float));
    assert(c);
    gemm_args g = {.c = c, .ldc = (size_t)out, .a = x, .a_rs = 1, .a_ks = (size_t)in, .b = dy, .kind = B_ROWS,
                   .b_type = SM_TYPE_F32, .b_ld = sizeof(float) * (size_t)out, .M = in, .N = out, .K = n};
    gemm(&g);
    add_transposed(dw, c, in, out, 1);
    free(c);
}

void embedding_backward(float *dwte, const float *dx, const int *tokens, int n, int d) {
    /* columns split across threads; every row summed in token order */
#pragma omp parallel for schedule(static) if ((long)n * d >= 262144)
    for (int i0 = 0; i0 < d; i0 += 64) {
        const int i1 = i0 + 64 < d ? i0 + 64 : d;
        for (int t = 0; t < n; t++) {
            float *dst = dwte + (size_t)tokens[t] * d;
            const float *src = dx + (size_t)t * d;
            for (int i = i0; i < i1; i++) dst[i] += src[i];
        }
    }
}

void rmsnorm_forward_train(float *y, float *rstd, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((long)n * d >= 32768)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        float *yt = y + (size_t)t * d;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < d; i++) sum += (double)(xt[i] * xt[i]);
        const float scale = 1.0f / sqrtf((float)(sum / d) + eps); /* as rmsnorm_forward */
        rstd[t] = scale;
#pragma omp simd
        for (int i = 0; i < d; i++) yt[i] = xt[i] * scale * w[i];
    }
}

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                      int n, int d) {
#pragma omp parallel for schedule(static) if ((long)n * d >= 32768)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d, *dyt = dy + (size_t)t * d;
        float *dxt = dx + (size_t)t * d;
        const float r = rstd[t];
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < d; i++) dot += (double)(dyt[i] * w[i] * xt[i]);
        const float c = (float)(dot * r * r * r / d);
#pragma omp simd
        for (int i = 0; i < d; i++) dxt[i] += r * w[i] * dyt[i] - c * xt[i];
    }
    if (!dw) return;
#pragma omp parallel for schedule(static) if ((long)n * d >= 32768)
    for (int i0 = 0; i0 < d; i0 += 32) {
        const int i1 = i0 + 32 < d ? i0 + 32 : d;
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * d, *dyt = dy + (size_t)t * d;
            const float r = rstd[t];
            for (int i = i0; i < i1; i++) dw[i] += dyt[i] * xt[i] * r;
        }
    }
}

#define ROPE_MAX_HALF 512

void rope_backward(float *dx, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox) {
    const int half = head_dim / 2;
    if (half > ROPE_MAX_HALF) { rope_backward_ref(dx, pos, n, n_head, head_dim, freq_base, neox); return; }
    const float theta_scale = powf(freq_base, -2.0f / (float)head_dim);
#pragma omp parallel for schedule(static) if (n >= 8)
    for (int t = 0; t < n; t++) {
        float cos_t[ROPE_MAX_HALF], sin_t[ROPE_MAX_HALF];
        float theta = (float)pos[t]; /* the forward's float recurrence */
        for (int i = 0; i < half; i++, theta *= theta_scale) { cos_t[i] = cosf(theta); sin_t[i] = sinf(theta); }
        for (int h = 0; h < n_head; h++) {
            float *g = dx + ((size_t)t * n_head + h) * head_dim;
            const int step = neox ? 1 : 2, off = neox ? half : 1;
            for (int i = 0; i < half; i++) {
                float *g0 = g + i * step, *g1 = g0 + off;
                const float a = *g0, b = *g1;
                *g0 = a * cos_t[i] + b * sin_t[i];
                *g1 = -a * sin_t[i] + b * cos_t[i];
            }
        }
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int i0 = 0; i0 < n; i0 += 4096) {
        const int i1 = i0 + 4096 < n ? i0 + 4096 : n;
        for (int i = i0; i < i1; i++) {
            const float sig = 1.0f / (1.0f + expf(-gate[i]));
            dgate[i] += dh[i] * up[i] * sig * (1.0f + gate[i] * (1.0f - sig));
            dup[i] += dh[i] * gate[i] * sig;
        }
    }
}

/* kt (head_dim, T) = the head_dim columns at offset `off` of rows 0..T-1 of x (T rows of `stride`). */
static void transpose_head(float *kt, const float *x, int T, size_t stride, size_t off, int head_dim) {
    for (int j = 0; j < T; j++) {
        const float *xj = x + (size_t)j * stride + off;
        for (int i = 0; i < head_dim; i++) kt[(size_t)i * T + j] = xj[i];
    }
}

/* C (M,N) += A (M,K) · B (K,N) on the calling thread (inside a parallel region), B f32 rows of
 * ldb floats; A(m,k) at a[m * a_rs + k * a_ks]. */
static void gemm_f32(float *c, size_t ldc, const float *a, size_t a_rs, size_t a_ks, const float *b, size_t ldb, int M,
                     int N, int K) {
    gemm_args g = {.c = c, .ldc = ldc, .a = a, .a_rs = a_rs, .a_ks = a_ks, .b = b, .kind = B_ROWS,
                   .b_type = SM_TYPE_F32, .b_ld = sizeof(float) * ldb, .M = M, .N = N, .K = K};
    gemm(&g);
}

/* Attention runs one unit per (row, kv head) and, within it, per query head, the four products
 * as blocked matrix products over the whole T x T square (the causal half beyond each row's
 * range is zero in the probabilities, which costs twice the FLOPs of a triangular loop but runs
 * several times faster). Units write disjoint parts of out, dq, dk and dv. */
void attention_forward_train(float *out, float *att, const float *q, const float *k, const float *v, const int *start,
                             int B, int T, int n_head, int n_head_kv, int head_dim) {
    const int group = n_head / n_head_kv, q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *scratch = malloc(sizeof(float) * (size_t)head_dim * T * omp_get_max_threads());
    assert(scratch);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < n_head_kv; g++) {
            float *kt = scratch + (size_t)head_dim * T * omp_get_thread_num();
            const size_t kvo = (size_t)g * head_dim, row0 = (size_t)b * T;
            transpose_head(kt, k + row0 * kv_dim, T, (size_t)kv_dim, kvo, head_dim);
            for (int h = g * group; h < (g + 1) * group; h++) {
                float *a = att + ((size_t)b * n_head + h) * T * T;
                const float *qh = q + row0 * q_dim + (size_t)h * head_dim;
                float *oh = out + row0 * q_dim + (size_t)h * head_dim;
                memset(a, 0, sizeof(float) * (size_t)T * T);
                gemm_f32(a, (size_t)T, qh, (size_t)q_dim, 1, kt, (size_t)T, T, T, head_dim); /* S = Q K^T */
                for (int t = 0; t < T; t++) {
                    float *at = a + (size_t)t * T;
                    const int j0 = start[row0 + t];
                    float max = -INFINITY, sum = 0.0f;
                    for (int j = j0; j <= t; j++) {
                        at[j] *= scale;
                        max = at[j] > max ? at[j] : max;
                    }
                    for (int j = 0; j < j0; j++) at[j] = 0.0f;
                    for (int j = t + 1; j < T; j++) at[j] = 0.0f;
                    for (int j = j0; j <= t; j++) { at[j] = expf(at[j] - max); sum += at[j]; }
                    const float inv = 1.0f / sum;
                    for (int j = j0; j <= t; j++) at[j] *= inv;
                    for (int i = 0; i < head_dim; i++) oh[(size_t)t * q_dim + i] = 0.0f;
                }
                gemm_f32(oh, (size_t)q_dim, a, (size_t)T, 1, v + row0 * kv_dim + kvo, (size_t)kv_dim, T, head_dim, T); /* O = P V */
            }
        }
    free(scratch);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                        const float *k, const float *v, const int *start, int B, int T, int n_head, int n_head_kv,
                        int head_dim) {
    const int group = n_head / n_head_kv, q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const size_t per_thread = (size_t)head_dim * T + (size_t)T * T;
    float *scratch = malloc(sizeof(float) * per_thread * omp_get_max_threads());
    assert(scratch);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < n_head_kv; g++) {
            float *vt = scratch + per_thread * omp_get_thread_num(), *ds = vt + (size_t)head_dim * T;
            const size_t kvo = (size_t)g * head_dim, row0 = (size_t)b * T;
            const float *kh = k + row0 * kv_dim + kvo;
            float *dkh = dk + row0 * kv_dim + kvo, *dvh = dv + row0 * kv_dim + kvo;
            transpose_head(vt, v + row0 * kv_dim, T, (size_t)kv_dim, kvo, head_dim);
            for (int h = g * group; h < (g + 1) * group; h++) {
                const float *a = att + ((size_t)b * n_head + h) * T * T;
                const float *goh = dout + row0 * q_dim + (size_t)h * head_dim;
                const float *qh = q + row0 * q_dim + (size_t)h * head_dim;
                float *dqh = dq + row0 * q_dim + (size_t)h * head_dim;
                memset(ds, 0, sizeof(float) * (size_t)T * T);
                gemm_f32(ds, (size_t)T, goh, (size_t)q_dim, 1, vt, (size_t)T, T, T, head_dim); /* dP = dO V^T */
                for (int t = 0; t < T; t++) { /* dS = P * (dP - rowsum(P * dP)) * scale */
                    const float *at = a + (size_t)t * T;
                    float *dst = ds + (size_t)t * T;
                    const int j0 = start[row0 + t];
                    float dot = 0.0f;
                    for (int j = j0; j <= t; j++) dot += at[j] * dst[j];
                    for (int j = 0; j < j0; j++) dst[j] = 0.0f;
                    for (int j = j0; j <= t; j++) dst[j] = at[j] * (dst[j] - dot) * scale;
                    for (int j = t + 1; j < T; j++) dst[j] = 0.0f;
                }
                gemm_f32(dvh, (size_t)kv_dim, a, 1, (size_t)T, goh, (size_t)q_dim, T, head_dim, T);   /* dV += P^T dO */
                gemm_f32(dqh, (size_t)q_dim, ds, (size_t)T, 1, kh, (size_t)kv_dim, T, head_dim, T);   /* dQ += dS K */
                gemm_f32(dkh, (size_t)kv_dim, ds, 1, (size_t)T, qh, (size_t)q_dim, T, head_dim, T);   /* dK += dS^T Q */
            }
        }
    free(scratch);
}

/* -log softmax(z)[target]. */
static double cross_entropy_row(const float *z, int target, int V) {
    float max = -INFINITY;
    for (int i = 0; i < V; i++) max = z[i] > max ? z[i] : max;
    double sum = 0.0;
    float part = 0.0f; /* float partial sums of 256 terms, added in double */
    for (int i = 0; i < V; i++) {
        part += expf(z[i] - max);
        if ((i & 255) == 255) { sum += part; part = 0.0f; }
    }
    sum += part;
    return log(sum) + max - z[target];
}

double cross_entropy_backward(float *logits, const int *targets, int n, int V, float dloss) {
    double *row_loss = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    assert(row_loss);
#pragma omp parallel for schedule(static) if ((long)n * V >= 65536)
    for (int t = 0; t < n; t++) {
        float *z = logits + (size_t)t * V;
        if (targets[t] < 0) { memset(z, 0, sizeof(float) * (size_t)V); row_loss[t] = 0.0; continue; }
        /* one pass of exp, kept in place, then the scale */
        float max = -INFINITY;
        for (int i = 0; i < V; i++) max = z[i] > max ? z[i] : max;
        const float z_target = z[targets[t]];
        double sum = 0.0;
        float part = 0.0f;
        for (int i = 0; i < V; i++) {
            z[i] = expf(z[i] - max);
            part += z[i];
            if ((i & 255) == 255) { sum += part; part = 0.0f; }
        }
        sum += part;
        row_loss[t] = log(sum) + max - z_target;
        const float inv = dloss / (float)sum;
#pragma omp simd
        for (int i = 0; i < V; i++) z[i] *= inv;
        z[targets[t]] -= dloss;
    }
    double loss = 0.0;
    for (int t = 0; t < n; t++) loss += row_loss[t];
    free(row_loss);
    return loss;
}

double cross_entropy_forward(const float *logits, const int *targets, int n, int V) {
    double *row_loss = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    assert(row_loss);
#pragma omp parallel for schedule(static) if ((long)n * V >= 65536)
    for (int t = 0; t < n; t++) row_loss[t] = targets[t] < 0 ? 0.0 : cross_entropy_row(logits + (size_t)t * V, targets[t], V);
    double loss = 0.0;
    for (int t = 0; t < n; t++) loss += row_loss[t];
    free(row_loss);
    return loss;
}
