/* kernels_isa.h: the contract between the kernel dispatcher (kernels.c) and the SIMD paths
 * (kernels_avx512.c, kernels_avx2.c, kernels_scalar.c). Internal to the kernels module.
 *
 * kernels.c owns threads, scratch memory and the choice of path; a path supplies the
 * single-threaded inner pieces below. Each path's file is compiled for its own instruction set
 * with `#pragma GCC target`, so a binary built for a baseline CPU still carries the fast paths
 * and kernels.c only calls one after __builtin_cpu_supports says the CPU has it.
 */
#ifndef SM_KERNELS_ISA_H
#define SM_KERNELS_ISA_H

#include <stddef.h>

typedef struct sm_kernel_ops {
    const char *name; /* "avx512", "avx2", "scalar" */
    /* Bytes of the prepared activations of n rows of `in` floats for weights of `type`; 0 when
     * the path reads x as f32 directly. */
    size_t (*xq_bytes)(int type, int n, int in);
    /* Prepares rows t0..t1-1 of x (n,in) into xq (64-byte aligned), t0 a multiple of SM_X_TILE
     * and t1 = min(t0 + SM_X_TILE, n): for quantized weights the rows quantized to Q8_0 exactly as
     * sm_quantize_row does; for float weights, where a path wants it, the rows interleaved. */
    void (*prepare_x)(void *xq, const float *x, int type, int n, int in, int t0, int t1);
    /* Floats of per-thread scratch matmul_rows needs for n tokens. */
    size_t (*scratch_floats)(int type, int n, int in);
    /* y[t*out + o] for every token t < n and weight row o in [o0, o1) (o1 - o0 <= SM_ROW_CHUNK).
     * x (n,in) f32; xq: the prepared rows (prepare_x), or NULL when xq_bytes is 0. */
    void (*matmul_rows)(float *y, const float *x, const void *xq, const void *w, int type,
                        int n, int in, int out, int o0, int o1, float *scratch);
    void (*softmax)(float *x, int n);
    void (*swiglu)(float *h, const float *gate, const float *up, int n);
    /* n_q query heads that share one kv head, against n_kv cached positions:
     * out (n_q, head_dim) = softmax(q·K^T * scale) · V, q (n_q, head_dim);
     * k, v: row j at k + j*kv_stride; att: scratch of n_q * n_kv floats. */
    void (*attention_heads)(float *out, const float *q, const float *k, const float *v, float *att,
                            int n_q, int n_kv, int kv_stride, int head_dim, float scale);
} sm_kernel_ops;

/* Activation rows per prepare_x call. */
#define SM_X_TILE 8

/* Weight rows per unit of work that the dispatcher hands one thread. */
#define SM_ROW_CHUNK 32

extern const sm_kernel_ops sm_kernels_avx512, sm_kernels_avx2, sm_kernels_scalar;

#endif
