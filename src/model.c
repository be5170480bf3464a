/* model.c: loading a Llama-family model from GGUF and checking it (see model.h). The forward
 * pass and the inference context live in kvcache.c.
 *
 * Loading is one pass of lookups over a table of what a model must hold: each tensor is found by
 * name, its type and shape checked against the config read from the metadata, and an error names
 * the file, the tensor and what was expected. Nothing is copied except 1-D vectors stored in
 * another type than f32, which go to one slab converted once.
 */
#include "model.h"

#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Architectures whose blocks are exactly the Llama block (names as llama.cpp's LLM_ARCH_*), with
 * llama.cpp's rope type for each (llama_model_rope_type): NORM rotates pairs (2i, 2i+1), NEOX
 * pairs (i, i + head_dim/2). */
static const struct {
    const char *name;
    int rope_neox;
} known_archs[] = {
    {"llama", 0},
    {"mistral", 0},
    {"qwen2", 1},
};

static const char *const proj_names[SM_PROJ_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

const char *sm_proj_name(sm_proj p) {
    return (p >= 0 && p < SM_PROJ_COUNT) ? proj_names[p] : "?";
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* Reads {arch}.suffix as a positive u32 into *out; a missing key gives def (or an error when
 * def < 0). */
static int get_dim(const sm_gguf *g, const char *arch, const char *suffix, int def, int *out, sm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = sm_gguf_get_u32(g, key, &v, err);
    if (rc == SM_EINVAL) {
        if (def < 0)
            return sm_err(err, SM_EFORMAT, "%s: metadata key '%s' is missing", sm_gguf_path(g), key);
        *out = def;
        return SM_OK;
    }
    if (rc) return rc;
    if (v == 0 || v > (1u << 30))
        return sm_err(err, SM_EFORMAT, "%s: metadata key '%s' is %u, expected a positive size", sm_gguf_path(g), key, v);
    *out = (int)v;
    return SM_OK;
}

static int get_float(const sm_gguf *g, const char *arch, const char *suffix, float def, float *out, sm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = sm_gguf_get_f32(g, key, out, err);
    if (rc == SM_EINVAL) { *out = def; return SM_OK; }
    if (rc) return rc;
    if (!(*out > 0.0f))
        return sm_err(err, SM_EFORMAT, "%s: metadata key '%s' is %g, expected a positive number", sm_gguf_path(g), key, *out);
    return SM_OK;
}

static int read_config(const sm_gguf *g, sm_model_config *cfg, sm_error *err) {
    const char *path = sm_gguf_path(g);
    const char *arch = sm_gguf_get_str(g, "general.architecture");
    if (!arch) return sm_err(err, SM_EFORMAT, "%s: metadata key 'general.architecture' is missing", path);
    int found = -1;
    for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
        if (!strcmp(arch, known_archs[i].name)) found = (int)i;
    if (found < 0)
        return sm_err(err, SM_EUNSUPPORTED, "%s: architecture '%s' is not supported (llama, mistral and qwen2 are)", path, arch);
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->arch, sizeof cfg->arch, "%s", arch);
    cfg->rope_neox = known_archs[found].rope_neox;

    int rc;
    if ((rc = get_dim(g, arch, "embedding_length", -1, &cfg->n_embd, err))) return rc;
    if ((rc = get_dim(g, arch, "block_count", -1, &cfg->n_layer, err))) return rc;
    if ((rc = get_dim(g, arch, "attention.head_count", -1, &cfg->n_head, err))) return rc;
    if ((rc = get_dim(g, arch, "attention.head_count_kv", cfg->n_head, &cfg->n_head_kv, err))) return rc;
    if ((rc = get_dim(g, arch, "feed_forward_length", -1, &cfg->n_ff, err))) return rc;
    if ((rc = get_dim(g, arch, "context_length", -1, &cfg->n_ctx_train, err))) return rc;
    if (cfg->n_embd % cfg->n_head)
        return sm_err(err, SM_EFORMAT, "%s: embedding_length %d is not a multiple of head_count %d", path, cfg->n_embd, cfg->n_head);
    if ((rc = get_dim(g, arch, "attention.key_length", cfg->n_embd / cfg->n_head, &cfg->head_dim, err))) return rc;
    int value_length, n_rot;
    if ((rc = get_dim(g, arch, "attention.value_length", cfg->head_dim, &value_length, err))) return rc;
    if ((rc = get_dim(g, arch, "rope.dimension_count", cfg->head_dim, &n_rot, err))) return rc;
    if ((rc = get_float(g, arch, "rope.freq_base", 10000.0f, &cfg->rope_theta, err))) return rc;
    if ((rc = get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &cfg->norm_eps, err))) return rc;

    if (cfg->n_head % cfg->n_head_kv)
        return sm_err(err, SM_EFORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", path, cfg->n_head, cfg->n_head_kv);
    if (cfg->head_dim % 2)
        return sm_err(err, SM_EFORMAT, "%s: attention key_length %d is odd; RoPE needs pairs", path, cfg->head_dim);
    if (value_length != cfg->head_dim)
        return sm_err(err, SM_EUNSUPPORTED, "%s: value_length %d differs from key_length %d", path, value_length, cfg->head_dim);
    if (n_rot != cfg->head_dim)
        return sm_err(err, SM_EUNSUPPORTED, "%s: partial rotary embedding (rope.dimension_count %d of head size %d) is not supported",
                      path, n_rot, cfg->head_dim);
    if ((int64_t)cfg->n_head * cfg->head_dim > (1 << 30))
        return sm_err(err, SM_EFORMAT, "%s: head_count * key_length is too large", path);

    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = sm_gguf_get_str(g, key);
    if (scaling && strcmp(scaling, "none")) {
        float factor = 1.0f;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        if (sm_gguf_get_f32(g, key, &factor, NULL) != SM_OK) factor = 1.0f;
        if (factor != 1.0f)
            return sm_err(err, SM_EUNSUPPORTED, "%s: rope scaling '%s' (factor %g) is not supported", path, scaling, factor);
    }
    return SM_OK;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static const char *shape_str(char *buf, size_t cap, const sm_gguf_tensor *t) {
    int len = snprintf(buf, cap, "{");
    for (int d = 0; d < t->n_dims && len < (int)cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
    if (len < (int)cap) snprintf(buf + len, cap - (size_t)len, "}");
    return buf;
}

/* Finds tensor `name` and checks that it is a matrix of ne {in, out} in a type the kernels read. */
static int get_matrix(const sm_gguf *g, const char *name, int in, int out, sm_weight *w, sm_error *err) {
    const char *path = sm_gguf_path(g);
    const sm_gguf_tensor *t = sm_gguf_find_tensor(g, name);
    if (!t) return sm_err(err, SM_EFORMAT, "%s: tensor '%s' is missing", path, name);
    char shape[96];
    if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != out)
        return sm_err(err, SM_EFORMAT, "%s: tensor '%s' has shape %s, expected {%d, %d}", path, name,
                      shape_str(shape, sizeof shape, t), in, out);
    if (!sm_type_supported(t->type) || !t->data)
        return sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' has type %s (ggml id %d); this build reads f32, f16, bf16, q8_0, q4_0",
                      path, name, sm_type_name(t->type), t->type);
    size_t row_bytes;
    if (sm_type_row_bytes(t->type, in, &row_bytes) || (size_t)out * row_bytes != t->nbytes)
        return sm_err(err, SM_EFORMAT, "%s: tensor '%s' of type %s: rows of %d elements do not fit its %zu bytes",
                      path, name, sm_type_name(t->type), in, t->nbytes);
    w->name = t->name;
    w->data = t->data;
    w->type = t->type;
    w->in = in;
    w->out = out;
    w->row_bytes = row_bytes;
    return SM_OK;
}

/* A 1-D tensor the model reads as f32: where it goes, how long it is, whether it may be absent. */
typedef struct {
    char name[96];
    int n;
    int optional;
    const float **dst;
    const sm_gguf_tensor *t;
} vector_spec;

static int check_vector(const sm_gguf *g, vector_spec *v, sm_error *err) {
    const char *path = sm_gguf_path(g);
    v->t = sm_gguf_find_tensor(g, v->name);
    if (!v->t) {
        if (v->optional) return SM_OK;
        return sm_err(err, SM_EFORMAT, "%s: tensor '%s' is missing", path, v->name);
    }
    char shape[96];
    int64_t elems = 1;
    for (int d = 0; d < v->t->n_dims; d++) elems *= v->t->ne[d];
    if (v->t->ne[0] != v->n || elems != v->n)
        return sm_err(err, SM_EFORMAT, "%s: tensor '%s' has shape %s, expected {%d}", path, v->name,
                      shape_str(shape, sizeof shape, v->t), v->n);
    size_t bytes;
    if (!sm_type_supported(v->t->type) || !v->t->data || sm_type_row_bytes(v->t->type, v->n, &bytes) || bytes != v->t->nbytes)
        return sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' has type %s, which cannot be read as %d floats",
                      path, v->name, sm_type_name(v->t->type), v->n);
    return SM_OK;
}

static int load_weights(sm_model *m, sm_error *err) {
    const sm_gguf *g = m->gguf;
    const char *path = sm_gguf_path(g);
    sm_model_config *cfg = &m->config;

    const sm_gguf_tensor *te = sm_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return sm_err(err, SM_EFORMAT, "%s: tensor 'token_embd.weight' is missing", path);
    if (te->n_dims != 2 || te->ne[1] < 1 || te->ne[1] > (1 << 24)) {
        char shape[96];
        return sm_err(err, SM_EFORMAT, "%s: tensor 'token_embd.weight' has shape %s, expected {%d, n_vocab}", path,
                      shape_str(shape, sizeof shape, te), cfg->n_embd);
    }
    cfg->n_vocab = (int)te->ne[1];
    int rc = get_matrix(g, "token_embd.weight", cfg->n_embd, cfg->n_vocab, &m->token_embd, err);
    if (rc) return rc;
    if (sm_gguf_find_tensor(g, "output.weight")) {
        if ((rc = get_matrix(g, "output.weight", cfg->n_embd, cfg->n_vocab, &m->output, err))) return rc;
    } else {
        cfg->tied_output = 1;
        m->output = m->token_embd;
    }
    if (sm_gguf_find_tensor(g, "rope_freqs.weight"))
        return sm_err(err, SM_EUNSUPPORTED, "%s: tensor 'rope_freqs.weight' (Llama 3.1 rope frequency factors) is not supported yet", path);

    m->layers = calloc((size_t)cfg->n_layer, sizeof *m->layers);
    size_t n_vectors = 1 + (size_t)cfg->n_layer * 6;
    vector_spec *vs = calloc(n_vectors, sizeof *vs);
    if (!m->layers || !vs) { free(vs); return sm_err(err, SM_ENOMEM, "%s: out of memory for %d layers", path, cfg->n_layer); }

    int q_dim = cfg->n_head * cfg->head_dim, kv_dim = cfg->n_head_kv * cfg->head_dim;
    const struct { int in, out; } proj_shape[SM_PROJ_COUNT] = {
        [SM_PROJ_Q] = {cfg->n_embd, q_dim},     [SM_PROJ_K] = {cfg->n_embd, kv_dim},
        [SM_PROJ_V] = {cfg->n_embd, kv_dim},    [SM_PROJ_O] = {q_dim, cfg->n_embd},
        [SM_PROJ_GATE] = {cfg->n_embd, cfg->n_ff}, [SM_PROJ_UP] = {cfg->n_embd, cfg->n_ff},
        [SM_PROJ_DOWN] = {cfg->n_ff, cfg->n_embd},
    };
    size_t nv = 0;
    vs[nv++] = (vector_spec){.name = "output_norm.weight", .n = cfg->n_embd, .dst = &m->output_norm};
    for (int l = 0; l < cfg->n_layer && !rc; l++) {
        sm_layer *L = &m->layers[l];
        char name[96];
        for (int p = 0; p < SM_PROJ_COUNT && !rc; p++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, proj_names[p]);
            rc = get_matrix(g, name, proj_shape[p].in, proj_shape[p].out, &L->proj[p], err);
        }
        vector_spec *v = &vs[nv];
        snprintf(v[0].name, sizeof v[0].name, "blk.%d.attn_norm.weight", l);
        v[0].n = cfg->n_embd, v[0].dst = &L->attn_norm;
        snprintf(v[1].name, sizeof v[1].name, "blk.%d.ffn_norm.weight", l);
        v[1].n = cfg->n_embd, v[1].dst = &L->ffn_norm;
        for (int p = SM_PROJ_Q; p <= SM_PROJ_O; p++) {
            vector_spec *b = &v[2 + p];
            snprintf(b->name, sizeof b->name, "blk.%d.%s.bias", l, proj_names[p]);
            b->n = proj_shape[p].out, b->optional = 1, b->dst = &L->bias[p];
        }
        nv += 6;
    }
    /* Sizes first, then one slab for every vector that is not stored as f32. */
    size_t slab_floats = 0;
    for (size_t i = 0; i < nv && !rc; i++) {
        rc = check_vector(g, &vs[i], err);
        if (!rc && vs[i].t && vs[i].t->type != SM_TYPE_F32) slab_floats += (size_t)vs[i].n;
    }
    if (!rc && slab_floats) {
        m->f32_slab = malloc(slab_floats * sizeof(float));
        if (!m->f32_slab) rc = sm_err(err, SM_ENOMEM, "%s: out of memory converting norm weights", path);
    }
    float *next = m->f32_slab;
    for (size_t i = 0; i < nv && !rc; i++) {
        const sm_gguf_tensor *t = vs[i].t;
        if (!t) continue;
        if (t->type == SM_TYPE_F32) {
            *vs[i].dst = t->data;
        } else {
            sm_dequantize_row(t->type, next, t->data, vs[i].n);
            *vs[i].dst = next;
            next += vs[i].n;
        }
    }
    free(vs);
    return rc;
}

/* ---- load / free ------------------------------------------------------------------------- */

sm_model *sm_model_from_gguf(sm_gguf *g, sm_error *err) {
    if (!g) return NULL;
    sm_model *m = calloc(1, sizeof *m);
    if (!m) {
        sm_err(err, SM_ENOMEM, "%s: out of memory", sm_gguf_path(g));
        sm_gguf_close(g);
        return NULL;
    }
    m->gguf = g;
    if (read_config(g, &m->config, err) || load_weights(m, err)) { sm_model_free(m); return NULL; }
    m->tokenizer = sm_tokenizer_from_gguf(g, err);
    if (!m->tokenizer) { sm_model_free(m); return NULL; }
    int n_tok = sm_tokenizer_n_vocab(m->tokenizer);
    if (n_tok > m->config.n_vocab) {
        sm_err(err, SM_EFORMAT, "%s: the vocabulary has %d tokens but token_embd.weight only %d rows",
               sm_gguf_path(g), n_tok, m->config.n_vocab);
        sm_model_free(m);
        return NULL;
    }
    return m;
}

sm_model *sm_model_load(const char *path, sm_error *err) {
    sm_gguf *g = sm_gguf_open(path, err);
    if (!g) return NULL;
    return sm_model_from_gguf(g, err);
}

void sm_model_free(sm_model *m) {
    if (!m) return;
    sm_tokenizer_free(m->tokenizer);
    free(m->layers);
    free(m->f32_slab);
    sm_gguf_close(m->gguf);
    free(m);
}

void sm_model_embed(const sm_model *m, float *dst, int id) {
    const sm_weight *w = &m->token_embd;
    sm_dequantize_row(w->type, dst, (const char *)w->data + (size_t)id * w->row_bytes, w->in);
}
