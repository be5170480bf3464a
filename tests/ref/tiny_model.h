/* tiny_model.h: for the training tests, a Llama-family model built in memory (no file) from one
 * flat f32 array of weights in a fixed order, its matrices stored as any type; and a double-
 * precision forward of the same model (with an optional LoRA adapter) that gradient checks take
 * central differences of. Header-only, test code.
 *
 * Weight order (each matrix `out` rows of `in`): token_embd (n_vocab, n_embd); per layer
 * attn_norm (n_embd), attn_q, [q bias], attn_k, [k bias], attn_v, [v bias], attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down; output_norm; output (n_vocab, n_embd) unless tied. This is
 * also the order of train_model.c's FULL parameter table.
 */
#ifndef SM_TESTS_TINY_MODEL_H
#define SM_TESTS_TINY_MODEL_H

#include "lora.h"
#include "model.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sm_model model;
    int has_bias;
    void *store[512]; /* everything allocated, freed by tiny_model_free */
    int n_store;
} tiny_model;

static inline void *tiny_keep(tiny_model *t, size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || t->n_store >= 512) { fprintf(stderr, "tiny_model: out of memory\n"); exit(1); }
    return t->store[t->n_store++] = p;
}

static inline int tiny_proj_in(const sm_model_config *c, int p) {
    return p == SM_PROJ_O ? c->n_head * c->head_dim : p == SM_PROJ_DOWN ? c->n_ff : c->n_embd;
}
static inline int tiny_proj_out(const sm_model_config *c, int p) {
    switch (p) {
    case SM_PROJ_Q: return c->n_head * c->head_dim;
    case SM_PROJ_K: case SM_PROJ_V: return c->n_head_kv * c->head_dim;
    case SM_PROJ_GATE: case SM_PROJ_UP: return c->n_ff;
    default: return c->n_embd;
    }
}

static inline size_t tiny_weights_count(const sm_model_config *c, int has_bias) {
    size_t n = (size_t)c->n_vocab * c->n_embd * (c->tied_output ? 1 : 2) + c->n_embd;
    for (int p = 0; p < SM_PROJ_COUNT; p++)
        n += (size_t)c->n_layer * ((size_t)tiny_proj_in(c, p) * tiny_proj_out(c, p) + (has_bias && p < SM_PROJ_O ? tiny_proj_out(c, p) : 0));
    return n + 2 * (size_t)c->n_layer * c->n_embd;
}

/* A weight of `type` holding w (out, in) converted; *deq gets the f32 values the kernels see. */
static inline sm_weight tiny_weight(tiny_model *t, const char *name, const float *w, int type, int in, int out) {
    size_t row_bytes = 0;
    sm_type_row_bytes(type, in, &row_bytes);
    unsigned char *data = tiny_keep(t, row_bytes * (size_t)out);
    for (int o = 0; o < out; o++) sm_quantize_row(type, data + (size_t)o * row_bytes, w + (size_t)o * in, in);
    char *nm = tiny_keep(t, strlen(name) + 1);
    strcpy(nm, name);
    return (sm_weight){.name = nm, .data = data, .type = type, .in = in, .out = out, .row_bytes = row_bytes};
}

/* Builds the model; weights in the order above. */
static inline void tiny_model_build(tiny_model *t, const sm_model_config *c, const float *weights, int type, int has_bias) {
    memset(t, 0, sizeof *t);
    t->has_bias = has_bias;
    sm_model *m = &t->model;
    m->config = *c;
    m->layers = tiny_keep(t, sizeof(sm_layer) * (size_t)c->n_layer);
    const float *w = weights;
    char name[64];
    m->token_embd = tiny_weight(t, "token_embd.weight", w, type, c->n_embd, c->n_vocab);
    w += (size_t)c->n_vocab * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        sm_layer *L = &m->layers[l];
        float *norm = tiny_keep(t, sizeof(float) * c->n_embd);
        memcpy(norm, w, sizeof(float) * c->n_embd);
        L->attn_norm = norm;
        w += c->n_embd;
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const int in = tiny_proj_in(c, p), out = tiny_proj_out(c, p);
            if (p == SM_PROJ_GATE) {
                norm = tiny_keep(t, sizeof(float) * c->n_embd);
                memcpy(norm, w, sizeof(float) * c->n_embd);
                L->ffn_norm = norm;
                w += c->n_embd;
            }
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, sm_proj_name(p));
            L->proj[p] = tiny_weight(t, name, w, type, in, out);
            w += (size_t)in * out;
            if (has_bias && p < SM_PROJ_O) {
                float *b = tiny_keep(t, sizeof(float) * out);
                memcpy(b, w, sizeof(float) * out);
                L->bias[p] = b;
                w += out;
            }
        }
    }
    float *norm = tiny_keep(t, sizeof(float) * c->n_embd);
    memcpy(norm, w, sizeof(float) * c->n_embd);
    m->output_norm = norm;
    w += c->n_embd;
    m->output = c->tied_output ? m->token_embd : tiny_weight(t, "output.weight", w, type, c->n_embd, c->n_vocab);
}

static inline void tiny_model_free(tiny_model *t) {
    for (int i = 0; i < t->n_store; i++) free(t->store[i]);
    t->n_store = 0;
}

/* ---- the double-precision forward ------------------------------------------------------------ */

/* The model as doubles: matrices dequantized from the stored type; LoRA pairs (or NULL). */
typedef struct {
    sm_model_config c;
    double *tok, *out_norm, *output;
    struct {
        double *attn_norm, *ffn_norm, *w[SM_PROJ_COUNT], *bias[SM_PROJ_COUNT], *la[SM_PROJ_COUNT], *lb[SM_PROJ_COUNT];
    } *layers;
    int rank;
    double lora_scale;
    const unsigned char *lora_on; /* (B*T) rows where the adapter is on; NULL: everywhere */
} dmodel;

static inline double *tiny_deq(const sm_weight *w) {
    double *d = malloc(sizeof(double) * (size_t)w->in * w->out);
    float *row = malloc(sizeof(float) * (size_t)w->in);
    for (int o = 0; o < w->out; o++) {
        sm_dequantize_row(w->type, row, (const char *)w->data + (size_t)o * w->row_bytes, w->in);
        for (int i = 0; i < w->in; i++) d[(size_t)o * w->in + i] = row[i];
    }
    free(row);
    return d;
}
static inline double *tiny_vec(const float *v, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = v[i];
    return d;
}

/* A double model of m (not sharing memory); lora_params (NULL: none) is a double copy of the
 * adapter's slab, laid out as lora->params. */
static inline void dmodel_make(dmodel *d, const sm_model *m, const sm_lora *lora, double *lora_params) {
    const sm_model_config *c = &m->config;
    d->c = *c;
    d->tok = tiny_deq(&m->token_embd);
    d->out_norm = tiny_vec(m->output_norm, c->n_embd);
    d->output = tiny_deq(&m->output);
    d->layers = calloc((size_t)c->n_layer, sizeof *d->layers);
    d->rank = lora ? lora->rank : 0;
    d->lora_on = NULL;
    d->lora_scale = lora ? sm_lora_scale(lora) : 0.0;
    for (int l = 0; l < c->n_layer; l++) {
        d->layers[l].attn_norm = tiny_vec(m->layers[l].attn_norm, c->n_embd);
        d->layers[l].ffn_norm = tiny_vec(m->layers[l].ffn_norm, c->n_embd);
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            d->layers[l].w[p] = tiny_deq(&m->layers[l].proj[p]);
            d->layers[l].bias[p] = m->layers[l].bias[p] ? tiny_vec(m->layers[l].bias[p], m->layers[l].proj[p].out) : NULL;
            const sm_lora_pair *pr = lora ? &lora->pairs[(size_t)l * SM_PROJ_COUNT + p] : NULL;
            if (pr && pr->a) {
                d->layers[l].la[p] = lora_params + (pr->a - lora->params);
                d->layers[l].lb[p] = lora_params + (pr->b - lora->params);
            }
        }
    }
}

static inline void dmodel_free(dmodel *d) {
    free(d->tok); free(d->out_norm);
    if (d->output != d->tok) free(d->output);
    for (int l = 0; l < d->c.n_layer; l++) {
        free(d->layers[l].attn_norm); free(d->layers[l].ffn_norm);
        for (int p = 0; p < SM_PROJ_COUNT; p++) { free(d->layers[l].w[p]); free(d->layers[l].bias[p]); }
    }
    free(d->layers);
}

/* y (n, out) = x W^T + bias + s B (A x) */
static inline void d_project(double *y, const double *x, const double *w, const double *bias, const double *la, const double *lb,
                      int rank, double s, const unsigned char *on, int n, int in, int out) {
    double u[64];
    for (int t = 0; t < n; t++) {
        const double *xt = x + (size_t)t * in;
        const double *lat = on && !on[t] ? NULL : la;
        if (lat)
            for (int j = 0; j < rank; j++) {
                u[j] = 0.0;
                for (int i = 0; i < in; i++) u[j] += la[(size_t)j * in + i] * xt[i];
            }
        for (int o = 0; o < out; o++) {
            double v = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++) v += w[(size_t)o * in + i] * xt[i];
            if (lat)
                for (int j = 0; j < rank; j++) v += s * lb[(size_t)o * rank + j] * u[j];
            y[(size_t)t * out + o] = v;
        }
    }
}

static inline void d_rmsnorm(double *y, const double *x, const double *w, int n, int d, double eps) {
    for (int t = 0; t < n; t++) {
        double ss = 0.0;
        for (int i = 0; i < d; i++) ss += x[(size_t)t * d + i] * x[(size_t)t * d + i];
        const double k = 1.0 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) y[(size_t)t * d + i] = x[(size_t)t * d + i] * k * w[i];
    }
}

static inline void d_rope(double *x, const int *pos, int n, int n_head, int head_dim, float base, int neox) {
    const float theta_scale = powf(base, -2.0f / (float)head_dim);
    const int half = head_dim / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            double *xh = x + ((size_t)t * n_head + h) * head_dim;
            float theta = (float)pos[t];
            for (int i = 0; i < half; i++, theta *= theta_scale) {
                const double cs = cos((double)theta), sn = sin((double)theta);
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const double x0 = xh[i0], x1 = xh[i1];
                xh[i0] = x0 * cs - x1 * sn;
                xh[i1] = x0 * sn + x1 * cs;
            }
        }
}

/* logits (B*T, n_vocab) of the double model; seg as in train_model.h. */
static inline void dmodel_logits(const dmodel *d, double *logits, const int *tokens, const int *seg, int B, int T) {
    const sm_model_config *c = &d->c;
    const int n = B * T, C = c->n_embd, F = c->n_ff, hd = c->head_dim;
    const int qd = c->n_head * hd, kvd = c->n_head_kv * hd, group = c->n_head / c->n_head_kv;
    double *x = calloc((size_t)n * C, sizeof(double)), *xn = calloc((size_t)n * C, sizeof(double));
    double *q = calloc((size_t)n * qd, sizeof(double)), *k = calloc((size_t)n * kvd, sizeof(double));
    double *v = calloc((size_t)n * kvd, sizeof(double)), *ao = calloc((size_t)n * qd, sizeof(double));
    double *g = calloc((size_t)n * F, sizeof(double)), *u = calloc((size_t)n * F, sizeof(double));
    double *y = calloc((size_t)n * (F > C ? F : C), sizeof(double)), *a = calloc((size_t)T, sizeof(double));
    int *pos = calloc((size_t)n, sizeof(int)), *start = calloc((size_t)n, sizeof(int));
    for (int b = 0; b < B; b++) {
        int s0 = 0;
        for (int t = 0; t < T; t++) {
            const int i = b * T + t;
            if (seg && t > 0 && seg[i] != seg[i - 1]) s0 = t;
            start[i] = s0;
            pos[i] = t - s0;
        }
    }
    for (int t = 0; t < n; t++) memcpy(x + (size_t)t * C, d->tok + (size_t)tokens[t] * C, sizeof(double) * C);
    for (int l = 0; l < c->n_layer; l++) {
        const double s = d->lora_scale;
        const int r = d->rank;
#define P(p, dst, src, in, out) d_project(dst, src, d->layers[l].w[p], d->layers[l].bias[p], d->layers[l].la[p], d->layers[l].lb[p], r, s, d->lora_on, n, in, out)
        d_rmsnorm(xn, x, d->layers[l].attn_norm, n, C, c->norm_eps);
        P(SM_PROJ_Q, q, xn, C, qd);
        P(SM_PROJ_K, k, xn, C, kvd);
        P(SM_PROJ_V, v, xn, C, kvd);
        d_rope(q, pos, n, c->n_head, hd, c->rope_theta, c->rope_neox);
        d_rope(k, pos, n, c->n_head_kv, hd, c->rope_theta, c->rope_neox);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < c->n_head; h++)
                for (int t = 0; t < T; t++) {
                    const int row = b * T + t, kvo = (h / group) * hd;
                    double max = -1e300, sum = 0.0;
                    for (int j = start[row]; j <= t; j++) {
                        a[j] = 0.0;
                        for (int i = 0; i < hd; i++) a[j] += q[(size_t)row * qd + h * hd + i] * k[(size_t)(b * T + j) * kvd + kvo + i];
                        a[j] /= sqrt((double)hd);
                        if (a[j] > max) max = a[j];
                    }
                    for (int j = start[row]; j <= t; j++) { a[j] = exp(a[j] - max); sum += a[j]; }
                    for (int i = 0; i < hd; i++) {
                        double o = 0.0;
                        for (int j = start[row]; j <= t; j++) o += a[j] / sum * v[(size_t)(b * T + j) * kvd + kvo + i];
                        ao[(size_t)row * qd + h * hd + i] = o;
                    }
                }
        P(SM_PROJ_O, y, ao, qd, C);
        for (size_t i = 0; i < (size_t)n * C; i++) x[i] += y[i];
        d_rmsnorm(xn, x, d->layers[l].ffn_norm, n, C, c->norm_eps);
        P(SM_PROJ_GATE, g, xn, C, F);
        P(SM_PROJ_UP, u, xn, C, F);
        for (size_t i = 0; i < (size_t)n * F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
        P(SM_PROJ_DOWN, y, g, F, C);
        for (size_t i = 0; i < (size_t)n * C; i++) x[i] += y[i];
#undef P
    }
    d_rmsnorm(xn, x, d->out_norm, n, C, c->norm_eps);
    d_project(logits, xn, d->output, NULL, NULL, NULL, 0, 0.0, NULL, n, C, c->n_vocab);
    free(x); free(xn); free(q); free(k); free(v); free(ao); free(g); free(u); free(y); free(a); free(pos); free(start);
}

/* Mean cross-entropy over targets != -1. */
static inline double dmodel_loss(const dmodel *d, const int *tokens, const int *targets, const int *seg, int B, int T) {
    const int n = B * T, V = d->c.n_vocab;
    double *z = malloc(sizeof(double) * (size_t)n * V), loss = 0.0;
    int count = 0;
    dmodel_logits(d, z, tokens, seg, B, T);
    for (int t = 0; t < n; t++) {
        if (targets[t] < 0) continue;
        const double *zt = z + (size_t)t * V;
        double max = -1e300, sum = 0.0;
        for (int i = 0; i < V; i++) if (zt[i] > max) max = zt[i];
        for (int i = 0; i < V; i++) sum += exp(zt[i] - max);
        loss += log(sum) + max - zt[targets[t]];
        count++;
    }
    free(z);
    return count ? loss / count : 0.0;
}

#endif
