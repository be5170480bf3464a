/* kernels.h: the numeric kernels of the forward pass. Each optimised kernel (kernels.c, SIMD
 * and OpenMP, dispatched on the CPU's features at run time) has a plain reference
 * (kernels_ref.c, `_ref` suffix) that the tests hold it against.
 *
 * Conventions (llm.c): outputs first, then inputs, then sizes; shapes beside the arguments;
 * matrices row-major. A weight matrix W of `out` rows and `in` columns is stored as `out` rows of
 * `in` elements of its ggml type (tensor.h), exactly as a GGUF tensor with ne = {in, out}.
 */
#ifndef SM_KERNELS_H
#define SM_KERNELS_H

#include <stdint.h>

/* y (n,out) = x (n,in) · W^T, W (out,in) of type `type`. For Q8_0/Q4_0 weights x is first
 * quantized to Q8_0 blocks, as llama.cpp does, so results match llama.cpp's to float rounding.
 * in must be a multiple of 32 for quantized types. Uses the threads of the enclosing OpenMP
 * setting (omp_set_num_threads). */
void matmul_forward(float *y, const float *x, const void *w, int type, int n, int in, int out);
void matmul_forward_ref(float *y, const float *x, const void *w, int type, int n, int in, int out);

/* y (n,d) = x / rms(x) * w, rms over each row with eps inside the root. */
void rmsnorm_forward(float *y, const float *x, const float *w, int n, int d, float eps);
void rmsnorm_forward_ref(float *y, const float *x, const float *w, int n, int d, float eps);

/* Rotary embedding in place on x (n, n_head*head_dim), row t at position pos[t].
 * neox = 0: llama.cpp's LLAMA_ROPE_TYPE_NORM, pairs (2i, 2i+1) (llama, llama2.c);
 * neox = 1: LLAMA_ROPE_TYPE_NEOX, pairs (i, i+head_dim/2) (qwen2).
 * theta_i = pos * freq_base^(-2i/head_dim). */
void rope_forward(float *x, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox);
void rope_forward_ref(float *x, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox);

/* In place softmax of x (n). */
void softmax_forward(float *x, int n);
void softmax_forward_ref(float *x, int n);

/* h (n) = silu(gate) * up. */
void swiglu_forward(float *h, const float *gate, const float *up, int n);
void swiglu_forward_ref(float *h, const float *gate, const float *up, int n);

/* Causal grouped-query attention for n new tokens at positions pos0..pos0+n-1.
 * out (n, n_head*head_dim); q (n, n_head*head_dim);
 * k_cache, v_cache (n_ctx, n_head_kv*head_dim) holding positions 0..pos0+n-1 already;
 * query head h uses kv head h / (n_head / n_head_kv); scale 1/sqrt(head_dim).
 * att: scratch of n_threads * n_ctx floats (one row per thread), n_threads = omp_get_max_threads().
 * With n > 1 and grouped heads the optimised kernel takes the query heads of a kv head together
 * and allocates its own n_threads * (n_head / n_head_kv) score rows (falling back to att). */
void attention_forward(float *out, const float *q, const float *k_cache, const float *v_cache,
                       float *att, int n, int pos0, int n_head, int n_head_kv, int head_dim);
void attention_forward_ref(float *out, const float *q, const float *k_cache, const float *v_cache,
                           float *att, int n, int pos0, int n_head, int n_head_kv, int head_dim);

/* The low-rank delta of a LoRA adapter held as f16 (lora.h, sm_lora_to_f16), added to the
 * projection's output: y (n,out) += s * (x (n,in) · A^T) · B^T, A (rank,in) and B (out,rank)
 * f16 (ggml's half); ax (n,rank) and bax (n,out) scratch. The two products are matmul_forward's
 * F16 kernels (one token: a plain row-by-row GEMV with no scratch and no thread wake-up). */
void lora_forward_f16(float *y, float *ax, float *bax, const float *x, const uint16_t *a, const uint16_t *b, float s,
                      int n, int in, int rank, int out);
void lora_forward_f16_ref(float *y, float *ax, float *bax, const float *x, const uint16_t *a, const uint16_t *b, float s,
                          int n, int in, int rank, int out);

/* Which SIMD path the optimised kernels take: "avx512" (AVX-512 F/BW/VL/VNNI), "avx2" (AVX2,
 * FMA, F16C) or "scalar"; the best this CPU has unless sm_kernels_force_isa chose one. */
const char *sm_kernels_isa(void);

/* For tests and benchmarks: makes every optimised kernel take the path `isa` ("avx512", "avx2",
 * "scalar"), or the best available again with NULL. Returns 0, or -1 when this CPU lacks it
 * (nothing changes then). Process-wide; not to be called while kernels run. */
int sm_kernels_force_isa(const char *isa);

#endif
