/* kernels.c: the optimised forward kernels (kernels.h): the choice of SIMD path, OpenMP threads
 * and scratch memory. The inner loops live in one file per instruction set (kernels_isa.h);
 * RMSNorm and RoPE are short enough to stay here as portable loops the compiler vectorises.
 */
#include "kernels.h"

#include "kernels_isa.h"
#include "tensor.h"

#include <assert.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The path sm_kernels_force_isa chose, or NULL for the best one. A test and benchmark hook: it is
 * the only mutable state of the module and is not meant to change while kernels run. */
static const sm_kernel_ops *forced_ops;

static int cpu_runs(const sm_kernel_ops *ops) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (ops == &sm_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
    if (ops == &sm_kernels_avx2) {
        unsigned a, b, c, d; /* F16C: CPUID leaf 1, ECX bit 29 (not every compiler's builtin knows it) */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
    }
#endif
    return ops == &sm_kernels_scalar;
}

static const sm_kernel_ops *const all_ops[] = {
#if defined(__x86_64__) || defined(__i386__)
    &sm_kernels_avx512, &sm_kernels_avx2,
#endif
    &sm_kernels_scalar,
};
#define N_OPS (sizeof all_ops / sizeof all_ops[0])

static const sm_kernel_ops *kernel_ops(void) {
    if (forced_ops) return forced_ops;
    for (size_t i = 0; i < N_OPS; i++)
        if (cpu_runs(all_ops[i])) return all_ops[i];
    return &sm_kernels_scalar;
}

const char *sm_kernels_isa(void) { return kernel_ops()->name; }

int sm_kernels_force_isa(const char *isa) {
    if (isa == NULL) { forced_ops = NULL; return 0; }
    for (size_t i = 0; i < N_OPS; i++)
        if (strcmp(isa, all_ops[i]->name) == 0) {
            if (!cpu_runs(all_ops[i])) return -1;
            forced_ops = all_ops[i];
            return 0;
        }
    return -1;
}

static size_t round_up64(size_t n) { return (n + 63) & ~(size_t)63; }

void matmul_forward(float *y, const float *x, const void *w, int type, int n, int in, int out) {
    if (n <= 0 || out <= 0) return;
    assert(in > 0 && in % sm_type_block_elems(type) == 0);
    const sm_kernel_ops *ops = kernel_ops();
    const size_t xq_size = ops->xq_bytes(type, n, in);
    const size_t scratch_row = round_up64(ops->scratch_floats(type, n, in) * sizeof(float));
    const int n_threads = omp_get_max_threads();
    unsigned char *xq = xq_size ? aligned_alloc(64, round_up64(xq_size)) : NULL;
    float *scratch = scratch_row ? aligned_alloc(64, (size_t)n_threads * scratch_row) : NULL;
    if ((xq_size && !xq) || (scratch_row && !scratch)) { /* out of memory: the slow way */
        free(xq);
        free(scratch);
        matmul_forward_ref(y, x, w, type, n, in, out);
        return;
    }
    const int n_chunks = (out + SM_ROW_CHUNK - 1) / SM_ROW_CHUNK;
    /* a small product is not worth waking threads for */
    const int team = (double)n * in * out < 65536 ? 1 : n_chunks < n_threads ? n_chunks : n_threads;
#pragma omp parallel num_threads(team)
    {
        if (xq) {
#pragma omp for schedule(static)
            for (int t0 = 0; t0 < n; t0 += SM_X_TILE) ops->prepare_x(xq, x, type, n, in, t0, t0 + SM_X_TILE < n ? t0 + SM_X_TILE : n);
        }
        float *my_scratch = scratch ? (float *)((unsigned char *)scratch + (size_t)omp_get_thread_num() * scratch_row) : NULL;
#pragma omp for schedule(static)
        for (int c = 0; c < n_chunks; c++) {
            const int o0 = c * SM_ROW_CHUNK, o1 = o0 + SM_ROW_CHUNK < out ? o0 + SM_ROW_CHUNK : out;
            ops->matmul_rows(y, x, xq, w, type, n, in, out, o0, o1, my_scratch);
        }
    }
    free(xq);
    free(scratch);
}

void rmsnorm_forward(float *y, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((long)n * d >= 32768)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        float *yt = y + (size_t)t * d;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < d; i++) sum += (double)(xt[i] * xt[i]);
        const float scale = 1.0f / sqrtf((float)(sum / d) + eps);
#pragma omp simd
        for (int i = 0; i < d; i++) yt[i] = xt[i] * scale * w[i];
    }
}

#define ROPE_MAX_HALF 512 /* head_dim up to 1024 */

void rope_forward(float *x, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox) {
    const float theta_scale = powf(freq_base, -2.0f / (float)head_dim);
    const int half = head_dim / 2;
    if (half > ROPE_MAX_HALF) { rope_forward_ref(x, pos, n, n_head, head_dim, freq_base, neox); return; }
#pragma omp parallel for schedule(static) if (n >= 8)
    for (int t = 0; t < n; t++) {
        float cos_t[ROPE_MAX_HALF], sin_t[ROPE_MAX_HALF];
        float theta = (float)pos[t]; /* the same float recurrence as ggml and the reference */
        for (int i = 0; i < half; i++, theta *= theta_scale) { cos_t[i] = cosf(theta); sin_t[i] = sinf(theta); }
        for (int h = 0; h < n_head; h++) {
            float *xh = x + ((size_t)t * n_head + h) * head_dim;
            if (neox) {
#pragma omp simd
                for (int i = 0; i < half; i++) {
                    const float x0 = xh[i], x1 = xh[i + half];
                    xh[i] = x0 * cos_t[i] - x1 * sin_t[i];
                    xh[i + half] = x0 * sin_t[i] + x1 * cos_t[i];
                }
            } else {
#pragma omp simd
                for (int i = 0; i < half; i++) {
                    const float x0 = xh[2 * i], x1 = xh[2 * i + 1];
                    xh[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
                    xh[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
                }
            }
        }
    }
}

void softmax_forward(float *x, int n) {
    if (n > 0) kernel_ops()->softmax(x, n);
}

#define SWIGLU_CHUNK 4096

void swiglu_forward(float *h, const float *gate, const float *up, int n) {
    const sm_kernel_ops *ops = kernel_ops();
    if (n < 4 * SWIGLU_CHUNK) { ops->swiglu(h, gate, up, n); return; }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i += SWIGLU_CHUNK)
        ops->swiglu(h + i, gate + i, up + i, n - i < SWIGLU_CHUNK ? n - i : SWIGLU_CHUNK);
}

void attention_forward(float *out, const float *q, const float *k_cache, const float *v_cache,
                       float *att, int n, int pos0, int n_head, int n_head_kv, int head_dim) {
    const sm_kernel_ops *ops = kernel_ops();
    const int group = n_head / n_head_kv, kv_dim = n_head_kv * head_dim, att_row = pos0 + n;
    const float scale = 1.0f / sqrtf((float)head_dim);
    /* Several tokens: the query heads of a kv head go together, so that each key and value row
     * is read once for all of them; that needs group score rows per thread, beyond `att`. */
    float *scores = n > 1 && group > 1 ? malloc(sizeof(float) * omp_get_max_threads() * group * att_row) : NULL;
    if (scores) {
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
        for (int t = 0; t < n; t++)
            for (int g = 0; g < n_head_kv; g++) {
                const size_t qo = ((size_t)t * n_head + (size_t)g * group) * head_dim, kvo = (size_t)g * head_dim;
                ops->attention_heads(out + qo, q + qo, k_cache + kvo, v_cache + kvo,
                                     scores + (size_t)omp_get_thread_num() * group * att_row, group, pos0 + t + 1,
                                     kv_dim, head_dim, scale);
            }
        free(scores);
        return;
    }
    /* One token (or no memory): one head per unit of work, spread over more threads. */
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (n * n_head > 1)
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            const size_t qo = ((size_t)t * n_head + h) * head_dim, kvo = (size_t)(h / group) * head_dim;
            ops->attention_heads(out + qo, q + qo, k_cache + kvo, v_cache + kvo,
                                 att + (size_t)omp_get_thread_num() * att_row, 1, pos0 + t + 1, kv_dim, head_dim, scale);
        }
}

void lora_forward_f16(float *y, float *ax, float *bax, const float *x, const uint16_t *a, const uint16_t *b, float s,
                      int n, int in, int rank, int out) {
    if (n <= 0) return;
    matmul_forward(ax, x, a, SM_TYPE_F16, n, in, rank);
    matmul_forward(bax, ax, b, SM_TYPE_F16, n, rank, out);
    const size_t count = (size_t)n * out;
#pragma omp simd
    for (size_t i = 0; i < count; i++) y[i] += s * bax[i];
}
