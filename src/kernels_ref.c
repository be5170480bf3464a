/* kernels_ref.c: the plain references of the forward kernels (kernels.h).
 *
 * Straight loops with no SIMD intrinsics and no threads, written to be obviously right; the tests
 * hold each optimised kernel in kernels.c against its reference here. Quantized matmul follows
 * llama.cpp's semantics: each activation row is quantized to Q8_0 with the reference quantizer,
 * and each 32-block contributes its exact integer dot times d_w * d_x, summed in float. RoPE and
 * RMSNorm follow ggml's CPU code (iterated theta, RMS sum in double).
 */
#include "kernels.h"

#include "tensor.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

/* One output of a quantized weight row against a Q8_0 activation row of nb blocks. */
static float dot_q8_0_q8_0(const sm_block_q8_0 *w, const sm_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < SM_QK; j++) sumi += w[b].qs[j] * x[b].qs[j];
        sum += (float)sumi * (sm_fp16_to_fp32(w[b].d) * sm_fp16_to_fp32(x[b].d));
    }
    return sum;
}

static float dot_q4_0_q8_0(const sm_block_q4_0 *w, const sm_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < SM_QK / 2; j++) {
            sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + SM_QK / 2];
        }
        sum += (float)sumi * (sm_fp16_to_fp32(w[b].d) * sm_fp16_to_fp32(x[b].d));
    }
    return sum;
}

static float weight_f32(const void *w, int type, size_t i) {
    switch (type) {
    case SM_TYPE_F32: return ((const float *)w)[i];
    case SM_TYPE_F16: return sm_fp16_to_fp32(((const uint16_t *)w)[i]);
    case SM_TYPE_BF16: return sm_bf16_to_fp32(((const uint16_t *)w)[i]);
    default: assert(0 && "not a float type"); return 0.0f;
    }
}

void matmul_forward_ref(float *y, const float *x, const void *w, int type, int n, int in, int out) {
    if (type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0) {
        assert(in % SM_QK == 0);
        const int nb = in / SM_QK;
        sm_block_q8_0 *xq = malloc((size_t)nb * sizeof *xq);
        assert(xq);
        for (int t = 0; t < n; t++) {
            sm_quantize_row(SM_TYPE_Q8_0, xq, x + (size_t)t * in, in);
            for (int o = 0; o < out; o++)
                y[(size_t)t * out + o] = type == SM_TYPE_Q8_0
                    ? dot_q8_0_q8_0((const sm_block_q8_0 *)w + (size_t)o * nb, xq, nb)
                    : dot_q4_0_q8_0((const sm_block_q4_0 *)w + (size_t)o * nb, xq, nb);
        }
        free(xq);
        return;
    }
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            float sum = 0.0f;
            for (int i = 0; i < in; i++) sum += weight_f32(w, type, (size_t)o * in + i) * x[(size_t)t * in + i];
            y[(size_t)t * out + o] = sum;
        }
}

void rmsnorm_forward_ref(float *y, const float *x, const float *w, int n, int d, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        double sum = 0.0;
        for (int i = 0; i < d; i++) sum += (double)(xt[i] * xt[i]);
        const float scale = 1.0f / sqrtf((float)(sum / d) + eps);
        for (int i = 0; i < d; i++) y[(size_t)t * d + i] = xt[i] * scale * w[i];
    }
}

void rope_forward_ref(float *x, const int *pos, int n, int n_head, int head_dim, float freq_base, int neox) {
    const float theta_scale = powf(freq_base, -2.0f / (float)head_dim);
    const int half = head_dim / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            float *xh = x + ((size_t)t * n_head + h) * head_dim;
            float theta = (float)pos[t];
            for (int i = 0; i < half; i++, theta *= theta_scale) {
                const float c = cosf(theta), s = sinf(theta);
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float x0 = xh[i0], x1 = xh[i1];
                xh[i0] = x0 * c - x1 * s;
                xh[i1] = x0 * s + x1 * c;
            }
        }
}

void softmax_forward_ref(float *x, int n) {
    float max = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) max = fmaxf(max, x[i]);
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

void swiglu_forward_ref(float *h, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void attention_forward_ref(float *out, const float *q, const float *k_cache, const float *v_cache,
                           float *att, int n, int pos0, int n_head, int n_head_kv, int head_dim) {
    const int group = n_head / n_head_kv, kv_dim = n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int t = 0; t < n; t++) {
        const int n_kv = pos0 + t + 1; /* causal: positions 0..pos0+t */
        for (int h = 0; h < n_head; h++) {
            const float *qh = q + ((size_t)t * n_head + h) * head_dim;
            const size_t kv_off = (size_t)(h / group) * head_dim;
            for (int j = 0; j < n_kv; j++) {
                const float *k = k_cache + (size_t)j * kv_dim + kv_off;
                float s = 0.0f;
                for (int i = 0; i < head_dim; i++) s += qh[i] * k[i];
                att[j] = s * scale;
            }
            softmax_forward_ref(att, n_kv);
            float *oh = out + ((size_t)t * n_head + h) * head_dim;
            for (int i = 0; i < head_dim; i++) oh[i] = 0.0f;
            for (int j = 0; j < n_kv; j++) {
                const float *v = v_cache + (size_t)j * kv_dim + kv_off;
                for (int i = 0; i < head_dim; i++) oh[i] += att[j] * v[i];
            }
        }
    }
}

void lora_forward_f16_ref(float *y, float *ax, float *bax, const float *x, const uint16_t *a, const uint16_t *b, float s,
                          int n, int in, int rank, int out) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * in;
        float *axt = ax + (size_t)t * rank, *baxt = bax + (size_t)t * out;
        for (int r = 0; r < rank; r++) {
            float sum = 0.0f;
            for (int i = 0; i < in; i++) sum += sm_fp16_to_fp32(a[(size_t)r * in + i]) * xt[i];
            axt[r] = sum;
        }
        for (int o = 0; o < out; o++) {
            float sum = 0.0f;
            for (int r = 0; r < rank; r++) sum += sm_fp16_to_fp32(b[(size_t)o * rank + r]) * axt[r];
            baxt[o] = sum;
            y[(size_t)t * out + o] += s * sum;
        }
    }
}
