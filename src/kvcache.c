/* kvcache.c: the inference context of a model (KV cache and activation buffers, one allocation
 * sliced by a size table) and the forward pass over it (see model.h).
 *
 * The forward pass processes a chunk of up to n_batch tokens at once: every projection is one
 * matrix product over the chunk's rows, keys and values are written straight into the cache
 * rows of their positions, and attention reads the cache. All arithmetic is in kernels.h; this
 * file only sequences it. Each projection goes through project(), the one place where the
 * attached LoRA adapters add their low-rank deltas s * B (A x), group of rows by group of rows
 * (from f32 matrices, or f16 ones for adapters held as f16: lora_forward_f16).
 *
 * Several sequences (sm_context_seqs_begin): the rows of one forward pass belong to up to
 * SM_CONTEXT_MAX_SEQ sequences that share a prefix. Every projection is still one product over
 * all rows (the weights are read once for all of them); each sequence's adapter applies to its
 * own rows (one row group per sequence); keys and values go to each sequence's own cache, and
 * attention runs per sequence over that cache. Sequence 0 is the context's own cache; the others
 * get a copy of the prefix's keys and values, so that each sequence's cache is contiguous and
 * attention is the very kernel call the one-sequence path makes (a shared prefix region would
 * need an attention kernel over two key ranges; the copy costs a few ms once per split).
 */
#include "model.h"

#include "kernels.h"
#include "lora.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sm_context {
    const sm_model *model;
    int n_ctx;
    int n_batch;
    int n_pos;          /* positions filled */
    int att_threads;    /* threads the attention scratch has rows for */
    void *slab;         /* the one allocation everything below points into */
    float *k_cache;     /* (n_layer, n_ctx, kv_dim) */
    float *v_cache;     /* (n_layer, n_ctx, kv_dim) */
    float *x;           /* (n_batch, n_embd) the residual stream */
    float *xb;          /* (n_batch, n_embd) normed input / block output */
    float *q;           /* (n_batch, q_dim) */
    float *att_out;     /* (n_batch, q_dim) */
    float *ffn_gate;    /* (n_batch, n_ff) */
    float *ffn_up;      /* (n_batch, n_ff) */
    float *ffn_h;       /* (n_batch, n_ff) silu(gate) * up */
    float *att;         /* (att_threads, n_ctx) attention scores scratch */
    int *pos;           /* (n_batch) positions of the chunk's tokens */
    /* LoRA adapters (sm_context_set_adapters): borrowed pointers and scales, and the scratch of
     * the low-rank product, all in one allocation of their own */
    int n_adapters;
    int adapter_start;              /* positions before it run without adapters */
    const sm_lora **adapters;
    float *adapter_scales;          /* user scale * the adapter's alpha / rank */
    float *lora_ax;                 /* (n_batch, max rank) A x */
    float *lora_bax;                /* (n_batch, max out) B (A x) */
    void *adapter_slab;
    /* the row groups of the forward pass running now: project() adds each group's adapters to
     * its rows (one group in the one-sequence path, one per sequence when split) */
    int n_groups;
    struct row_group {
        int row0, n;                    /* rows [row0, row0 + n) of the chunk */
        const sm_lora *const *adapters;
        const float *scales;
        int n_adapters;
    } groups[SM_CONTEXT_MAX_SEQ];
    float *group_ax, *group_bax;    /* the LoRA scratch of the groups */
    /* several sequences sharing the prefix [0, seq_start) (sm_context_seqs_begin); 0: not split */
    int n_seq;
    int seq_start;
    int seq_pos[SM_CONTEXT_MAX_SEQ];    /* positions filled of each (seq_pos[0] == n_pos) */
    int seq_cap;                        /* positions each cache of sequences 1.. holds */
    const sm_lora *seq_adapter[SM_CONTEXT_MAX_SEQ];
    float seq_scale[SM_CONTEXT_MAX_SEQ];  /* user scale * alpha / rank */
    float *seq_k, *seq_v;       /* (n_seq - 1, n_layer, seq_cap, kv_dim) the caches of sequences 1.. */
    float *rows_k, *rows_v;     /* (n_batch, kv_dim) new keys and values before they go to their caches */
    float *seq_ax, *seq_bax;    /* (n_batch, max rank), (n_batch, max out) LoRA scratch of the sequences */
    void *seq_slab;             /* the allocation of all seq_* buffers, grown as needed */
    size_t seq_slab_bytes;
};

static int mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

sm_context *sm_context_new(const sm_model *m, int n_ctx, int n_batch, sm_error *err) {
    if (!m) { sm_err(err, SM_EINVAL, "sm_context_new: no model"); return NULL; }
    const sm_model_config *cfg = &m->config;
    if (n_ctx <= 0) n_ctx = cfg->n_ctx_train;
    if (n_batch <= 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    sm_context *c = calloc(1, sizeof *c);
    if (!c) { sm_err(err, SM_ENOMEM, "out of memory for a context"); return NULL; }
    c->model = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->att_threads = omp_get_max_threads();
    if (omp_get_num_procs() > c->att_threads) c->att_threads = omp_get_num_procs();

    size_t q_dim = (size_t)cfg->n_head * cfg->head_dim, kv_dim = (size_t)cfg->n_head_kv * cfg->head_dim;
    size_t nb = (size_t)n_batch;
    size_t cache_rows = 0;
    int bad = mul_size((size_t)cfg->n_layer, (size_t)n_ctx, &cache_rows);
    struct {
        void **ptr;
        size_t rows, cols, elem;
    } table[] = {
        {(void **)&c->k_cache, cache_rows, kv_dim, sizeof(float)},
        {(void **)&c->v_cache, cache_rows, kv_dim, sizeof(float)},
        {(void **)&c->x, nb, (size_t)cfg->n_embd, sizeof(float)},
        {(void **)&c->xb, nb, (size_t)cfg->n_embd, sizeof(float)},
        {(void **)&c->q, nb, q_dim, sizeof(float)},
        {(void **)&c->att_out, nb, q_dim, sizeof(float)},
        {(void **)&c->ffn_gate, nb, (size_t)cfg->n_ff, sizeof(float)},
        {(void **)&c->ffn_up, nb, (size_t)cfg->n_ff, sizeof(float)},
        {(void **)&c->ffn_h, nb, (size_t)cfg->n_ff, sizeof(float)},
        {(void **)&c->att, (size_t)c->att_threads, (size_t)n_ctx, sizeof(float)},
        {(void **)&c->pos, nb, 1, sizeof(int)},
    };
    enum { ALIGN = 64 };
    size_t n_entries = sizeof table / sizeof table[0], offsets[sizeof table / sizeof table[0]], total = 0;
    for (size_t i = 0; i < n_entries && !bad; i++) {
        size_t bytes;
        bad = mul_size(table[i].rows, table[i].cols, &bytes) || mul_size(bytes, table[i].elem, &bytes) ||
              bytes > SIZE_MAX - total - ALIGN;
        offsets[i] = total;
        if (!bad) total += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    if (!bad) c->slab = aligned_alloc(ALIGN, total ? total : ALIGN);
    if (bad || !c->slab) {
        sm_err(err, SM_ENOMEM, "out of memory for a context of %d positions and batches of %d tokens", n_ctx, n_batch);
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < n_entries; i++) *table[i].ptr = (char *)c->slab + offsets[i];
    return c;
}

void sm_context_free(sm_context *c) {
    if (!c) return;
    free(c->seq_slab);
    free(c->adapter_slab);
    free(c->slab);
    free(c);
}

int sm_context_n_ctx(const sm_context *c) { return c->n_ctx; }
int sm_context_pos(const sm_context *c) { return c->n_pos; }

int sm_context_truncate(sm_context *c, int pos, sm_error *err) {
    if (pos < 0 || pos > c->n_pos)
        return sm_err(err, SM_EINVAL, "cannot truncate the context to position %d: it holds %d", pos, c->n_pos);
    c->n_pos = pos;
    c->n_seq = 0;
    return SM_OK;
}

int sm_context_set_adapters(sm_context *c, const sm_lora *const *adapters, const float *scales, int n, sm_error *err) {
    const sm_model *m = c->model;
    if (n < 0 || (n > 0 && (!adapters || !scales))) return sm_err(err, SM_EINVAL, "sm_context_set_adapters: bad arguments");
    size_t max_rank = 0, max_out = 0;
    for (int i = 0; i < n; i++) {
        const sm_lora *l = adapters[i];
        if (!l) return sm_err(err, SM_EINVAL, "adapter %d is NULL", i);
        if (!isfinite(scales[i])) return sm_err(err, SM_EINVAL, "adapter %d has a non-finite scale", i);
        if (l->n_layer > m->config.n_layer)
            return sm_err(err, SM_EINVAL, "adapter %d has %d layers, the model %d", i, l->n_layer, m->config.n_layer);
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            if (!(l->targets & (1u << p))) continue;
            const sm_lora_pair *pair = sm_lora_at(l, 0, (sm_proj)p);
            const sm_weight *w = &m->layers[0].proj[p];
            if (pair->in != w->in || pair->out != w->out)
                return sm_err(err, SM_EINVAL, "adapter %d: %s is %d x %d (out x in) but the model's is %d x %d", i,
                              sm_proj_name((sm_proj)p), pair->out, pair->in, w->out, w->in);
            if ((size_t)pair->out > max_out) max_out = (size_t)pair->out;
        }
        if ((size_t)l->rank > max_rank) max_rank = (size_t)l->rank;
    }
    void *slab = NULL;
    if (n > 0) {
        /* pointers, scales, A x and B (A x), each 64-byte aligned; sizes are small products of ints */
        size_t nb = (size_t)c->n_batch, o1 = ((size_t)n * sizeof(void *) + 63) / 64 * 64;
        size_t o2 = o1 + ((size_t)n * sizeof(float) + 63) / 64 * 64;
        size_t o3 = o2 + (nb * max_rank * sizeof(float) + 63) / 64 * 64;
        size_t total = o3 + (nb * max_out * sizeof(float) + 63) / 64 * 64;
        slab = aligned_alloc(64, total);
        if (!slab) return sm_err(err, SM_ENOMEM, "out of memory attaching %d adapters", n);
        c->adapters = slab;
        c->adapter_scales = (float *)((char *)slab + o1);
        c->lora_ax = (float *)((char *)slab + o2);
        c->lora_bax = (float *)((char *)slab + o3);
        for (int i = 0; i < n; i++) {
            c->adapters[i] = adapters[i];
            c->adapter_scales[i] = scales[i] * sm_lora_scale(adapters[i]);
        }
    }
    free(c->adapter_slab);
    c->adapter_slab = slab;
    c->n_adapters = n;
    return SM_OK;
}

void sm_context_set_adapter_start(sm_context *c, int pos) { c->adapter_start = pos > 0 ? pos : 0; }

/* bax (n, out) = (x (n, in) · A^T) · B^T through ax (n, rank). A decode step's products are
 * too small for the kernels' thread and scratch set-up to pay: plain loops then. */
static void lora_product(float *bax, float *ax, const float *x, const sm_lora_pair *pair, int rank, int n) {
    if (n > 4) {
        matmul_forward(ax, x, pair->a, SM_TYPE_F32, n, pair->in, rank);
        matmul_forward(bax, ax, pair->b, SM_TYPE_F32, n, rank, pair->out);
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * pair->in;
        float *axt = ax + (size_t)t * rank, *baxt = bax + (size_t)t * pair->out;
        for (int r = 0; r < rank; r++) {
            const float *a = pair->a + (size_t)r * pair->in;
            float sum = 0.0f;
            for (int i = 0; i < pair->in; i++) sum += a[i] * xt[i];
            axt[r] = sum;
        }
        for (int o = 0; o < pair->out; o++) {
            const float *b = pair->b + (size_t)o * rank;
            float sum = 0.0f;
            for (int r = 0; r < rank; r++) sum += b[r] * axt[r];
            baxt[o] = sum;
        }
    }
}

/* y (n, w->out) = x (n, w->in) · W^T (+ the adapters' s * B (A x)) + bias, for projection p of
 * layer l; each row group of c->groups adds its own adapters to its own rows. */
static void project(sm_context *c, int l, sm_proj p, float *y, const float *x, int n) {
    const sm_layer *L = &c->model->layers[l];
    const sm_weight *w = &L->proj[p];
    matmul_forward(y, x, w->data, w->type, n, w->in, w->out);
    /* LoRA, unmerged and before the bias, as llama.cpp's build_lora_mm */
    for (int g = 0; g < c->n_groups; g++) {
        const struct row_group *G = &c->groups[g];
        for (int i = 0; i < G->n_adapters && G->n > 0; i++) {
            const sm_lora *lora = G->adapters[i];
            if (!lora || l >= lora->n_layer) continue;
            const sm_lora_pair *pair = sm_lora_at(lora, l, p);
            const float *xt = x + (size_t)G->row0 * w->in;
            float s = G->scales[i];
            float *yt = y + (size_t)G->row0 * w->out;
            if (pair->a16) { /* held as f16 (a resident adapter of a registry) */
                lora_forward_f16(yt, c->group_ax, c->group_bax, xt, pair->a16, pair->b16, s, G->n, w->in, lora->rank, w->out);
                continue;
            }
            if (!pair->a) continue;
            lora_product(c->group_bax, c->group_ax, xt, pair, lora->rank, G->n);
            for (size_t k = 0; k < (size_t)G->n * w->out; k++) yt[k] += s * c->group_bax[k];
        }
    }
    const float *bias = L->bias[p];
    if (bias)
        for (int t = 0; t < n; t++)
            for (int i = 0; i < w->out; i++) y[(size_t)t * w->out + i] += bias[i];
}

static void add_in_place(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* One chunk of n <= n_batch tokens at positions n_pos..n_pos+n-1; leaves the final residual
 * stream of each token in c->x. */
static void forward_chunk(sm_context *c, const int *tokens, int n) {
    const sm_model *m = c->model;
    const sm_model_config *cfg = &m->config;
    int n_embd = cfg->n_embd, kv_dim = cfg->n_head_kv * cfg->head_dim;
    int pos0 = c->n_pos;
    size_t layer_stride = (size_t)c->n_ctx * kv_dim;

    for (int t = 0; t < n; t++) {
        sm_model_embed(m, c->x + (size_t)t * n_embd, tokens[t]);
        c->pos[t] = pos0 + t;
    }
    /* one row group: the rows at positions >= adapter_start (activated adapters leave the
     * prefix to the base) */
    int t0 = c->adapter_start - pos0;
    if (t0 < 0) t0 = 0;
    c->n_groups = 1;
    c->groups[0] = (struct row_group){.row0 = t0, .n = t0 < n ? n - t0 : 0, .adapters = c->adapters,
                                      .scales = c->adapter_scales, .n_adapters = c->n_adapters};
    c->group_ax = c->lora_ax, c->group_bax = c->lora_bax;
    for (int l = 0; l < cfg->n_layer; l++) {
        const sm_layer *L = &m->layers[l];
        float *k_cache = c->k_cache + l * layer_stride, *v_cache = c->v_cache + l * layer_stride;
        float *k_new = k_cache + (size_t)pos0 * kv_dim, *v_new = v_cache + (size_t)pos0 * kv_dim;

        rmsnorm_forward(c->xb, c->x, L->attn_norm, n, n_embd, cfg->norm_eps);
        project(c, l, SM_PROJ_Q, c->q, c->xb, n);
        project(c, l, SM_PROJ_K, k_new, c->xb, n);
        project(c, l, SM_PROJ_V, v_new, c->xb, n);
        rope_forward(c->q, c->pos, n, cfg->n_head, cfg->head_dim, cfg->rope_theta, cfg->rope_neox);
        rope_forward(k_new, c->pos, n, cfg->n_head_kv, cfg->head_dim, cfg->rope_theta, cfg->rope_neox);
        attention_forward(c->att_out, c->q, k_cache, v_cache, c->att, n, pos0, cfg->n_head, cfg->n_head_kv, cfg->head_dim);
        project(c, l, SM_PROJ_O, c->xb, c->att_out, n);
        add_in_place(c->x, c->xb, (size_t)n * n_embd);

        rmsnorm_forward(c->xb, c->x, L->ffn_norm, n, n_embd, cfg->norm_eps);
        project(c, l, SM_PROJ_GATE, c->ffn_gate, c->xb, n);
        project(c, l, SM_PROJ_UP, c->ffn_up, c->xb, n);
        swiglu_forward(c->ffn_h, c->ffn_gate, c->ffn_up, n * cfg->n_ff);
        project(c, l, SM_PROJ_DOWN, c->xb, c->ffn_h, n);
        add_in_place(c->x, c->xb, (size_t)n * n_embd);
    }
    c->n_pos += n;
}

/* logits (n, n_vocab) of the n residual rows starting at row `first` of c->x. */
static void output_logits(sm_context *c, float *logits, int first, int n) {
    const sm_model *m = c->model;
    int n_embd = m->config.n_embd;
    rmsnorm_forward(c->xb, c->x + (size_t)first * n_embd, m->output_norm, n, n_embd, m->config.norm_eps);
    matmul_forward(logits, c->xb, m->output.data, m->output.type, n, n_embd, m->output.out);
}

int sm_forward(sm_context *c, const int *tokens, int n, float *logits, int all_logits, sm_error *err) {
    const sm_model_config *cfg = &c->model->config;
    if (n < 1) return sm_err(err, SM_EINVAL, "sm_forward: no tokens");
    if (n > c->n_ctx - c->n_pos)
        return sm_err(err, SM_EINVAL, "context overflow: %d positions are filled and %d more tokens do not fit in n_ctx %d",
                      c->n_pos, n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg->n_vocab)
            return sm_err(err, SM_EINVAL, "token %d at index %d is outside the vocabulary of %d", tokens[i], i, cfg->n_vocab);
    if (omp_get_max_threads() > c->att_threads)
        return sm_err(err, SM_EINVAL, "the thread count (%d) was raised above the %d the context was made for",
                      omp_get_max_threads(), c->att_threads);
    c->n_seq = 0;
    for (int start = 0; start < n; start += c->n_batch) {
        int nb = n - start < c->n_batch ? n - start : c->n_batch;
        forward_chunk(c, tokens + start, nb);
        if (!logits) continue;
        if (all_logits)
            output_logits(c, logits + (size_t)start * cfg->n_vocab, 0, nb);
        else if (start + nb == n)
            output_logits(c, logits, nb - 1, 1);
    }
    return SM_OK;
}

/* ---- several sequences sharing a prefix ---------------------------------------------------- */

/* The key (or value, v = 1) cache of layer l of sequence s. */
static float *seq_cache(sm_context *c, int s, int l, int v) {
    const sm_model_config *cfg = &c->model->config;
    size_t kv_dim = (size_t)cfg->n_head_kv * cfg->head_dim;
    if (s == 0) return (v ? c->v_cache : c->k_cache) + (size_t)l * c->n_ctx * kv_dim;
    return (v ? c->seq_v : c->seq_k) + ((size_t)(s - 1) * cfg->n_layer + l) * c->seq_cap * kv_dim;
}

int sm_context_seqs_begin(sm_context *c, int n_seq, const sm_lora *const *adapters, const float *scales, int n_extra, sm_error *err) {
    const sm_model *m = c->model;
    const sm_model_config *cfg = &m->config;
    if (n_seq < 1 || n_seq > SM_CONTEXT_MAX_SEQ || n_extra < 1 || !adapters || !scales)
        return sm_err(err, SM_EINVAL, "sm_context_seqs_begin: bad arguments (%d sequences, %d positions each)", n_seq, n_extra);
    int start = c->n_pos;
    if (n_extra > c->n_ctx - start)
        return sm_err(err, SM_EINVAL, "context overflow: %d positions are filled and %d more per sequence do not fit in n_ctx %d",
                      start, n_extra, c->n_ctx);
    size_t max_rank = 0, max_out = 0;
    for (int s = 0; s < n_seq; s++) {
        const sm_lora *l = adapters[s];
        if (!l) continue;
        if (!isfinite(scales[s])) return sm_err(err, SM_EINVAL, "sequence %d: a non-finite adapter scale", s);
        if (l->n_layer > cfg->n_layer)
            return sm_err(err, SM_EINVAL, "sequence %d: the adapter has %d layers, the model %d", s, l->n_layer, cfg->n_layer);
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            if (!(l->targets & (1u << p))) continue;
            const sm_lora_pair *pair = sm_lora_at(l, 0, (sm_proj)p);
            const sm_weight *w = &m->layers[0].proj[p];
            if (pair->in != w->in || pair->out != w->out)
                return sm_err(err, SM_EINVAL, "sequence %d: the adapter's %s is %d x %d (out x in) but the model's is %d x %d", s,
                              sm_proj_name((sm_proj)p), pair->out, pair->in, w->out, w->in);
            if ((size_t)pair->out > max_out) max_out = (size_t)pair->out;
        }
        if ((size_t)l->rank > max_rank) max_rank = (size_t)l->rank;
    }
    /* sizes: small products of ints and of the context's sizes, which sm_context_new checked */
    size_t kv_dim = (size_t)cfg->n_head_kv * cfg->head_dim, nb = (size_t)c->n_batch, cap = (size_t)start + (size_t)n_extra;
    size_t cache = (size_t)(n_seq - 1) * cfg->n_layer * cap * kv_dim * sizeof(float);
    size_t sizes[6] = {cache, cache, nb * kv_dim * sizeof(float), nb * kv_dim * sizeof(float),
                       nb * max_rank * sizeof(float), nb * max_out * sizeof(float)};
    size_t offsets[6], total = 0;
    for (int i = 0; i < 6; i++) offsets[i] = total, total += (sizes[i] + 63) / 64 * 64;
    if (total > c->seq_slab_bytes) {
        void *slab = aligned_alloc(64, total);
        if (!slab) return sm_err(err, SM_ENOMEM, "out of memory for %d sequences of %zu positions", n_seq, cap);
        free(c->seq_slab);
        c->seq_slab = slab;
        c->seq_slab_bytes = total;
    }
    char *base = c->seq_slab;
    c->seq_k = (float *)(base + offsets[0]), c->seq_v = (float *)(base + offsets[1]);
    c->rows_k = (float *)(base + offsets[2]), c->rows_v = (float *)(base + offsets[3]);
    c->seq_ax = (float *)(base + offsets[4]), c->seq_bax = (float *)(base + offsets[5]);
    c->seq_cap = (int)cap;
    c->n_seq = n_seq;
    c->seq_start = start;
    size_t prefix_bytes = (size_t)start * kv_dim * sizeof(float);
    for (int s = 0; s < n_seq; s++) {
        c->seq_pos[s] = start;
        c->seq_adapter[s] = adapters[s];
        c->seq_scale[s] = adapters[s] ? scales[s] * sm_lora_scale(adapters[s]) : 0.0f;
        for (int l = 0; s > 0 && l < cfg->n_layer; l++) {
            memcpy(seq_cache(c, s, l, 0), seq_cache(c, 0, l, 0), prefix_bytes);
            memcpy(seq_cache(c, s, l, 1), seq_cache(c, 0, l, 1), prefix_bytes);
        }
    }
    return SM_OK;
}

int sm_context_n_seq(const sm_context *c) { return c->n_seq; }

int sm_context_seq_pos(const sm_context *c, int seq) {
    return seq >= 0 && seq < c->n_seq ? c->seq_pos[seq] : -1;
}

void sm_context_seqs_end(sm_context *c) { c->n_seq = 0; }

int sm_forward_seqs(sm_context *c, const int *tokens, const int *n_tokens, float *logits, sm_error *err) {
    const sm_model *m = c->model;
    const sm_model_config *cfg = &m->config;
    if (c->n_seq < 1) return sm_err(err, SM_EINVAL, "sm_forward_seqs: the context is not split into sequences");
    int n = 0;
    for (int s = 0; s < c->n_seq; s++) {
        int room = (s == 0 ? c->n_ctx : c->seq_cap) - c->seq_pos[s];
        if (n_tokens[s] < 0 || n_tokens[s] > room)
            return sm_err(err, SM_EINVAL, "sequence %d: %d tokens at position %d do not fit its %d positions", s, n_tokens[s],
                          c->seq_pos[s], s == 0 ? c->n_ctx : c->seq_cap);
        n += n_tokens[s];
    }
    if (n < 1 || n > c->n_batch)
        return sm_err(err, SM_EINVAL, "sm_forward_seqs: %d tokens in all (expected 1 to the batch size %d)", n, c->n_batch);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg->n_vocab)
            return sm_err(err, SM_EINVAL, "token %d at index %d is outside the vocabulary of %d", tokens[i], i, cfg->n_vocab);
    if (omp_get_max_threads() > c->att_threads)
        return sm_err(err, SM_EINVAL, "the thread count (%d) was raised above the %d the context was made for",
                      omp_get_max_threads(), c->att_threads);

    int n_embd = cfg->n_embd, kv_dim = cfg->n_head_kv * cfg->head_dim, q_dim = cfg->n_head * cfg->head_dim;
    int row0[SM_CONTEXT_MAX_SEQ];
    c->n_groups = 0;
    for (int s = 0, r = 0; s < c->n_seq; s++) {
        row0[s] = r;
        for (int i = 0; i < n_tokens[s]; i++, r++) {
            sm_model_embed(m, c->x + (size_t)r * n_embd, tokens[r]);
            c->pos[r] = c->seq_pos[s] + i;
        }
        if (n_tokens[s] > 0 && c->seq_adapter[s])
            c->groups[c->n_groups++] = (struct row_group){.row0 = row0[s], .n = n_tokens[s], .adapters = &c->seq_adapter[s],
                                                          .scales = &c->seq_scale[s], .n_adapters = 1};
    }
    c->group_ax = c->seq_ax, c->group_bax = c->seq_bax;
    int n_running = 0, one_row = omp_get_max_active_levels() <= 1; /* see the attention below */
    for (int s = 0; s < c->n_seq; s++) n_running += n_tokens[s] > 0, one_row &= n_tokens[s] <= 1;
    size_t row_bytes = (size_t)kv_dim * sizeof(float);
    for (int l = 0; l < cfg->n_layer; l++) {
        const sm_layer *L = &m->layers[l];
        rmsnorm_forward(c->xb, c->x, L->attn_norm, n, n_embd, cfg->norm_eps);
        project(c, l, SM_PROJ_Q, c->q, c->xb, n);
        project(c, l, SM_PROJ_K, c->rows_k, c->xb, n);
        project(c, l, SM_PROJ_V, c->rows_v, c->xb, n);
        rope_forward(c->q, c->pos, n, cfg->n_head, cfg->head_dim, cfg->rope_theta, cfg->rope_neox);
        rope_forward(c->rows_k, c->pos, n, cfg->n_head_kv, cfg->head_dim, cfg->rope_theta, cfg->rope_neox);
        for (int s = 0; s < c->n_seq; s++) {
            if (n_tokens[s] == 0) continue;
            size_t at = (size_t)c->seq_pos[s] * kv_dim, from = (size_t)row0[s] * kv_dim;
            memcpy(seq_cache(c, s, l, 0) + at, c->rows_k + from, (size_t)n_tokens[s] * row_bytes);
            memcpy(seq_cache(c, s, l, 1) + at, c->rows_v + from, (size_t)n_tokens[s] * row_bytes);
        }
        /* a decode step: one parallel region over the sequences, each attention call then on one
         * thread (nested regions inactive) with that thread's scratch row; else a call (and its
         * own region) per sequence, outside any region (a nested team inside an inactive region
         * gets fresh threads each time). The same kernel call either way, so the same results. */
        if (one_row && n_running > 1) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int s = 0; s < c->n_seq; s++)
                if (n_tokens[s] > 0)
                    attention_forward(c->att_out + (size_t)row0[s] * q_dim, c->q + (size_t)row0[s] * q_dim, seq_cache(c, s, l, 0),
                                      seq_cache(c, s, l, 1), c->att + (size_t)omp_get_thread_num() * c->n_ctx, 1, c->seq_pos[s],
                                      cfg->n_head, cfg->n_head_kv, cfg->head_dim);
        } else {
            for (int s = 0; s < c->n_seq; s++)
                if (n_tokens[s] > 0)
                    attention_forward(c->att_out + (size_t)row0[s] * q_dim, c->q + (size_t)row0[s] * q_dim, seq_cache(c, s, l, 0),
                                      seq_cache(c, s, l, 1), c->att, n_tokens[s], c->seq_pos[s], cfg->n_head, cfg->n_head_kv,
                                      cfg->head_dim);
        }
        project(c, l, SM_PROJ_O, c->xb, c->att_out, n);
        add_in_place(c->x, c->xb, (size_t)n * n_embd);

        rmsnorm_forward(c->xb, c->x, L->ffn_norm, n, n_embd, cfg->norm_eps);
        project(c, l, SM_PROJ_GATE, c->ffn_gate, c->xb, n);
        project(c, l, SM_PROJ_UP, c->ffn_up, c->xb, n);
        swiglu_forward(c->ffn_h, c->ffn_gate, c->ffn_up, n * cfg->n_ff);
        project(c, l, SM_PROJ_DOWN, c->xb, c->ffn_h, n);
        add_in_place(c->x, c->xb, (size_t)n * n_embd);
    }
    for (int s = 0; s < c->n_seq; s++) c->seq_pos[s] += n_tokens[s];
    c->n_pos = c->seq_pos[0];
    if (!logits) return SM_OK;
    /* the last row of each sequence that ran, gathered, then one product for all of them */
    int k = 0;
    for (int s = 0; s < c->n_seq; s++)
        if (n_tokens[s] > 0) {
            const float *last = c->x + (size_t)(row0[s] + n_tokens[s] - 1) * n_embd;
            rmsnorm_forward(c->xb + (size_t)k++ * n_embd, last, m->output_norm, 1, n_embd, cfg->norm_eps);
        }
    matmul_forward(logits, c->xb, m->output.data, m->output.type, k, n_embd, m->output.out);
    return SM_OK;
}
