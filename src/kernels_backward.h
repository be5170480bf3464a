/* kernels_backward.h: the numeric kernels of training: the forward pieces that keep what their
 * backward needs (RMSNorm's 1/rms, attention's probabilities), and the backward pass of every op
 * of the Llama-family forward (kernels.h). Each optimised kernel (kernels_backward.c: blocked
 * SIMD matrix products dispatched on the CPU at run time, OpenMP) has a plain reference
 * (kernels_backward_ref.c, `_ref` suffix) that the tests hold it against; tests/test_grad_ops.c
 * checks every backward against double-precision central differences.
 *
 * Conventions (llm.c): outputs first, then inputs, then sizes; shapes beside the arguments;
 * matrices row-major; a weight W of `out` rows and `in` columns as in kernels.h. Gradients
 * ACCUMULATE (+=) into their outputs, so callers zero them first. Every kernel is deterministic:
 * each output element is summed by one thread in a fixed order, whatever the thread count.
 */
#ifndef SM_KERNELS_BACKWARD_H
#define SM_KERNELS_BACKWARD_H

#include <stdint.h>

/* dx (n,in) += dy (n,out) · W (out,in), W of any stored type (tensor.h), read as f32. */
void matmul_backward_dx(float *dx, const float *dy, const void *w, int type, int n, int in, int out);
void matmul_backward_dx_ref(float *dx, const float *dy, const void *w, int type, int n, int in, int out);

/* dw (out,in) += dy^T · x, and db (out) += the column sums of dy unless db is NULL.
 * dy (n,out), x (n,in). */
void matmul_backward_dw(float *dw, float *db, const float *dy, const float *x, int n, int in, int out);
void matmul_backward_dw_ref(float *dw, float *db, const float *dy, const float *x, int n, int in, int out);

/* y (n,out) = x (n,in) · W^T for f32 W (out,in) on the same blocked engine as the two above
 * (packing W transposed). The training forward uses matmul_forward (kernels.h), which is as fast
 * or faster at the model shapes; this one is kept for the tests and bench_train's kernel lines. */
void matmul_forward_f32(float *y, const float *x, const float *w, int n, int in, int out);

/* The same three products when the weight is narrow (out or in the LoRA rank, a few to a few dozen):
 * computed transposed, so that the blocked engine's wide side is the n tokens rather than the rank.
 *   matmul_forward_narrow:     y (n,out) = x (n,in) · W^T, W (out,in) f32, out small
 *   matmul_backward_dx_narrow: dx (n,in) += dy (n,out) · W (out,in) f32, in small
 *   matmul_backward_dw_narrow: dw (out,in) += dy^T · x, in small; dy (n,out), x (n,in) */
void matmul_forward_narrow(float *y, const float *x, const float *w, int n, int in, int out);
void matmul_backward_dx_narrow(float *dx, const float *dy, const float *w, int n, int in, int out);
void matmul_backward_dw_narrow(float *dw, const float *dy, const float *x, int n, int in, int out);

/* dwte (n_vocab,d) += dx (n,d) scattered to the rows of tokens (n). */
void embedding_backward(float *dwte, const float *dx, const int *tokens, int n, int d);
void embedding_backward_ref(float *dwte, const float *dx, const int *tokens, int n, int d);

/* y (n,d) = x * rstd * w as rmsnorm_forward, also keeping rstd (n) = 1/sqrt(mean(x^2) + eps). */
void rmsnorm_forward_train(float *y, float *rstd, const float *x, const float *w, int n, int d, float eps);
/* dx (n,d) += d(y)/dx · dy and dw (d) += d(y)/dw · dy (dw NULL: frozen), x, dy (n,d), rstd (n)
 * from rmsnorm_forward_train. */
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                      int n, int d);
void rmsnorm_backward_ref(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int n, int d);

/* In place on dx (n, n_head*head_dim): the gradient through rope_forward (kernels.h) at the same
 * positions, which is the rotation by -theta. */
void rope_backward(float *dx, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox);
void rope_backward_ref(float *dx, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox);

/* dgate, dup (n) += the gradient of h = silu(gate) * up given dh (n). */
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int n);
void swiglu_backward_ref(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int n);

/* Causal grouped-query attention over B rows of T tokens, each token attending to the tokens
 * start[b*T+t] .. t of its own row (start: the first index of its packed segment; 0 without
 * packing). q (B*T, n_head*head_dim), k, v (B*T, n_head_kv*head_dim), out like q;
 * att (B, n_head, T, T) keeps the probabilities (row t nonzero on start..t only, the rest 0).
 * Query head h uses kv head h / (n_head / n_head_kv); scale 1/sqrt(head_dim). */
void attention_forward_train(float *out, float *att, const float *q, const float *k, const float *v, const int *start,
                             int B, int T, int n_head, int n_head_kv, int head_dim);
void attention_forward_train_ref(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int *start, int B, int T, int n_head, int n_head_kv, int head_dim);
/* dq (like q), dk, dv (like k) += the gradients given dout (like out) and the forward's att.
 * Threads split (row, kv head) pairs, so dk and dv need no reduction across threads; the
 * products run as blocked matrix products over the T x T square. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                        const float *k, const float *v, const int *start, int B, int T, int n_head, int n_head_kv,
                        int head_dim);
void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                            const float *k, const float *v, const int *start, int B, int T, int n_head,
                            int n_head_kv, int head_dim);

/* Softmax cross-entropy, forward and backward fused, in place: logits (n,V) on entry, on return
 * row t holds dloss * (softmax(logits_t) - onehot(targets[t])) for targets[t] >= 0 and zeros for
 * a masked row (targets[t] == -1). Returns the sum over unmasked rows of -log softmax(logits_t)
 * [targets[t]], in double. */
double cross_entropy_backward(float *logits, const int *targets, int n, int V, float dloss);
double cross_entropy_backward_ref(float *logits, const int *targets, int n, int V, float dloss);
/* The same sum without the gradient; logits are left unchanged. */
double cross_entropy_forward(const float *logits, const int *targets, int n, int V);

#endif
