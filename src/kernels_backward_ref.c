/* kernels_backward_ref.c: the plain references of the training kernels (kernels_backward.h).
 *
 * Straight loops, no SIMD intrinsics, no threads, written to be obviously right; the tests hold
 * each optimised kernel in kernels_backward.c against its reference here, and these references
 * against double-precision central differences.
 */
#include "kernels_backward.h"

#include "tensor.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void matmul_backward_dx_ref(float *dx, const float *dy, const void *w, int type, int n, int in, int out) {
    size_t row_bytes = 0;
    int bad = sm_type_row_bytes(type, in, &row_bytes);
    assert(!bad);
    (void)bad;
    float *wrow = malloc(sizeof(float) * (size_t)in);
    assert(wrow);
    for (int o = 0; o < out; o++) {
        sm_dequantize_row(type, wrow, (const char *)w + (size_t)o * row_bytes, in);
        for (int t = 0; t < n; t++) {
            const float g = dy[(size_t)t * out + o];
            float *dxt = dx + (size_t)t * in;
            for (int i = 0; i < in; i++) dxt[i] += g * wrow[i];
        }
    }
    free(wrow);
}

void matmul_backward_dw_ref(float *dw, float *db, const float *dy, const float *x, int n, int in, int out) {
    for (int o = 0; o < out; o++) {
        float *dwo = dw + (size_t)o * in;
        for (int i = 0; i < in; i++) {
            float sum = 0.0f;
            for (int t = 0; t < n; t++) sum += dy[(size_t)t * out + o] * x[(size_t)t * in + i];
            dwo[i] += sum;
        }
        if (db) {
            float sum = 0.0f;
            for (int t = 0; t < n; t++) sum += dy[(size_t)t * out + o];
            db[o] += sum;
        }
    }
}

void embedding_backward_ref(float *dwte, const float *dx, const int *tokens, int n, int d) {
    for (int t = 0; t < n; t++)
        for (int i = 0; i < d; i++) dwte[(size_t)tokens[t] * d + i] += dx[(size_t)t * d + i];
}

void rmsnorm_backward_ref(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int n, int d) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d, *dyt = dy + (size_t)t * d;
        const float r = rstd[t];
        double dot = 0.0; /* sum_i dy_i w_i x_i */
        for (int i = 0; i < d; i++) dot += (double)dyt[i] * w[i] * xt[i];
        const float c = (float)(dot * r * r * r / d);
        for (int i = 0; i < d; i++) {
            dx[(size_t)t * d + i] += r * w[i] * dyt[i] - c * xt[i];
            if (dw) dw[i] += dyt[i] * xt[i] * r;
        }
    }
}

void rope_backward_ref(float *dx, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox) {
    const float theta_scale = powf(freq_base, -2.0f / (float)head_dim);
    const int half = head_dim / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            float *g = dx + ((size_t)t * n_head + h) * head_dim;
            float theta = (float)pos[t];
            for (int i = 0; i < half; i++, theta *= theta_scale) {
                const float c = cosf(theta), s = sinf(theta);
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float g0 = g[i0], g1 = g[i1];
                g[i0] = g0 * c + g1 * s;
                g[i1] = -g0 * s + g1 * c;
            }
        }
}

void swiglu_backward_ref(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + expf(-gate[i]));
        dgate[i] += dh[i] * up[i] * sig * (1.0f + gate[i] * (1.0f - sig));
        dup[i] += dh[i] * gate[i] * sig;
    }
}

void attention_forward_train_ref(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int *start, int B, int T, int n_head, int n_head_kv, int head_dim) {
    const int group = n_head / n_head_kv, q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < n_head; h++)
            for (int t = 0; t < T; t++) {
                const size_t row = (size_t)b * T + t;
                const float *qt = q + row * q_dim + (size_t)h * head_dim;
                float *a = att + (((size_t)b * n_head + h) * T + t) * T;
                const int j0 = start[row];
                float max = -INFINITY, sum = 0.0f;
                for (int j = 0; j < T; j++) a[j] = 0.0f;
                for (int j = j0; j <= t; j++) {
                    const float *kj = k + ((size_t)b * T + j) * kv_dim + (size_t)(h / group) * head_dim;
                    float s = 0.0f;
                    for (int i = 0; i < head_dim; i++) s += qt[i] * kj[i];
                    a[j] = s * scale;
                    max = fmaxf(max, a[j]);
                }
                for (int j = j0; j <= t; j++) { a[j] = expf(a[j] - max); sum += a[j]; }
                for (int j = j0; j <= t; j++) a[j] /= sum;
                float *o = out + row * q_dim + (size_t)h * head_dim;
                for (int i = 0; i < head_dim; i++) o[i] = 0.0f;
                for (int j = j0; j <= t; j++) {
                    const float *vj = v + ((size_t)b * T + j) * kv_dim + (size_t)(h / group) * head_dim;
                    for (int i = 0; i < head_dim; i++) o[i] += a[j] * vj[i];
                }
            }
}

void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                            const float *k, const float *v, const int *start, int B, int T, int n_head,
                            int n_head_kv, int head_dim) {
    const int group = n_head / n_head_kv, q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *datt = malloc(sizeof(float) * (size_t)T);
    assert(datt);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < n_head; h++)
            for (int t = 0; t < T; t++) {
                const size_t row = (size_t)b * T + t, kvo = (size_t)(h / group) * head_dim;
                const float *a = att + (((size_t)b * n_head + h) * T + t) * T;
                const float *go = dout + row * q_dim + (size_t)h * head_dim;
                const float *qt = q + row * q_dim + (size_t)h * head_dim;
                float *dqt = dq + row * q_dim + (size_t)h * head_dim;
                const int j0 = start[row];
                float dot = 0.0f; /* sum_j a_j datt_j */
                for (int j = j0; j <= t; j++) {
                    const size_t jr = (size_t)b * T + j;
                    float s = 0.0f;
                    for (int i = 0; i < head_dim; i++) {
                        s += go[i] * v[jr * kv_dim + kvo + i];
                        dv[jr * kv_dim + kvo + i] += a[j] * go[i];
                    }
                    datt[j] = s;
                    dot += a[j] * s;
                }
                for (int j = j0; j <= t; j++) {
                    const size_t jr = (size_t)b * T + j;
                    const float ds = a[j] * (datt[j] - dot) * scale;
                    for (int i = 0; i < head_dim; i++) {
                        dqt[i] += ds * k[jr * kv_dim + kvo + i];
                        dk[jr * kv_dim + kvo + i] += ds * qt[i];
                    }
                }
            }
    free(datt);
}

double cross_entropy_backward_ref(float *logits, const int *targets, int n, int V, float dloss) {
    double loss = 0.0;
    for (int t = 0; t < n; t++) {
        float *z = logits + (size_t)t * V;
        if (targets[t] < 0) {
            for (int i = 0; i < V; i++) z[i] = 0.0f;
            continue;
        }
        float max = -INFINITY;
        for (int i = 0; i < V; i++) max = fmaxf(max, z[i]);
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += exp((double)z[i] - max);
        loss += log(sum) + max - z[targets[t]];
        for (int i = 0; i < V; i++) z[i] = dloss * (float)(exp((double)z[i] - max) / sum);
        z[targets[t]] -= dloss;
    }
    return loss;
}
