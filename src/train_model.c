/* train_model.c: the trainable model (train_model.h): the parameter and gradient slabs, the
 * activations kept for the backward pass (one allocation sliced by a size table), the training
 * forward pass over a (B,T) batch with packing masks, and its backward pass. All arithmetic is in
 * kernels.h and kernels_backward.h; this file sequences it.
 *
 * Per layer the forward keeps the residual input, the residual after attention, 1/rms of both
 * norms, q and k after RoPE, v, the attention probabilities and output, and the FFN's gate and
 * up; the normed inputs and silu(gate)*up are recomputed in the backward pass (cheap, and it
 * keeps the activations at 2*n_embd + 2*q_dim + 2*kv_dim + 2*n_ff floats per token and layer).
 * LoRA keeps s * A drop(x) (N, rank) per adapted projection; dropout masks are recomputed from a
 * counter-based hash. The output projection and the loss run in chunks over the rows that have a
 * target only, so logits for masked prompt tokens are never computed and the (N, n_vocab) logits
 * are never held at once.
 */
#include "train_model.h"

#include "kernels.h"
#include "kernels_backward.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOGIT_CHUNK = 256 }; /* rows per output-projection chunk */

/* A projection as training sees it: the weight in its stored type, and where its gradients go
 * (NULL when frozen). */
typedef struct {
    const void *w;
    int type;
    int in, out;
    const float *bias;  /* (out) or NULL */
    float *dw, *dbias;  /* FULL mode only */
    /* LoRA pair, when adapted */
    const float *lora_a, *lora_b;
    float *dlora_a, *dlora_b;
} proj_ref;

typedef struct {
    const float *attn_norm, *ffn_norm;
    float *d_attn_norm, *d_ffn_norm;
    proj_ref proj[SM_PROJ_COUNT];
    /* activations (N rows) */
    float *resid;   /* (N, C) input of the layer */
    float *mid;     /* (N, C) residual after attention */
    float *rstd1, *rstd2; /* (N) */
    float *q, *k, *v;     /* after RoPE (q, k) */
    float *att;     /* (B, n_head, T, T) */
    float *ao;      /* (N, q_dim) attention output */
    float *gate, *up; /* (N, n_ff) */
    float *lora_u[SM_PROJ_COUNT]; /* (N, rank) s * A drop(x), adapted projections only */
} layer_ref;

struct sm_train_model {
    const sm_model *base;
    sm_lora *lora;
    int mode;
    int max_batch, max_seq;
    float dropout;
    uint64_t seed, rng;
    float grad_scale;
    float lora_scale;
    sm_model_config cfg;

    float *params, *grads;    /* params: lora->params (LORA) or owned (FULL) */
    size_t n_params;
    void *param_slab;         /* FULL: params and grads; LORA: grads */
    sm_train_tensor *tensors;
    int n_tensors;

    /* the model as the passes see it */
    const void *tok_embd;
    int tok_type;
    size_t tok_row_bytes;
    float *d_tok_embd;
    const float *out_norm;
    float *d_out_norm;
    proj_ref output;
    layer_ref *layers;

    /* activations and scratch */
    void *act_slab;
    int *pos, *start;         /* (N) */
    float *resid_final;       /* (N, C) */
    float *rstd_final;        /* (N) */
    float *xn;                /* (N, C) normed input (forward scratch, recomputed in backward) */
    float *xnf;               /* (N, C) final normed rows */
    float *dres;              /* (N, C) gradient of the residual stream */
    float *dxn;               /* (N, C) */
    float *h;                 /* (N, n_ff) */
    float *dh, *dgate, *dup;  /* (N, n_ff) */
    float *dq, *dk, *dv, *dao;/* (N, q_dim / kv_dim) */
    float *tmp;               /* (N, max(n_ff, q_dim, n_embd)) */
    float *xdrop;             /* (N, max in) dropped input of an adapter */
    float *du;                /* (N, rank) */
    float *logits;            /* (LOGIT_CHUNK, n_vocab) */
    float *xg;                /* (LOGIT_CHUNK, C) gathered rows */
    int *rows;                /* (N) rows with a target */
    int *tg;                  /* (N) their targets */
    unsigned char *adapter_on;/* (N) the adapter mask, valid when mask_B > 0 */
    int mask_B, mask_T;
};

static int mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* Slices one 64-byte aligned allocation by a table of (pointer, element count, element size).
 * Returns the slab or NULL (out of memory, overflow). */
typedef struct {
    void **ptr;
    size_t count, elem;
} slab_entry;

static void *slab_alloc(slab_entry *table, size_t n) {
    enum { ALIGN = 64 };
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes;
        if (mul_size(table[i].count, table[i].elem, &bytes) || bytes > SIZE_MAX - total - ALIGN) return NULL;
        total += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    char *slab = aligned_alloc(ALIGN, total ? total : ALIGN);
    if (!slab) return NULL;
    memset(slab, 0, total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *table[i].ptr = table[i].count ? slab + off : NULL;
        off += (table[i].count * table[i].elem + ALIGN - 1) / ALIGN * ALIGN;
    }
    return slab;
}

/* ---- the parameter table ---- */

static int add_tensor(sm_train_model *tm, int cap, const char *name, size_t offset, int rows, int cols, int n_dims) {
    const size_t len = strlen(name);
    if (tm->n_tensors >= cap || len >= sizeof tm->tensors[0].name) return -1;
    sm_train_tensor *t = &tm->tensors[tm->n_tensors++];
    memcpy(t->name, name, len + 1);
    t->offset = offset;
    t->rows = rows;
    t->cols = cols;
    t->n = (size_t)rows * cols;
    t->n_dims = n_dims;
    return 0;
}

/* FULL mode: the tensor table in GGUF file order and the slab size. */
static int build_full_table(sm_train_model *tm) {
    const sm_model *m = tm->base;
    const sm_model_config *c = &tm->cfg;
    int cap = 3 + c->n_layer * (2 + 2 * SM_PROJ_COUNT);
    tm->tensors = calloc((size_t)cap, sizeof *tm->tensors);
    if (!tm->tensors) return -1;
    size_t off = 0;
    char name[64];
#define ADD(nm, rows, cols, dims)                                                    \
    do {                                                                             \
        if (add_tensor(tm, cap, nm, off, rows, cols, dims)) return -1;               \
        off += (size_t)(rows) * (size_t)(cols);                                      \
    } while (0)
    ADD("token_embd.weight", c->n_vocab, c->n_embd, 2);
    for (int l = 0; l < c->n_layer; l++) {
        const sm_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        ADD(name, 1, c->n_embd, 1);
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            if (p == SM_PROJ_GATE) {
                snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
                ADD(name, 1, c->n_embd, 1);
            }
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, sm_proj_name(p));
            ADD(name, L->proj[p].out, L->proj[p].in, 2);
            if (L->bias[p] && p <= SM_PROJ_O) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, sm_proj_name(p));
                ADD(name, 1, L->proj[p].out, 1);
            }
        }
    }
    ADD("output_norm.weight", 1, c->n_embd, 1);
    if (!c->tied_output) ADD("output.weight", c->n_vocab, c->n_embd, 2);
#undef ADD
    tm->n_params = off;
    return 0;
}

static const sm_train_tensor *find_tensor(const sm_train_model *tm, const char *name) {
    for (int i = 0; i < tm->n_tensors; i++)
        if (strcmp(tm->tensors[i].name, name) == 0) return &tm->tensors[i];
    return NULL;
}

/* Converts a stored tensor of n elements to f32. */
static void to_f32(float *dst, const void *src, int type, size_t rows, int cols) {
    size_t row_bytes = 0;
    sm_type_row_bytes(type, cols, &row_bytes);
#pragma omp parallel for schedule(static) if (rows * (size_t)cols >= 262144)
    for (size_t r = 0; r < rows; r++)
        sm_dequantize_row(type, dst + r * cols, (const char *)src + r * row_bytes, cols);
}

static int setup_full(sm_train_model *tm, sm_error *err) {
    const sm_model *m = tm->base;
    const sm_model_config *c = &tm->cfg;
    if (build_full_table(tm)) return sm_err(err, SM_ENOMEM, "out of memory for the parameter table");
    slab_entry table[] = {
        {(void **)&tm->params, tm->n_params, sizeof(float)},
        {(void **)&tm->grads, tm->n_params, sizeof(float)},
    };
    tm->param_slab = slab_alloc(table, 2);
    if (!tm->param_slab)
        return sm_err(err, SM_ENOMEM, "out of memory for %zu trainable parameters and their gradients", tm->n_params);
    float *P = tm->params, *G = tm->grads;
    char name[64];
    const sm_train_tensor *t = find_tensor(tm, "token_embd.weight");
    to_f32(P + t->offset, m->token_embd.data, m->token_embd.type, (size_t)c->n_vocab, c->n_embd);
    tm->tok_embd = P + t->offset;
    tm->tok_type = SM_TYPE_F32;
    tm->tok_row_bytes = sizeof(float) * (size_t)c->n_embd;
    tm->d_tok_embd = G + t->offset;
    for (int l = 0; l < c->n_layer; l++) {
        const sm_layer *L = &m->layers[l];
        layer_ref *R = &tm->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        t = find_tensor(tm, name);
        memcpy(P + t->offset, L->attn_norm, sizeof(float) * (size_t)c->n_embd);
        R->attn_norm = P + t->offset;
        R->d_attn_norm = G + t->offset;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        t = find_tensor(tm, name);
        memcpy(P + t->offset, L->ffn_norm, sizeof(float) * (size_t)c->n_embd);
        R->ffn_norm = P + t->offset;
        R->d_ffn_norm = G + t->offset;
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const sm_weight *w = &L->proj[p];
            proj_ref *pr = &R->proj[p];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, sm_proj_name(p));
            t = find_tensor(tm, name);
            to_f32(P + t->offset, w->data, w->type, (size_t)w->out, w->in);
            pr->w = P + t->offset;
            pr->type = SM_TYPE_F32;
            pr->in = w->in;
            pr->out = w->out;
            pr->dw = G + t->offset;
            snprintf(name, sizeof name, "blk.%d.%s.bias", l, sm_proj_name(p));
            if ((t = find_tensor(tm, name))) {
                memcpy(P + t->offset, L->bias[p], sizeof(float) * (size_t)w->out);
                pr->bias = P + t->offset;
                pr->dbias = G + t->offset;
            }
        }
    }
    t = find_tensor(tm, "output_norm.weight");
    memcpy(P + t->offset, m->output_norm, sizeof(float) * (size_t)c->n_embd);
    tm->out_norm = P + t->offset;
    tm->d_out_norm = G + t->offset;
    t = find_tensor(tm, c->tied_output ? "token_embd.weight" : "output.weight");
    if (!c->tied_output) to_f32(P + t->offset, m->output.data, m->output.type, (size_t)c->n_vocab, c->n_embd);
    tm->output = (proj_ref){.w = P + t->offset, .type = SM_TYPE_F32, .in = c->n_embd, .out = c->n_vocab,
                            .dw = G + t->offset};
    return SM_OK;
}

static int setup_lora(sm_train_model *tm, sm_error *err) {
    const sm_model *m = tm->base;
    const sm_model_config *c = &tm->cfg;
    sm_lora *lo = tm->lora;
    if (!lo) return sm_err(err, SM_EINVAL, "LoRA training needs an adapter");
    if (lo->n_layer != c->n_layer)
        return sm_err(err, SM_EINVAL, "the adapter has %d layers and the base %d", lo->n_layer, c->n_layer);
    if (lo->rank < 1 || !lo->params || !lo->pairs) return sm_err(err, SM_EINVAL, "the adapter has no parameters");
    tm->lora_scale = sm_lora_scale(lo);
    tm->params = lo->params;
    tm->n_params = lo->n_params;
    slab_entry gtable[] = {{(void **)&tm->grads, lo->n_params, sizeof(float)}};
    tm->param_slab = slab_alloc(gtable, 1);
    int cap = 2 * c->n_layer * SM_PROJ_COUNT;
    tm->tensors = calloc((size_t)cap, sizeof *tm->tensors);
    if (!tm->param_slab || !tm->tensors) return sm_err(err, SM_ENOMEM, "out of memory for the adapter's gradients");
    tm->tok_embd = m->token_embd.data;
    tm->tok_type = m->token_embd.type;
    tm->tok_row_bytes = m->token_embd.row_bytes;
    tm->out_norm = m->output_norm;
    tm->output = (proj_ref){.w = m->output.data, .type = m->output.type, .in = c->n_embd, .out = c->n_vocab};
    char name[80];
    for (int l = 0; l < c->n_layer; l++) {
        const sm_layer *L = &m->layers[l];
        layer_ref *R = &tm->layers[l];
        R->attn_norm = L->attn_norm;
        R->ffn_norm = L->ffn_norm;
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const sm_weight *w = &L->proj[p];
            proj_ref *pr = &R->proj[p];
            *pr = (proj_ref){.w = w->data, .type = w->type, .in = w->in, .out = w->out,
                             .bias = p <= SM_PROJ_O ? L->bias[p] : NULL};
            const sm_lora_pair *pair = &lo->pairs[(size_t)l * SM_PROJ_COUNT + p];
            if (!(lo->targets & (1u << p)) || !pair->a) continue;
            if (pair->in != w->in || pair->out != w->out || !pair->b)
                return sm_err(err, SM_EINVAL, "the adapter's %s of layer %d is %dx%d, the base's %s is %dx%d",
                              sm_proj_name(p), l, pair->out, pair->in, w->name ? w->name : sm_proj_name(p), w->out,
                              w->in);
            size_t oa = (size_t)(pair->a - lo->params), ob = (size_t)(pair->b - lo->params);
            size_t na = (size_t)lo->rank * w->in, nb = (size_t)w->out * lo->rank;
            if (pair->a < lo->params || pair->b < lo->params || oa + na > lo->n_params || ob + nb > lo->n_params)
                return sm_err(err, SM_EINVAL, "the adapter's %s of layer %d lies outside its slab", sm_proj_name(p), l);
            pr->lora_a = pair->a;
            pr->lora_b = pair->b;
            pr->dlora_a = tm->grads + oa;
            pr->dlora_b = tm->grads + ob;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, sm_proj_name(p));
            if (add_tensor(tm, cap, name, oa, lo->rank, w->in, 2)) return sm_err(err, SM_EINVAL, "too many pairs");
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, sm_proj_name(p));
            if (add_tensor(tm, cap, name, ob, w->out, lo->rank, 2)) return sm_err(err, SM_EINVAL, "too many pairs");
        }
    }
    return SM_OK;
}

static int setup_activations(sm_train_model *tm, sm_error *err) {
    const sm_model_config *c = &tm->cfg;
    const size_t N = (size_t)tm->max_batch * tm->max_seq, C = (size_t)c->n_embd, F = (size_t)c->n_ff;
    const size_t qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    size_t att = 0, wide = F > qd ? F : qd, max_in = wide > C ? wide : C;
    if (wide < C) wide = C;
    if (mul_size((size_t)tm->max_batch * c->n_head, (size_t)tm->max_seq * tm->max_seq, &att))
        return sm_err(err, SM_ENOMEM, "attention of %d x %d tokens is too large", tm->max_batch, tm->max_seq);
    const size_t rank = tm->lora ? (size_t)tm->lora->rank : 0;
    const size_t lc = N < LOGIT_CHUNK ? N : LOGIT_CHUNK;
    /* common entries, then per-layer entries */
    size_t n_common = 23, per_layer = 11 + SM_PROJ_COUNT;
    size_t n_entries = n_common + (size_t)c->n_layer * per_layer;
    slab_entry *table = calloc(n_entries, sizeof *table);
    if (!table) return sm_err(err, SM_ENOMEM, "out of memory");
    size_t i = 0;
#define E(p, count, elem) table[i++] = (slab_entry){(void **)(p), (count), (elem)}
    E(&tm->pos, N, sizeof(int));
    E(&tm->start, N, sizeof(int));
    E(&tm->resid_final, N * C, sizeof(float));
    E(&tm->rstd_final, N, sizeof(float));
    E(&tm->xn, N * C, sizeof(float));
    E(&tm->xnf, N * C, sizeof(float));
    E(&tm->dres, N * C, sizeof(float));
    E(&tm->dxn, N * C, sizeof(float));
    E(&tm->h, N * F, sizeof(float));
    E(&tm->dh, N * F, sizeof(float));
    E(&tm->dgate, N * F, sizeof(float));
    E(&tm->dup, N * F, sizeof(float));
    E(&tm->dq, N * qd, sizeof(float));
    E(&tm->dk, N * kvd, sizeof(float));
    E(&tm->dv, N * kvd, sizeof(float));
    E(&tm->dao, N * qd, sizeof(float));
    E(&tm->tmp, N * wide, sizeof(float));
    E(&tm->xdrop, rank ? N * max_in : 0, sizeof(float));
    E(&tm->du, N * rank, sizeof(float));
    E(&tm->logits, lc * (size_t)c->n_vocab, sizeof(float));
    E(&tm->xg, lc * C, sizeof(float));
    E(&tm->rows, 2 * N, sizeof(int));
    E(&tm->adapter_on, rank ? N : 0, 1);
    for (int l = 0; l < c->n_layer; l++) {
        layer_ref *R = &tm->layers[l];
        E(&R->resid, N * C, sizeof(float));
        E(&R->mid, N * C, sizeof(float));
        E(&R->rstd1, N, sizeof(float));
        E(&R->rstd2, N, sizeof(float));
        E(&R->q, N * qd, sizeof(float));
        E(&R->k, N * kvd, sizeof(float));
        E(&R->v, N * kvd, sizeof(float));
        E(&R->att, att, sizeof(float));
        E(&R->ao, N * qd, sizeof(float));
        E(&R->gate, N * F, sizeof(float));
        E(&R->up, N * F, sizeof(float));
        for (int p = 0; p < SM_PROJ_COUNT; p++) E(&R->lora_u[p], R->proj[p].lora_a ? N * rank : 0, sizeof(float));
    }
#undef E
    tm->act_slab = slab_alloc(table, i);
    free(table);
    if (!tm->act_slab)
        return sm_err(err, SM_ENOMEM, "out of memory for the activations of %d x %d tokens", tm->max_batch, tm->max_seq);
    tm->tg = tm->rows + N;
    return SM_OK;
}

sm_train_model *sm_train_model_new(const sm_model *base, sm_lora *lora, int mode, int max_batch, int max_seq,
                                   float lora_dropout, uint64_t seed, sm_error *err) {
    if (!base) { sm_err(err, SM_EINVAL, "sm_train_model_new: no base model"); return NULL; }
    if (mode != SM_TRAIN_LORA && mode != SM_TRAIN_FULL) { sm_err(err, SM_EINVAL, "unknown training mode %d", mode); return NULL; }
    if (mode == SM_TRAIN_FULL && lora) { sm_err(err, SM_EINVAL, "full training takes no adapter"); return NULL; }
    if (max_batch < 1 || max_seq < 1 || (double)max_batch * max_seq > 1e8) {
        sm_err(err, SM_EINVAL, "bad batch shape %d x %d", max_batch, max_seq);
        return NULL;
    }
    if (!(lora_dropout >= 0.0f && lora_dropout < 1.0f)) {
        sm_err(err, SM_EINVAL, "LoRA dropout %g is not in [0, 1)", lora_dropout);
        return NULL;
    }
    sm_train_model *tm = calloc(1, sizeof *tm);
    if (!tm) { sm_err(err, SM_ENOMEM, "out of memory"); return NULL; }
    tm->base = base;
    tm->lora = mode == SM_TRAIN_LORA ? lora : NULL;
    tm->mode = mode;
    tm->max_batch = max_batch;
    tm->max_seq = max_seq;
    tm->dropout = mode == SM_TRAIN_LORA ? lora_dropout : 0.0f;
    tm->seed = seed;
    tm->grad_scale = 1.0f;
    tm->cfg = base->config;
    tm->layers = calloc((size_t)tm->cfg.n_layer, sizeof *tm->layers);
    int rc = tm->layers ? SM_OK : sm_err(err, SM_ENOMEM, "out of memory");
    if (!rc) rc = mode == SM_TRAIN_FULL ? setup_full(tm, err) : setup_lora(tm, err);
    if (!rc) rc = setup_activations(tm, err);
    if (rc) { sm_train_model_free(tm); return NULL; }
    return tm;
}

void sm_train_model_free(sm_train_model *tm) {
    if (!tm) return;
    free(tm->param_slab);
    free(tm->act_slab);
    free(tm->tensors);
    free(tm->layers);
    free(tm);
}

int sm_train_model_mode(const sm_train_model *tm) { return tm->mode; }
const sm_model *sm_train_model_base(const sm_train_model *tm) { return tm->base; }

float *sm_train_params(sm_train_model *tm, size_t *n) {
    if (n) *n = tm->n_params;
    return tm->params;
}

float *sm_train_grads(sm_train_model *tm, size_t *n) {
    if (n) *n = tm->n_params;
    return tm->grads;
}

void sm_train_zero_grads(sm_train_model *tm) { memset(tm->grads, 0, sizeof(float) * tm->n_params); }

int sm_train_n_tensors(const sm_train_model *tm) { return tm->n_tensors; }
const sm_train_tensor *sm_train_tensor_at(const sm_train_model *tm, int i) {
    return i >= 0 && i < tm->n_tensors ? &tm->tensors[i] : NULL;
}

void sm_train_set_grad_scale(sm_train_model *tm, float scale) { tm->grad_scale = scale; }

int sm_train_set_adapter_mask(sm_train_model *tm, const unsigned char *on, int B, int T, sm_error *err) {
    if (tm->mode != SM_TRAIN_LORA) return sm_err(err, SM_EINVAL, "an adapter mask needs LoRA training");
    if (!on) { tm->mask_B = tm->mask_T = 0; return SM_OK; }
    if (B < 1 || B > tm->max_batch || T < 1 || T > tm->max_seq)
        return sm_err(err, SM_EINVAL, "adapter mask of %d x %d is outside the %d x %d the train model was made for", B, T,
                      tm->max_batch, tm->max_seq);
    for (size_t i = 0; i < (size_t)B * T; i++) tm->adapter_on[i] = on[i] != 0;
    tm->mask_B = B;
    tm->mask_T = T;
    return SM_OK;
}

/* Zeroes the rows of x (n, cols) where the adapter is off. */
static void mask_adapter_rows(const sm_train_model *tm, float *x, int n, int cols) {
    if (!tm->mask_B) return;
    for (int t = 0; t < n; t++)
        if (!tm->adapter_on[t]) memset(x + (size_t)t * cols, 0, sizeof(float) * (size_t)cols);
}
uint64_t sm_train_rng(const sm_train_model *tm) { return tm->rng; }
void sm_train_set_rng(sm_train_model *tm, uint64_t counter) { tm->rng = counter; }

/* ---- forward ---- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* xd (n, in) = x with each element kept with probability 1 - p and scaled by 1 / (1 - p), the
 * mask a hash of (seed, counter, layer, projection, element). */
static void dropout_apply(float *xd, const float *x, int n, int in, float p, uint64_t key) {
    const float keep = 1.0f / (1.0f - p);
    const uint64_t threshold = (uint64_t)((double)p * 18446744073709551616.0);
#pragma omp parallel for schedule(static) if ((long)n * in >= 65536)
    for (int t = 0; t < n; t++)
        for (int i = 0; i < in; i++) {
            const size_t e = (size_t)t * in + i;
            xd[e] = mix64(key + 0x9e3779b97f4a7c15ull * (e + 1)) < threshold ? 0.0f : x[e] * keep;
        }
}

static uint64_t dropout_key(const sm_train_model *tm, int l, int p) {
    return mix64(mix64(tm->seed ^ 0x5bd1e995ull) + tm->rng * 0x2545f4914f6cdd1dull + (uint64_t)l * 131 + (uint64_t)p);
}

/* The input the adapter of (l, p) sees: x itself, or its dropped copy (in tm->xdrop). */
static const float *adapter_input(const sm_train_model *tm, const float *x, int n, int in, int l, int p, int train) {
    if (!train || tm->dropout <= 0.0f) return x;
    dropout_apply(tm->xdrop, x, n, in, tm->dropout, dropout_key(tm, l, p));
    return tm->xdrop;
}

static void add_bias(float *y, const float *bias, int n, int out) {
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((long)n * out >= 65536)
    for (int t = 0; t < n; t++)
        for (int i = 0; i < out; i++) y[(size_t)t * out + i] += bias[i];
}

/* y (n, out) = x (n, in) · W^T through the stored weight: the inference kernel, so that LoRA
 * training sees exactly the products the served model computes (quantized activations included),
 * and because it is the fastest f32 product here too. */
static void base_matmul(float *y, const float *x, const proj_ref *pr, int n) {
    matmul_forward(y, x, pr->w, pr->type, n, pr->in, pr->out);
}

/* y = x W^T + bias + s B (A drop(x)) for projection p of layer l; keeps s A drop(x) in lora_u. */
static void project(sm_train_model *tm, int l, int p, float *y, const float *x, int n, int train) {
    layer_ref *R = &tm->layers[l];
    const proj_ref *pr = &R->proj[p];
    base_matmul(y, x, pr, n);
    add_bias(y, pr->bias, n, pr->out);
    if (!pr->lora_a) return;
    const int r = tm->lora->rank;
    float *u = R->lora_u[p];
    const float *xd = adapter_input(tm, x, n, pr->in, l, p, train);
    matmul_forward_narrow(u, xd, pr->lora_a, n, pr->in, r);
    const float s = tm->lora_scale;
    for (size_t i = 0; i < (size_t)n * r; i++) u[i] *= s;
    mask_adapter_rows(tm, u, n, r);
    matmul_forward(tm->tmp, u, pr->lora_b, SM_TYPE_F32, n, r, pr->out);
    for (size_t i = 0; i < (size_t)n * pr->out; i++) y[i] += tm->tmp[i];
}

static void embed_rows(const sm_train_model *tm, float *x, const int *tokens, int n) {
    const int C = tm->cfg.n_embd;
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int t = 0; t < n; t++)
        sm_dequantize_row(tm->tok_type, x + (size_t)t * C, (const char *)tm->tok_embd + (size_t)tokens[t] * tm->tok_row_bytes, C);
}

/* Positions and segment starts of every row of the batch. */
static void set_positions(sm_train_model *tm, const int *seg, int B, int T) {
    for (int b = 0; b < B; b++) {
        int s0 = 0;
        for (int t = 0; t < T; t++) {
            const size_t i = (size_t)b * T + t;
            if (seg && t > 0 && seg[i] != seg[i - 1]) s0 = t;
            tm->start[i] = s0;
            tm->pos[i] = t - s0;
        }
    }
}

/* The layers: from the embeddings to resid_final; train: dropout on. */
static void forward_layers(sm_train_model *tm, const int *tokens, int B, int T, int train) {
    const sm_model_config *c = &tm->cfg;
    const int n = B * T, C = c->n_embd;
    embed_rows(tm, tm->layers[0].resid, tokens, n);
    for (int l = 0; l < c->n_layer; l++) {
        layer_ref *R = &tm->layers[l];
        float *next = l + 1 < c->n_layer ? tm->layers[l + 1].resid : tm->resid_final;
        rmsnorm_forward_train(tm->xn, R->rstd1, R->resid, R->attn_norm, n, C, c->norm_eps);
        project(tm, l, SM_PROJ_Q, R->q, tm->xn, n, train);
        project(tm, l, SM_PROJ_K, R->k, tm->xn, n, train);
        project(tm, l, SM_PROJ_V, R->v, tm->xn, n, train);
        rope_forward(R->q, tm->pos, n, c->n_head, c->head_dim, c->rope_theta, c->rope_neox);
        rope_forward(R->k, tm->pos, n, c->n_head_kv, c->head_dim, c->rope_theta, c->rope_neox);
        attention_forward_train(R->ao, R->att, R->q, R->k, R->v, tm->start, B, T, c->n_head, c->n_head_kv, c->head_dim);
        project(tm, l, SM_PROJ_O, R->mid, R->ao, n, train);
        for (size_t i = 0; i < (size_t)n * C; i++) R->mid[i] += R->resid[i];
        rmsnorm_forward_train(tm->xn, R->rstd2, R->mid, R->ffn_norm, n, C, c->norm_eps);
        project(tm, l, SM_PROJ_GATE, R->gate, tm->xn, n, train);
        project(tm, l, SM_PROJ_UP, R->up, tm->xn, n, train);
        swiglu_forward(tm->h, R->gate, R->up, n * c->n_ff);
        project(tm, l, SM_PROJ_DOWN, next, tm->h, n, train);
        for (size_t i = 0; i < (size_t)n * C; i++) next[i] += R->mid[i];
    }
    rmsnorm_forward_train(tm->xnf, tm->rstd_final, tm->resid_final, tm->out_norm, n, C, c->norm_eps);
}

/* ---- backward ---- */

/* Given dy (n, out) of projection p of layer l with input x (n, in): dx (n, in) += dy · W (and
 * the adapter's path) unless dx is NULL; the weight's (or the adapter's) gradients += . */
static void project_backward(sm_train_model *tm, int l, int p, float *dx, const float *dy, const float *x, int n) {
    layer_ref *R = &tm->layers[l];
    const proj_ref *pr = &R->proj[p];
    if (dx) matmul_backward_dx(dx, dy, pr->w, pr->type, n, pr->in, pr->out);
    if (pr->dw) matmul_backward_dw(pr->dw, pr->dbias, dy, x, n, pr->in, pr->out);
    if (!pr->lora_a) return;
    const int r = tm->lora->rank;
    const float s = tm->lora_scale;
    /* u = s A xd was kept: dB += dy^T u; du = s dy B; dA += du^T xd; dxd = du A */
    matmul_backward_dw_narrow(pr->dlora_b, dy, R->lora_u[p], n, r, pr->out);
    memset(tm->du, 0, sizeof(float) * (size_t)n * r);
    matmul_backward_dx_narrow(tm->du, dy, pr->lora_b, n, r, pr->out);
    for (size_t i = 0; i < (size_t)n * r; i++) tm->du[i] *= s;
    mask_adapter_rows(tm, tm->du, n, r);
    const float *xd = adapter_input(tm, x, n, pr->in, l, p, 1);
    matmul_backward_dw(pr->dlora_a, NULL, tm->du, xd, n, pr->in, r);
    if (!dx) return;
    if (xd == x) { matmul_backward_dx(dx, tm->du, pr->lora_a, SM_TYPE_F32, n, pr->in, r); return; }
    /* through the dropout: the same mask, as dxd * xd / x would lose x == 0 */
    float *dxd = tm->xdrop;
    memset(dxd, 0, sizeof(float) * (size_t)n * pr->in);
    matmul_backward_dx(dxd, tm->du, pr->lora_a, SM_TYPE_F32, n, pr->in, r);
    const float keep = 1.0f / (1.0f - tm->dropout);
    const uint64_t key = dropout_key(tm, l, p);
    const uint64_t threshold = (uint64_t)((double)tm->dropout * 18446744073709551616.0);
    for (size_t e = 0; e < (size_t)n * pr->in; e++)
        if (mix64(key + 0x9e3779b97f4a7c15ull * (e + 1)) >= threshold) dx[e] += dxd[e] * keep;
}

static void backward_layers(sm_train_model *tm, const int *tokens, int B, int T) {
    const sm_model_config *c = &tm->cfg;
    const int n = B * T, C = c->n_embd, F = c->n_ff;
    const size_t qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    float *dres = tm->dres;
    for (int l = c->n_layer - 1; l >= 0; l--) {
        layer_ref *R = &tm->layers[l];
        /* FFN: next = mid + down(swiglu(gate(xn2), up(xn2))) */
        rmsnorm_forward_train(tm->xn, R->rstd2, R->mid, R->ffn_norm, n, C, c->norm_eps);
        swiglu_forward(tm->h, R->gate, R->up, n * F);
        memset(tm->dh, 0, sizeof(float) * (size_t)n * F);
        project_backward(tm, l, SM_PROJ_DOWN, tm->dh, dres, tm->h, n);
        memset(tm->dgate, 0, sizeof(float) * (size_t)n * F);
        memset(tm->dup, 0, sizeof(float) * (size_t)n * F);
        swiglu_backward(tm->dgate, tm->dup, tm->dh, R->gate, R->up, n * F);
        memset(tm->dxn, 0, sizeof(float) * (size_t)n * C);
        project_backward(tm, l, SM_PROJ_GATE, tm->dxn, tm->dgate, tm->xn, n);
        project_backward(tm, l, SM_PROJ_UP, tm->dxn, tm->dup, tm->xn, n);
        rmsnorm_backward(dres, R->d_ffn_norm, tm->dxn, R->mid, R->ffn_norm, R->rstd2, n, C);
        /* attention: mid = resid + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))) */
        memset(tm->dao, 0, sizeof(float) * (size_t)n * qd);
        project_backward(tm, l, SM_PROJ_O, tm->dao, dres, R->ao, n);
        memset(tm->dq, 0, sizeof(float) * (size_t)n * qd);
        memset(tm->dk, 0, sizeof(float) * (size_t)n * kvd);
        memset(tm->dv, 0, sizeof(float) * (size_t)n * kvd);
        attention_backward(tm->dq, tm->dk, tm->dv, tm->dao, R->att, R->q, R->k, R->v, tm->start, B, T, c->n_head,
                           c->n_head_kv, c->head_dim);
        rope_backward(tm->dq, tm->pos, n, c->n_head, c->head_dim, c->rope_theta, c->rope_neox);
        rope_backward(tm->dk, tm->pos, n, c->n_head_kv, c->head_dim, c->rope_theta, c->rope_neox);
        rmsnorm_forward_train(tm->xn, R->rstd1, R->resid, R->attn_norm, n, C, c->norm_eps);
        /* below layer 0 only the (frozen in LoRA mode) embeddings remain */
        const int need_dx = tm->mode == SM_TRAIN_FULL || l > 0;
        float *dxn = need_dx ? tm->dxn : NULL;
        if (need_dx) memset(tm->dxn, 0, sizeof(float) * (size_t)n * C);
        project_backward(tm, l, SM_PROJ_Q, dxn, tm->dq, tm->xn, n);
        project_backward(tm, l, SM_PROJ_K, dxn, tm->dk, tm->xn, n);
        project_backward(tm, l, SM_PROJ_V, dxn, tm->dv, tm->xn, n);
        if (need_dx) rmsnorm_backward(dres, R->d_attn_norm, tm->dxn, R->resid, R->attn_norm, R->rstd1, n, C);
    }
    if (tm->d_tok_embd) embedding_backward(tm->d_tok_embd, dres, tokens, n, C);
}

/* The output projection and the loss over the rows with a target, LOGIT_CHUNK rows at a time.
 * With grad: dres = d loss / d resid_final (times dloss per row) and the output's gradients +=.
 * Returns the summed loss. */
static double output_loss(sm_train_model *tm, const int *targets, int n, float dloss, int grad) {
    const sm_model_config *c = &tm->cfg;
    const int C = c->n_embd, V = c->n_vocab;
    int n_rows = 0;
    for (int t = 0; t < n; t++)
        if (targets[t] >= 0) { tm->rows[n_rows] = t; tm->tg[n_rows++] = targets[t]; }
    double loss = 0.0;
    if (grad) memset(tm->dxn, 0, sizeof(float) * (size_t)n * C);
    const int lc = n < LOGIT_CHUNK ? n : LOGIT_CHUNK;
    for (int r0 = 0; r0 < n_rows; r0 += lc) {
        const int m = n_rows - r0 < lc ? n_rows - r0 : lc;
        for (int i = 0; i < m; i++)
            memcpy(tm->xg + (size_t)i * C, tm->xnf + (size_t)tm->rows[r0 + i] * C, sizeof(float) * (size_t)C);
        base_matmul(tm->logits, tm->xg, &tm->output, m);
        if (!grad) { loss += cross_entropy_forward(tm->logits, tm->tg + r0, m, V); continue; }
        loss += cross_entropy_backward(tm->logits, tm->tg + r0, m, V, dloss);
        if (tm->output.dw) matmul_backward_dw(tm->output.dw, NULL, tm->logits, tm->xg, m, C, V);
        memset(tm->xg, 0, sizeof(float) * (size_t)m * C);
        matmul_backward_dx(tm->xg, tm->logits, tm->output.w, tm->output.type, m, C, V);
        for (int i = 0; i < m; i++)
            memcpy(tm->dxn + (size_t)tm->rows[r0 + i] * C, tm->xg + (size_t)i * C, sizeof(float) * (size_t)C);
    }
    if (grad) {
        memset(tm->dres, 0, sizeof(float) * (size_t)n * C);
        rmsnorm_backward(tm->dres, tm->d_out_norm, tm->dxn, tm->resid_final, tm->out_norm, tm->rstd_final, n, C);
    }
    return loss;
}

static int check_batch(const sm_train_model *tm, const int *tokens, const int *targets, int B, int T, sm_error *err) {
    if (B < 1 || B > tm->max_batch || T < 1 || T > tm->max_seq)
        return sm_err(err, SM_EINVAL, "batch %d x %d is outside the %d x %d the train model was made for", B, T,
                      tm->max_batch, tm->max_seq);
    if (tm->mask_B && (tm->mask_B != B || tm->mask_T != T))
        return sm_err(err, SM_EINVAL, "batch %d x %d differs from the %d x %d adapter mask", B, T, tm->mask_B, tm->mask_T);
    if (tm->lora && tm->lora->activated && !tm->mask_B)
        return sm_err(err, SM_EINVAL, "an activated adapter trains with an adapter mask (sm_train_set_adapter_mask)");
    for (size_t i = 0; i < (size_t)B * T; i++) {
        if (tokens[i] < 0 || tokens[i] >= tm->cfg.n_vocab)
            return sm_err(err, SM_EINVAL, "token %d at index %zu is outside the vocabulary of %d", tokens[i], i,
                          tm->cfg.n_vocab);
        if (targets && (targets[i] < -1 || targets[i] >= tm->cfg.n_vocab))
            return sm_err(err, SM_EINVAL, "target %d at index %zu is neither -1 nor in the vocabulary of %d",
                          targets[i], i, tm->cfg.n_vocab);
    }
    return SM_OK;
}

int sm_train_forward_backward(sm_train_model *tm, const int *tokens, const int *targets, const int *seg, int B,
                              int T, float *loss, sm_error *err) {
    int rc = check_batch(tm, tokens, targets, B, T, err);
    if (rc) return rc;
    const int n = B * T;
    int n_targets = 0;
    for (int i = 0; i < n; i++) n_targets += targets[i] >= 0;
    set_positions(tm, seg, B, T);
    forward_layers(tm, tokens, B, T, 1);
    double sum = 0.0;
    if (n_targets > 0) {
        sum = output_loss(tm, targets, n, tm->grad_scale / (float)n_targets, 1);
        backward_layers(tm, tokens, B, T);
    }
    tm->rng++;
    if (loss) *loss = n_targets ? (float)(sum / n_targets) : 0.0f;
    return SM_OK;
}

int sm_train_forward_loss(sm_train_model *tm, const int *tokens, const int *targets, const int *seg, int B, int T,
                          float *loss, sm_error *err) {
    int rc = check_batch(tm, tokens, targets, B, T, err);
    if (rc) return rc;
    const int n = B * T;
    int n_targets = 0;
    for (int i = 0; i < n; i++) n_targets += targets[i] >= 0;
    set_positions(tm, seg, B, T);
    forward_layers(tm, tokens, B, T, 0);
    const double sum = n_targets ? output_loss(tm, targets, n, 0.0f, 0) : 0.0;
    if (loss) *loss = n_targets ? (float)(sum / n_targets) : 0.0f;
    return SM_OK;
}

int sm_train_forward_logits(sm_train_model *tm, const int *tokens, const int *seg, int B, int T, float *logits,
                            sm_error *err) {
    int rc = check_batch(tm, tokens, NULL, B, T, err);
    if (rc) return rc;
    const int n = B * T, lc = n < LOGIT_CHUNK ? n : LOGIT_CHUNK;
    set_positions(tm, seg, B, T);
    forward_layers(tm, tokens, B, T, 0);
    for (int r0 = 0; r0 < n; r0 += lc) {
        const int m = n - r0 < lc ? n - r0 : lc;
        base_matmul(logits + (size_t)r0 * tm->cfg.n_vocab, tm->xnf + (size_t)r0 * tm->cfg.n_embd, &tm->output, m);
    }
    return SM_OK;
}

/* ---- saving (FULL) ---- */

static int file_type_of(int type) {
    switch (type) {
    case SM_TYPE_F32: return 0;
    case SM_TYPE_F16: return 1;
    case SM_TYPE_Q4_0: return 2;
    case SM_TYPE_Q8_0: return 7;
    case SM_TYPE_BF16: return 32;
    default: return -1;
    }
}

int sm_train_model_save_gguf(const sm_train_model *tm, const char *path, int type, sm_error *err) {
    if (tm->mode != SM_TRAIN_FULL)
        return sm_err(err, SM_EINVAL, "only a fully trained model is saved as a GGUF model; an adapter is saved by lora.c");
    if (file_type_of(type) < 0) return sm_err(err, SM_EINVAL, "cannot store a model as %s", sm_type_name(type));
    const int block = sm_type_block_elems(type);
    for (int i = 0; i < tm->n_tensors; i++)
        if (tm->tensors[i].n_dims == 2 && tm->tensors[i].cols % block)
            return sm_err(err, SM_EINVAL, "%s has rows of %d, not a multiple of %d as %s needs", tm->tensors[i].name,
                          tm->tensors[i].cols, block, sm_type_name(type));
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (!w) return sm_err(err, SM_ENOMEM, "out of memory");
    int rc = SM_OK;
    const sm_gguf *g = tm->base->gguf;
    if (g) {
        for (int64_t i = 0; i < sm_gguf_n_kv(g) && !rc; i++)
            if (strcmp(sm_gguf_key(g, i), "general.file_type") != 0) rc = sm_gguf_copy_kv(w, g, i);
    } else { /* a model made in memory: its hyperparameters only */
        const sm_model_config *c = &tm->cfg;
        char key[96];
        rc = sm_gguf_set_str(w, "general.architecture", c->arch[0] ? c->arch : "llama");
        const char *a = c->arch[0] ? c->arch : "llama";
#define U32(k, v) do { snprintf(key, sizeof key, "%s." k, a); if (!rc) rc = sm_gguf_set_u32(w, key, (uint32_t)(v)); } while (0)
#define F32(k, v) do { snprintf(key, sizeof key, "%s." k, a); if (!rc) rc = sm_gguf_set_f32(w, key, (v)); } while (0)
        U32("embedding_length", c->n_embd);
        U32("block_count", c->n_layer);
        U32("feed_forward_length", c->n_ff);
        U32("context_length", c->n_ctx_train);
        U32("attention.head_count", c->n_head);
        U32("attention.head_count_kv", c->n_head_kv);
        U32("attention.key_length", c->head_dim);
        U32("rope.dimension_count", c->head_dim);
        F32("attention.layer_norm_rms_epsilon", c->norm_eps);
        F32("rope.freq_base", c->rope_theta);
#undef U32
#undef F32
    }
    if (!rc) rc = sm_gguf_set_u32(w, "general.file_type", (uint32_t)file_type_of(type));
    /* converted copies live until the write */
    void **bufs = calloc((size_t)tm->n_tensors, sizeof *bufs);
    if (!bufs) rc = SM_ENOMEM;
    for (int i = 0; i < tm->n_tensors && !rc; i++) {
        const sm_train_tensor *t = &tm->tensors[i];
        const float *src = tm->params + t->offset;
        int64_t ne[2] = {t->cols, t->rows};
        int ttype = t->n_dims == 1 ? SM_TYPE_F32 : type;
        const void *data = src;
        if (ttype != SM_TYPE_F32) {
            size_t row_bytes = 0;
            sm_type_row_bytes(ttype, t->cols, &row_bytes);
            bufs[i] = malloc(row_bytes * (size_t)t->rows);
            if (!bufs[i]) { rc = SM_ENOMEM; break; }
            for (int r = 0; r < t->rows; r++)
                sm_quantize_row(ttype, (char *)bufs[i] + (size_t)r * row_bytes, src + (size_t)r * t->cols, t->cols);
            data = bufs[i];
        }
        rc = sm_gguf_add_tensor(w, t->name, ttype, t->n_dims, ne, data);
    }
    if (rc && rc != SM_ENOMEM) rc = sm_err(err, rc, "%s: could not build the GGUF model", path);
    else if (rc) rc = sm_err(err, SM_ENOMEM, "out of memory writing %s", path);
    else rc = sm_gguf_write(w, path, err);
    if (bufs)
        for (int i = 0; i < tm->n_tensors; i++) free(bufs[i]);
    free(bufs);
    sm_gguf_writer_free(w);
    return rc;
}
