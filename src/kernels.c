/* kernels.c: the optimised forward kernels (provisional: each calls its reference in
 * kernels_ref.c until the SIMD paths land). */
#include "kernels.h"

#include <stddef.h>
#include <string.h>

void matmul_forward(float *y, const float *x, const void *w, int type, int n, int in, int out) {
    matmul_forward_ref(y, x, w, type, n, in, out);
}
void rmsnorm_forward(float *y, const float *x, const float *w, int n, int d, float eps) {
    rmsnorm_forward_ref(y, x, w, n, d, eps);
}
void rope_forward(float *x, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox) {
    rope_forward_ref(x, pos, n, n_head, head_dim, freq_base, neox);
}
void softmax_forward(float *x, int n) { softmax_forward_ref(x, n); }
void swiglu_forward(float *h, const float *gate, const float *up, int n) { swiglu_forward_ref(h, gate, up, n); }
void attention_forward(float *out, const float *q, const float *k_cache, const float *v_cache,
                       float *att, int n, int pos0, int n_head, int n_head_kv, int head_dim) {
    attention_forward_ref(out, q, k_cache, v_cache, att, n, pos0, n_head, n_head_kv, head_dim);
}
const char *sm_kernels_isa(void) { return "scalar"; }
int sm_kernels_force_isa(const char *isa) { return isa == NULL || strcmp(isa, "scalar") == 0 ? 0 : -1; }
