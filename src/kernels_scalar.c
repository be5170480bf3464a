/* kernels_scalar.c: the portable path of the kernels (kernels_isa.h): plain C that any CPU runs.
 * Quantized weights take the activations as Q8_0 blocks from sm_quantize_row. */
#include "kernels_isa.h"

#include "tensor.h"

#include <math.h>
#include <stdint.h>

static size_t scalar_xq_bytes(int type, int n, int in) {
    if (type != SM_TYPE_Q8_0 && type != SM_TYPE_Q4_0) return 0;
    return (size_t)n * (size_t)(in / SM_QK) * sizeof(sm_block_q8_0);
}

static void scalar_prepare_x(void *xq, const float *x, int type, int n, int in, int t0, int t1) {
    (void)type; (void)n;
    for (int t = t0; t < t1; t++)
        sm_quantize_row(SM_TYPE_Q8_0, (sm_block_q8_0 *)xq + (size_t)t * (in / SM_QK), x + (size_t)t * in, in);
}

static size_t scalar_scratch_floats(int type, int n, int in) { (void)type; (void)n; (void)in; return 0; }

static float dot_q8_0(const sm_block_q8_0 *w, const sm_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < SM_QK; j++) sumi += w[b].qs[j] * x[b].qs[j];
        sum += (float)sumi * (sm_fp16_to_fp32(w[b].d) * sm_fp16_to_fp32(x[b].d));
    }
    return sum;
}

static float dot_q4_0(const sm_block_q4_0 *w, const sm_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < SM_QK / 2; j++)
            sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + SM_QK / 2];
        sum += (float)sumi * (sm_fp16_to_fp32(w[b].d) * sm_fp16_to_fp32(x[b].d));
    }
    return sum;
}

static void scalar_matmul_rows(float *y, const float *x, const void *xq, const void *w, int type,
                               int n, int in, int out, int o0, int o1, float *scratch) {
    (void)scratch;
    const int nb = in / SM_QK;
    float row[1024]; /* one converted weight row at a time, in pieces of 1024 */
    for (int o = o0; o < o1; o++)
        for (int t = 0; t < n; t++) {
            float sum = 0.0f;
            switch (type) {
            case SM_TYPE_Q8_0:
                sum = dot_q8_0((const sm_block_q8_0 *)w + (size_t)o * nb, (const sm_block_q8_0 *)xq + (size_t)t * nb, nb);
                break;
            case SM_TYPE_Q4_0:
                sum = dot_q4_0((const sm_block_q4_0 *)w + (size_t)o * nb, (const sm_block_q8_0 *)xq + (size_t)t * nb, nb);
                break;
            case SM_TYPE_F32: {
                const float *wr = (const float *)w + (size_t)o * in, *xt = x + (size_t)t * in;
                for (int i = 0; i < in; i++) sum += wr[i] * xt[i];
                break;
            }
            default: { /* F16, BF16: convert a piece of the row, then dot */
                const uint16_t *wr = (const uint16_t *)w + (size_t)o * in;
                const float *xt = x + (size_t)t * in;
                for (int i0 = 0; i0 < in; i0 += 1024) {
                    const int m = in - i0 < 1024 ? in - i0 : 1024;
                    for (int i = 0; i < m; i++)
                        row[i] = type == SM_TYPE_F16 ? sm_fp16_to_fp32(wr[i0 + i]) : sm_bf16_to_fp32(wr[i0 + i]);
                    for (int i = 0; i < m; i++) sum += row[i] * xt[i0 + i];
                }
            }
            }
            y[(size_t)t * out + o] = sum;
        }
}

static void scalar_softmax(float *x, int n) {
    float max = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) max = fmaxf(max, x[i]);
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void scalar_swiglu(float *h, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void scalar_attention_head(float *out, const float *q, const float *k, const float *v, float *att,
                                  int n_kv, int kv_stride, int head_dim, float scale) {
    for (int j = 0; j < n_kv; j++) {
        const float *kj = k + (size_t)j * kv_stride;
        float s = 0.0f;
        for (int i = 0; i < head_dim; i++) s += q[i] * kj[i];
        att[j] = s * scale;
    }
    scalar_softmax(att, n_kv);
    for (int i = 0; i < head_dim; i++) out[i] = 0.0f;
    for (int j = 0; j < n_kv; j++) {
        const float *vj = v + (size_t)j * kv_stride;
        for (int i = 0; i < head_dim; i++) out[i] += att[j] * vj[i];
    }
}

static void scalar_attention_heads(float *out, const float *q, const float *k, const float *v, float *att,
                                  int n_q, int n_kv, int kv_stride, int head_dim, float scale) {
    for (int h = 0; h < n_q; h++)
        scalar_attention_head(out + (size_t)h * head_dim, q + (size_t)h * head_dim, k, v, att + (size_t)h * n_kv, n_kv, kv_stride, head_dim, scale);
}

const sm_kernel_ops sm_kernels_scalar = {
    .name = "scalar",
    .xq_bytes = scalar_xq_bytes,
    .prepare_x = scalar_prepare_x,
    .scratch_floats = scalar_scratch_floats,
    .matmul_rows = scalar_matmul_rows,
    .softmax = scalar_softmax,
    .swiglu = scalar_swiglu,
    .attention_heads = scalar_attention_heads,
};
