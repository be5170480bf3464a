/* lora_gguf.c: LoRA adapters as GGUF files, the way llama.cpp's convert_lora_to_gguf.py writes
 * them and llama-adapter.cpp reads them (see lora.h for the functions' contracts).
 *
 * Metadata: general.type = "adapter", general.architecture = the base's, adapter.type = "lora",
 * adapter.lora.alpha (f32) = the alpha for which llama.cpp's scale alpha / rank equals ours (so
 * alpha * sqrt(rank) with rsLoRA, which llama.cpp does not know), and ours:
 *   snipmeta.format (u32, 1), snipmeta.task, snipmeta.base_fingerprint, snipmeta.lora.rank (u32),
 *   snipmeta.lora.alpha (f32, the nominal alpha), snipmeta.lora.rslora (bool),
 *   snipmeta.prompt_format (u32), snipmeta.activated (bool),
 *   snipmeta.base.head_count, snipmeta.base.head_count_kv (u32; for the PEFT rope permutation).
 * Tensors, per layer N and targeted projection P (attn_q, ..., ffn_down):
 *   blk.N.P.weight.lora_a   ne {in, rank}   (A, rank rows of in)
 *   blk.N.P.weight.lora_b   ne {rank, out}  (B, out rows of rank)
 * written as F32 (F16 for an adapter held as f16, sm_lora_to_f16); read from F32, F16, BF16 or Q8_0.
 */
#include "lora.h"

#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_FORMAT_VERSION 1

int sm_lora_save_gguf(const sm_lora *l, const char *path, sm_error *err) {
    if (!l->arch[0]) return sm_err(err, SM_EINVAL, "cannot write %s: the adapter does not know its base architecture", path);
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (!w) return sm_err(err, SM_ENOMEM, "out of memory writing %s", path);
    int bad = sm_gguf_set_str(w, "general.architecture", l->arch) || sm_gguf_set_str(w, "general.type", "adapter") ||
              sm_gguf_set_str(w, "adapter.type", "lora") ||
              sm_gguf_set_f32(w, "adapter.lora.alpha", sm_lora_scale(l) * (float)l->rank) ||
              sm_gguf_set_u32(w, "snipmeta.format", LORA_FORMAT_VERSION) || sm_gguf_set_str(w, "snipmeta.task", l->task) ||
              sm_gguf_set_str(w, "snipmeta.base_fingerprint", l->base_fingerprint) ||
              sm_gguf_set_u32(w, "snipmeta.lora.rank", (uint32_t)l->rank) ||
              sm_gguf_set_f32(w, "snipmeta.lora.alpha", l->alpha) || sm_gguf_set_bool(w, "snipmeta.lora.rslora", l->rslora) ||
              sm_gguf_set_u32(w, "snipmeta.prompt_format", (uint32_t)l->prompt_format) ||
              sm_gguf_set_bool(w, "snipmeta.activated", l->activated) ||
              sm_gguf_set_u32(w, "snipmeta.base.head_count", (uint32_t)l->n_head) ||
              sm_gguf_set_u32(w, "snipmeta.base.head_count_kv", (uint32_t)l->n_head_kv);
    char name[2][96];
    for (int layer = 0; layer < l->n_layer && !bad; layer++)
        for (int p = 0; p < SM_PROJ_COUNT && !bad; p++) {
            const sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            if (!sm_lora_pair_set(pair)) continue;
            snprintf(name[0], sizeof name[0], "blk.%d.%s.weight.lora_a", layer, sm_proj_name((sm_proj)p));
            snprintf(name[1], sizeof name[1], "blk.%d.%s.weight.lora_b", layer, sm_proj_name((sm_proj)p));
            int64_t ne_a[2] = {pair->in, l->rank}, ne_b[2] = {l->rank, pair->out};
            if (pair->a16) /* an adapter held as f16 is written as it is held */
                bad = sm_gguf_add_tensor(w, name[0], SM_TYPE_F16, 2, ne_a, pair->a16) ||
                      sm_gguf_add_tensor(w, name[1], SM_TYPE_F16, 2, ne_b, pair->b16);
            else
                bad = sm_gguf_add_tensor(w, name[0], SM_TYPE_F32, 2, ne_a, pair->a) ||
                      sm_gguf_add_tensor(w, name[1], SM_TYPE_F32, 2, ne_b, pair->b);
        }
    int rc = bad ? sm_err(err, SM_ENOMEM, "out of memory writing %s", path) : sm_gguf_write(w, path, err);
    sm_gguf_writer_free(w);
    return rc;
}

/* Parses "blk.N.STEM.weight.lora_a" / "...lora_b": sets *layer, *proj, *is_b; returns 0, or -1
 * when the name is not of that form or STEM is not a projection. */
static int parse_name(const char *name, int *layer, sm_proj *proj, int *is_b) {
    if (strncmp(name, "blk.", 4)) return -1;
    const char *s = name + 4;
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || *end != '.' || n < 0 || n > 65535 || (s[0] == '0' && end - s > 1)) return -1;
    s = end + 1;
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        const char *stem = sm_proj_name((sm_proj)p);
        size_t len = strlen(stem);
        if (strncmp(s, stem, len)) continue;
        if (!strcmp(s + len, ".weight.lora_a")) *is_b = 0;
        else if (!strcmp(s + len, ".weight.lora_b")) *is_b = 1;
        else continue;
        *layer = (int)n, *proj = (sm_proj)p;
        return 0;
    }
    return -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Copies the string value of key into dst (size cap); a missing key leaves dst empty. */
static int get_str(const sm_gguf *g, const char *key, char *dst, size_t cap, const char *path, sm_error *err) {
    dst[0] = 0;
    int64_t i = sm_gguf_find_key(g, key);
    if (i < 0) return SM_OK;
    uint64_t len = 0;
    const char *v = sm_gguf_get_str(g, key);
    if (!v) return sm_err(err, SM_EFORMAT, "%s: metadata key %s is not a string", path, key);
    sm_gguf_kv_str(g, i, &len);
    if (len >= cap) return sm_err(err, SM_EFORMAT, "%s: metadata key %s is %llu bytes, more than %zu", path, key,
                                  (unsigned long long)len, cap - 1);
    memcpy(dst, v, len + 1);
    return SM_OK;
}

/* Reads an optional u32 key into *out (left alone when missing). */
static int get_u32_opt(const sm_gguf *g, const char *key, int *out, sm_error *err) {
    uint32_t v;
    int rc = sm_gguf_get_u32(g, key, &v, err);
    if (rc == SM_EINVAL) return SM_OK;
    if (rc) return rc;
    if (v > INT32_MAX) return sm_err(err, SM_EFORMAT, "%s: metadata key %s is %u, too large", sm_gguf_path(g), key, v);
    *out = (int)v;
    return SM_OK;
}

static int get_bool_opt(const sm_gguf *g, const char *key, int *out, sm_error *err) {
    int rc = sm_gguf_get_bool(g, key, out, err);
    return rc == SM_EINVAL ? SM_OK : rc;
}

static sm_lora *from_gguf(const sm_gguf *g, sm_error *err) {
    const char *path = sm_gguf_path(g);
    const char *type = sm_gguf_get_str(g, "general.type"), *adapter = sm_gguf_get_str(g, "adapter.type");
    if (!type || strcmp(type, "adapter")) {
        sm_err(err, SM_EFORMAT, "%s: not an adapter (general.type is '%s', expected 'adapter')", path, type ? type : "");
        return NULL;
    }
    if (!adapter || strcmp(adapter, "lora")) {
        sm_err(err, SM_EUNSUPPORTED, "%s: adapter.type is '%s', expected 'lora'", path, adapter ? adapter : "");
        return NULL;
    }
    /* first pass: the tensors' layers, projections, rank and shapes */
    int n_layer = 0, rank = 0, dims[SM_PROJ_COUNT][2] = {{0}};
    unsigned targets = 0;
    int64_t n_t = sm_gguf_n_tensors(g);
    for (int64_t i = 0; i < n_t; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        int layer, is_b;
        sm_proj p;
        if (ends_with(t->name, "_norm.weight")) continue; /* as llama.cpp: norm vectors are not applied */
        if (parse_name(t->name, &layer, &p, &is_b)) {
            sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' is not a LoRA matrix of an attention or MLP projection "
                                         "(blk.N.attn_q.weight.lora_a, ...)", path, t->name);
            return NULL;
        }
        if (t->n_dims != 2 || !t->data) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' is not a 2-D matrix of a supported type (%s)", path, t->name,
                   sm_type_name(t->type));
            return NULL;
        }
        int r = (int)(is_b ? t->ne[0] : t->ne[1]);
        int64_t other = is_b ? t->ne[1] : t->ne[0];
        if (rank && r != rank) {
            sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' has rank %d, other tensors %d (one rank per adapter)", path, t->name, r, rank);
            return NULL;
        }
        if (other > INT32_MAX || r < 1) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' has an impossible shape", path, t->name);
            return NULL;
        }
        rank = r;
        int *d = &dims[p][is_b ? 1 : 0];
        if (*d && *d != (int)other) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' has %lld %s, other layers' %s %d", path, t->name, (long long)other,
                   is_b ? "rows" : "columns", sm_proj_name(p), *d);
            return NULL;
        }
        *d = (int)other;
        targets |= 1u << p;
        if (layer + 1 > n_layer) n_layer = layer + 1;
    }
    if (!targets) { sm_err(err, SM_EFORMAT, "%s: the adapter has no LoRA tensors", path); return NULL; }
    sm_lora *l = sm_lora_alloc(n_layer, rank, targets, (const int (*)[2])dims, err);
    if (!l) return NULL;

    /* second pass: the values; every targeted (layer, projection) must have both A and B */
    unsigned char *seen = calloc((size_t)n_layer * SM_PROJ_COUNT, 1);
    if (!seen) { sm_lora_free(l); sm_err(err, SM_ENOMEM, "out of memory reading %s", path); return NULL; }
    for (int64_t i = 0; i < n_t; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        int layer, is_b;
        sm_proj p;
        if (parse_name(t->name, &layer, &p, &is_b)) continue;
        sm_lora_pair *pair = sm_lora_at(l, layer, p);
        float *dst = is_b ? pair->b : pair->a;
        size_t n = (size_t)t->ne[0] * (size_t)t->ne[1];
        unsigned char bit = (unsigned char)(is_b ? 2 : 1);
        if (seen[(size_t)layer * SM_PROJ_COUNT + p] & bit) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' appears twice", path, t->name);
            goto fail;
        }
        seen[(size_t)layer * SM_PROJ_COUNT + p] |= bit;
        if (t->ne[0] % sm_type_block_elems(t->type)) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' rows are not whole %s blocks", path, t->name, sm_type_name(t->type));
            goto fail;
        }
        sm_dequantize_row(t->type, dst, t->data, (int64_t)n);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(dst[k])) {
                sm_err(err, SM_EFORMAT, "%s: tensor '%s' holds a non-finite value at element %zu", path, t->name, k);
                goto fail;
            }
    }
    for (int layer = 0; layer < n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            unsigned char s = seen[(size_t)layer * SM_PROJ_COUNT + p];
            if (s == 1 || s == 2) { /* a layer without the pair (s == 0) keeps zeros: no change there */
                sm_err(err, SM_EFORMAT, "%s: blk.%d.%s.weight has %s", path, layer, sm_proj_name((sm_proj)p),
                       s == 1 ? "lora_a but no lora_b" : "lora_b but no lora_a");
                goto fail;
            }
        }
    free(seen);
    seen = NULL;

    /* metadata */
    float alpha_llama = 0.0f, alpha = 0.0f;
    int rc = sm_gguf_get_f32(g, "adapter.lora.alpha", &alpha_llama, err);
    if (rc && rc != SM_EINVAL) goto fail;
    rc = sm_gguf_get_f32(g, "snipmeta.lora.alpha", &alpha, err);
    if (rc == SM_EINVAL) {
        /* a llama.cpp adapter: scale alpha / rank, or 1 when alpha is 0 or missing */
        l->alpha = alpha_llama != 0.0f ? alpha_llama : (float)rank;
    } else if (rc) {
        goto fail;
    } else {
        l->alpha = alpha;
    }
    if (!isfinite(l->alpha)) { sm_err(err, SM_EFORMAT, "%s: the LoRA alpha is not finite", path); goto fail; }
    int format = LORA_FORMAT_VERSION, file_rank = rank;
    if (get_u32_opt(g, "snipmeta.format", &format, err) || get_u32_opt(g, "snipmeta.lora.rank", &file_rank, err) ||
        get_bool_opt(g, "snipmeta.lora.rslora", &l->rslora, err) ||
        get_u32_opt(g, "snipmeta.prompt_format", &l->prompt_format, err) ||
        get_bool_opt(g, "snipmeta.activated", &l->activated, err) ||
        get_u32_opt(g, "snipmeta.base.head_count", &l->n_head, err) ||
        get_u32_opt(g, "snipmeta.base.head_count_kv", &l->n_head_kv, err) ||
        get_str(g, "snipmeta.task", l->task, sizeof l->task, path, err) ||
        get_str(g, "snipmeta.base_fingerprint", l->base_fingerprint, sizeof l->base_fingerprint, path, err) ||
        get_str(g, "general.architecture", l->arch, sizeof l->arch, path, err))
        goto fail;
    if (format > LORA_FORMAT_VERSION) {
        sm_err(err, SM_EUNSUPPORTED, "%s: snipmeta.format %d is newer than this build reads (%d)", path, format, LORA_FORMAT_VERSION);
        goto fail;
    }
    if (file_rank != rank) {
        sm_err(err, SM_EFORMAT, "%s: snipmeta.lora.rank is %d but the tensors have rank %d", path, file_rank, rank);
        goto fail;
    }
    return l;
fail:
    free(seen);
    sm_lora_free(l);
    return NULL;
}

sm_lora *sm_lora_load_gguf(const char *path, sm_error *err) {
    sm_gguf *g = sm_gguf_open(path, err);
    if (!g) return NULL;
    sm_lora *l = from_gguf(g, err);
    sm_gguf_close(g);
    return l;
}

sm_lora *sm_lora_load_gguf_memory(const void *buf, size_t size, const char *name, sm_error *err) {
    sm_gguf *g = sm_gguf_open_memory(buf, size, name, err);
    if (!g) return NULL;
    sm_lora *l = from_gguf(g, err);
    sm_gguf_close(g);
    return l;
}
