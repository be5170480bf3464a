/* lora.c: LoRA adapters in memory (see lora.h): the one-slab layout, PEFT's initialisation, the
 * scale, and merging into a copy of the base weights. Files live in lora_gguf.c and lora_peft.c;
 * the unmerged product is applied by the inference context (kvcache.c). */
#include "lora.h"

#include "sha256.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* in (columns) and out (rows) of projection p for config cfg. */
static void proj_dims(const sm_model_config *cfg, sm_proj p, int *in, int *out) {
    int q_dim = cfg->n_head * cfg->head_dim, kv_dim = cfg->n_head_kv * cfg->head_dim;
    switch (p) {
    case SM_PROJ_Q: *in = cfg->n_embd, *out = q_dim; break;
    case SM_PROJ_K:
    case SM_PROJ_V: *in = cfg->n_embd, *out = kv_dim; break;
    case SM_PROJ_O: *in = q_dim, *out = cfg->n_embd; break;
    case SM_PROJ_GATE:
    case SM_PROJ_UP: *in = cfg->n_embd, *out = cfg->n_ff; break;
    default: *in = cfg->n_ff, *out = cfg->n_embd; break;
    }
}

sm_lora *sm_lora_alloc(int n_layer, int rank, unsigned targets, const int dims[SM_PROJ_COUNT][2], sm_error *err) {
    if (n_layer < 1 || n_layer > 65536) { sm_err(err, SM_EINVAL, "a LoRA adapter of %d layers", n_layer); return NULL; }
    if (rank < 1 || rank > 65536) { sm_err(err, SM_EINVAL, "LoRA rank %d is outside 1..65536", rank); return NULL; }
    if (!targets || targets >> SM_PROJ_COUNT) {
        sm_err(err, SM_EINVAL, "LoRA target mask 0x%x names no projection or an unknown one", targets);
        return NULL;
    }
    size_t n_pairs = (size_t)n_layer * SM_PROJ_COUNT, n_params = 0;
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        if (!(targets & (1u << p))) continue;
        if (dims[p][0] < 1 || dims[p][1] < 1) {
            sm_err(err, SM_EINVAL, "LoRA target %s has a non-positive size %d x %d", sm_proj_name((sm_proj)p), dims[p][1], dims[p][0]);
            return NULL;
        }
        size_t per_layer = (size_t)rank * ((size_t)dims[p][0] + (size_t)dims[p][1]); /* each < 2^31: no overflow */
        if (per_layer > (SIZE_MAX / sizeof(float) / 2 - n_params) / (size_t)n_layer) {
            sm_err(err, SM_ENOMEM, "a LoRA adapter of rank %d is too large for this model", rank);
            return NULL;
        }
        n_params += per_layer * (size_t)n_layer;
    }
    sm_lora *l = calloc(1, sizeof *l + n_pairs * sizeof *l->pairs);
    size_t bytes = (n_params * sizeof(float) + 63) / 64 * 64;
    float *params = l ? aligned_alloc(64, bytes ? bytes : 64) : NULL;
    if (!params) {
        free(l);
        sm_err(err, SM_ENOMEM, "out of memory for a LoRA adapter of %zu parameters", n_params);
        return NULL;
    }
    memset(params, 0, bytes);
    l->pairs = (sm_lora_pair *)(l + 1);
    l->params = params;
    l->n_params = n_params;
    l->n_layer = n_layer;
    l->rank = rank;
    l->alpha = (float)rank;
    l->targets = targets;

    float *next = params;
    for (int layer = 0; layer < n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            pair->in = dims[p][0], pair->out = dims[p][1];
            if (!(targets & (1u << p))) continue;
            pair->a = next, next += (size_t)rank * pair->in;
            pair->b = next, next += (size_t)pair->out * rank;
        }
    return l;
}

sm_lora *sm_lora_new(const sm_model_config *cfg, int rank, float alpha, int rslora, unsigned targets, sm_error *err) {
    if (!cfg || cfg->n_layer < 1 || cfg->n_embd < 1 || cfg->n_head < 1 || cfg->n_head_kv < 1 || cfg->head_dim < 1 ||
        cfg->n_ff < 1) {
        sm_err(err, SM_EINVAL, "sm_lora_new: the model config has a non-positive size");
        return NULL;
    }
    if (!isfinite(alpha)) { sm_err(err, SM_EINVAL, "LoRA alpha is not a finite number"); return NULL; }
    int dims[SM_PROJ_COUNT][2];
    for (int p = 0; p < SM_PROJ_COUNT; p++) proj_dims(cfg, (sm_proj)p, &dims[p][0], &dims[p][1]);
    sm_lora *l = sm_lora_alloc(cfg->n_layer, rank, targets, (const int (*)[2])dims, err);
    if (!l) return NULL;
    l->alpha = alpha;
    l->rslora = rslora ? 1 : 0;
    snprintf(l->arch, sizeof l->arch, "%s", cfg->arch);
    l->n_head = cfg->n_head;
    l->n_head_kv = cfg->n_head_kv;
    return l;
}

void sm_lora_free(sm_lora *l) {
    if (!l) return;
    free(l->params);
    free(l->params16);
    free(l); /* the pairs share the struct's allocation */
}

/* splitmix64's output function: a bijective mix of a 64-bit word. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sm_lora_init(sm_lora *l, uint64_t seed) {
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            if (!pair->a) continue;
            /* kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) */
            float bound = 1.0f / sqrtf((float)pair->in);
            uint64_t key = mix64(seed ^ mix64(((uint64_t)layer << 8 | (uint64_t)p) + 0x9e3779b97f4a7c15ull));
            size_t n = (size_t)l->rank * pair->in;
            for (size_t i = 0; i < n; i++) {
                /* a counter-based draw: element i depends only on (seed, layer, p, i) */
                float u = (float)(mix64(key + i * 0x9e3779b97f4a7c15ull) >> 40) * (1.0f / 16777216.0f);
                pair->a[i] = (2.0f * u - 1.0f) * bound;
            }
            memset(pair->b, 0, (size_t)pair->out * l->rank * sizeof(float));
        }
}

int sm_lora_to_f16(sm_lora *l, sm_error *err) {
    if (l->params16) return SM_OK;
    size_t bytes = (l->n_params * sizeof(uint16_t) + 63) / 64 * 64;
    uint16_t *h = aligned_alloc(64, bytes ? bytes : 64);
    if (!h) return sm_err(err, SM_ENOMEM, "out of memory for an f16 copy of a LoRA adapter of %zu parameters", l->n_params);
    for (size_t i = 0; i < l->n_params; i++) h[i] = sm_fp32_to_fp16(l->params[i]);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            if (!pair->a) continue;
            pair->a16 = h + (pair->a - l->params), pair->b16 = h + (pair->b - l->params);
            pair->a = pair->b = NULL;
        }
    free(l->params);
    l->params = NULL;
    l->params16 = h;
    return SM_OK;
}

size_t sm_lora_bytes(const sm_lora *l) { return l->n_params * (l->params16 ? sizeof(uint16_t) : sizeof(float)); }

float sm_lora_scale(const sm_lora *l) {
    return l->rslora ? l->alpha / sqrtf((float)l->rank) : l->alpha / (float)l->rank;
}

/* ---- base fingerprint ------------------------------------------------------------------- */

enum { FP_CHUNK = 1 << 22 }; /* bytes of tensor data hashed by one leaf */

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const sm_gguf_tensor *const *)a)->name, (*(const sm_gguf_tensor *const *)b)->name);
}

static void put_u64(sm_sha256_ctx *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    sm_sha256_update(h, b, 8);
}

int sm_model_fingerprint(const sm_model *m, char out[65]) {
    const sm_gguf *g = m->gguf;
    int64_t n = sm_gguf_n_tensors(g);
    const sm_gguf_tensor **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    size_t *first_leaf = malloc((size_t)(n + 1) * sizeof *first_leaf);
    if (!order || !first_leaf) { free(order); free(first_leaf); return SM_ENOMEM; }
    for (int64_t i = 0; i < n; i++) order[i] = sm_gguf_tensor_at(g, i);
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_name);
    first_leaf[0] = 0;
    for (int64_t i = 0; i < n; i++) first_leaf[i + 1] = first_leaf[i] + (order[i]->nbytes + FP_CHUNK - 1) / FP_CHUNK;
    size_t n_leaves = first_leaf[n];
    uint8_t (*leaf)[32] = malloc((n_leaves ? n_leaves : 1) * sizeof *leaf);
    if (!leaf) { free(order); free(first_leaf); return SM_ENOMEM; }

    /* leaves: SHA-256 of each 4 MiB piece of each tensor's bytes, in parallel */
#pragma omp parallel for schedule(dynamic, 1)
    for (long long k = 0; k < (long long)n_leaves; k++) {
        int64_t lo = 0, hi = n; /* the tensor holding leaf k: first_leaf[t] <= k < first_leaf[t+1] */
        while (hi - lo > 1) {
            int64_t mid = (lo + hi) / 2;
            if (first_leaf[mid] <= (size_t)k) lo = mid; else hi = mid;
        }
        while (first_leaf[lo + 1] <= (size_t)k) lo++; /* skip empty tensors */
        const sm_gguf_tensor *t = order[lo];
        size_t off = ((size_t)k - first_leaf[lo]) * FP_CHUNK;
        size_t len = t->nbytes - off < FP_CHUNK ? t->nbytes - off : FP_CHUNK;
        sm_sha256(leaf[k], (const uint8_t *)t->data + off, len);
    }

    /* root: a version tag, then per tensor (by name) its name, type, shape, size and leaf digests */
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    sm_sha256_update(&h, "snipmeta-base-fingerprint-v1", 28);
    put_u64(&h, (uint64_t)n);
    for (int64_t i = 0; i < n; i++) {
        const sm_gguf_tensor *t = order[i];
        size_t name_len = strlen(t->name);
        put_u64(&h, name_len);
        sm_sha256_update(&h, t->name, name_len);
        put_u64(&h, (uint64_t)t->type);
        put_u64(&h, (uint64_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u64(&h, t->nbytes);
        for (size_t k = first_leaf[i]; k < first_leaf[i + 1]; k++) sm_sha256_update(&h, leaf[k], 32);
    }
    uint8_t digest[32];
    sm_sha256_final(&h, digest);
    sm_sha256_hex(out, digest);
    free(leaf);
    free(first_leaf);
    free(order);
    return SM_OK;
}

int sm_lora_check_base(const sm_lora *l, const char *lora_path, const sm_model *m, const char *fingerprint, sm_error *err) {
    const char *base_path = sm_gguf_path(m->gguf);
    const sm_model_config *cfg = &m->config;
    if (l->arch[0] && strcmp(l->arch, cfg->arch))
        return sm_err(err, SM_EINVAL, "adapter %s is for architecture '%s' but base %s is '%s'", lora_path, l->arch, base_path, cfg->arch);
    if (l->n_layer > cfg->n_layer)
        return sm_err(err, SM_EINVAL, "adapter %s has %d layers but base %s only %d", lora_path, l->n_layer, base_path, cfg->n_layer);
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        if (!(l->targets & (1u << p))) continue;
        const sm_lora_pair *pair = sm_lora_at(l, 0, (sm_proj)p);
        const sm_weight *w = &m->layers[0].proj[p];
        if (pair->in != w->in || pair->out != w->out)
            return sm_err(err, SM_EINVAL, "adapter %s: blk.N.%s.weight is %d x %d (out x in) in the adapter but %d x %d in base %s",
                          lora_path, sm_proj_name((sm_proj)p), pair->out, pair->in, w->out, w->in, base_path);
    }
    if (!l->base_fingerprint[0]) return SM_OK; /* e.g. an adapter written by llama.cpp: shapes are all we can check */
    char computed[65];
    if (!fingerprint) {
        if (sm_model_fingerprint(m, computed)) return sm_err(err, SM_ENOMEM, "out of memory fingerprinting %s", base_path);
        fingerprint = computed;
    }
    if (strcmp(fingerprint, l->base_fingerprint))
        return sm_err(err, SM_EINVAL, "adapter %s was trained on a different base: its base fingerprint is %.16s..., "
                                      "but base %s has %.16s... (the exact base weights must match)",
                      lora_path, l->base_fingerprint, base_path, fingerprint);
    return SM_OK;
}

/* ---- merging ---------------------------------------------------------------------------- */

void sm_lora_merge_into(float *w, const sm_lora *l, float scale, int layer, sm_proj p) {
    const sm_lora_pair *pair = sm_lora_at(l, layer, p);
    if (!sm_lora_pair_set(pair)) return;
    float s = scale * sm_lora_scale(l);
    int r = l->rank, in = pair->in;
    if (pair->a16) { /* held as f16: the same sums over the values as f32 */
#pragma omp parallel for schedule(static) if ((long)pair->out * in * r >= 1 << 20)
        for (int o = 0; o < pair->out; o++) {
            float *row = w + (size_t)o * in;
            for (int k = 0; k < r; k++) {
                float sb = s * sm_fp16_to_fp32(pair->b16[(size_t)o * r + k]);
                const uint16_t *a = pair->a16 + (size_t)k * in;
                for (int i = 0; i < in; i++) row[i] += sb * sm_fp16_to_fp32(a[i]);
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) if ((long)pair->out * in * r >= 1 << 20)
    for (int o = 0; o < pair->out; o++) {
        float *row = w + (size_t)o * in;
        const float *b = pair->b + (size_t)o * r;
        for (int k = 0; k < r; k++) {
            float sb = s * b[k];
            const float *a = pair->a + (size_t)k * in;
            for (int i = 0; i < in; i++) row[i] += sb * a[i];
        }
    }
}

int sm_lora_merge_gguf(const sm_model *m, const sm_lora *const *adapters, const float *scales, int n, const char *path, sm_error *err) {
    const sm_gguf *g = m->gguf;
    char fingerprint[65] = "";
    for (int i = 0; i < n; i++) {
        if (adapters[i]->base_fingerprint[0] && !fingerprint[0] && sm_model_fingerprint(m, fingerprint))
            return sm_err(err, SM_ENOMEM, "out of memory fingerprinting %s", sm_gguf_path(g));
        char name[32];
        snprintf(name, sizeof name, "number %d", i + 1);
        int rc = sm_lora_check_base(adapters[i], name, m, fingerprint[0] ? fingerprint : NULL, err);
        if (rc) return rc;
    }
    sm_gguf_writer *w = sm_gguf_writer_new();
    int64_t n_t = sm_gguf_n_tensors(g);
    float **merged = calloc((size_t)(n_t ? n_t : 1), sizeof *merged);
    int rc = SM_OK;
    if (!w || !merged) { rc = sm_err(err, SM_ENOMEM, "out of memory merging into %s", path); goto done; }
    for (int64_t i = 0; i < sm_gguf_n_kv(g) && !rc; i++)
        if (sm_gguf_copy_kv(w, g, i)) rc = sm_err(err, SM_ENOMEM, "out of memory merging into %s", path);
    if (!rc && sm_gguf_set_alignment(w, sm_gguf_alignment(g))) rc = sm_err(err, SM_EINVAL, "%s: bad alignment", path);
    for (int64_t i = 0; i < n_t && !rc; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        int layer = -1;
        sm_proj proj = SM_PROJ_COUNT;
        for (int l = 0; l < m->config.n_layer && layer < 0; l++)
            for (int p = 0; p < SM_PROJ_COUNT; p++)
                if (m->layers[l].proj[p].data == t->data && !strcmp(m->layers[l].proj[p].name, t->name)) { layer = l, proj = (sm_proj)p; break; }
        int touched = 0;
        for (int k = 0; k < n && layer >= 0; k++)
            touched |= layer < adapters[k]->n_layer && sm_lora_pair_set(sm_lora_at(adapters[k], layer, proj));
        if (!touched) {
            if (sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data)) rc = sm_err(err, SM_ENOMEM, "out of memory");
            continue;
        }
        const sm_weight *wt = &m->layers[layer].proj[proj];
        float *f = malloc((size_t)wt->out * wt->in * sizeof(float));
        if (!f) { rc = sm_err(err, SM_ENOMEM, "out of memory merging %s", t->name); break; }
        merged[i] = f;
        for (int o = 0; o < wt->out; o++) sm_dequantize_row(wt->type, f + (size_t)o * wt->in, (const char *)wt->data + (size_t)o * wt->row_bytes, wt->in);
        for (int k = 0; k < n; k++)
            if (layer < adapters[k]->n_layer) sm_lora_merge_into(f, adapters[k], scales[k], layer, proj);
        if (sm_gguf_add_tensor(w, t->name, SM_TYPE_F32, t->n_dims, t->ne, f)) rc = sm_err(err, SM_ENOMEM, "out of memory");
    }
    if (!rc) rc = sm_gguf_write(w, path, err);
done:
    for (int64_t i = 0; merged && i < n_t; i++) free(merged[i]);
    free(merged);
    sm_gguf_writer_free(w);
    return rc;
}

int sm_lora_parse_targets(const char *list, unsigned *targets) {
    static const char *const short_names[SM_PROJ_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
    unsigned mask = 0;
    const char *s = list;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        if (len == 4 && !strncmp(s, "attn", 4)) mask |= SM_LORA_TARGETS_ATTN, found = 1;
        else if (len == 3 && !strncmp(s, "mlp", 3)) mask |= SM_LORA_TARGETS_MLP, found = 1;
        else if (len == 3 && !strncmp(s, "all", 3)) mask |= SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP, found = 1;
        for (int p = 0; p < SM_PROJ_COUNT && !found; p++) {
            const char *names[3] = {short_names[p], sm_proj_name((sm_proj)p), NULL};
            char hf[16];
            snprintf(hf, sizeof hf, "%s_proj", short_names[p]);
            names[2] = hf;
            for (int k = 0; k < 3 && !found; k++)
                if (strlen(names[k]) == len && !strncmp(s, names[k], len)) mask |= 1u << p, found = 1;
        }
        if (!found) return SM_EINVAL;
        s += len;
        if (*s == ',') s++;
    }
    if (!mask) return SM_EINVAL;
    *targets = mask;
    return SM_OK;
}
