/* model_init.c: model shapes, the tensor table of a Llama-architecture model, its seeded random
 * values and the GGUF file that holds them (see model_init.h). It owns nothing beyond one call:
 * sm_init_write_gguf allocates one slab for all tensor data, writes the file and frees it. */
#include "model_init.h"

#include "tensor.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sm_model_shape_preset(const char *name, sm_model_shape *shape) {
    if (!strcmp(name, "smollm2-135m")) {
        *shape = (sm_model_shape){.n_vocab = 0, .n_embd = 576, .n_layer = 30, .n_head = 9, .n_head_kv = 3,
                                  .n_ff = 1536, .n_ctx = 8192, .rope_theta = 100000.0f, .norm_eps = 1e-5f,
                                  .tied = 0};
        return SM_OK;
    }
    return SM_EINVAL;
}

int sm_model_shape_check(const sm_model_shape *s, int type, sm_error *err) {
    if (s->n_vocab < 1 || s->n_embd < 1 || s->n_layer < 1 || s->n_head < 1 || s->n_head_kv < 1 || s->n_ff < 1 ||
        s->n_ctx < 1)
        return sm_err(err, SM_EINVAL, "model shape: every size must be positive (n_vocab %d, n_embd %d, n_layer %d, "
                      "n_head %d, n_head_kv %d, n_ff %d, n_ctx %d)", s->n_vocab, s->n_embd, s->n_layer, s->n_head,
                      s->n_head_kv, s->n_ff, s->n_ctx);
    if (s->n_embd % s->n_head || (s->n_embd / s->n_head) % 2)
        return sm_err(err, SM_EINVAL, "model shape: n_embd %d must split into n_head %d heads of an even size",
                      s->n_embd, s->n_head);
    if (s->n_head % s->n_head_kv)
        return sm_err(err, SM_EINVAL, "model shape: n_head %d must be a multiple of n_head_kv %d", s->n_head,
                      s->n_head_kv);
    if (!(s->rope_theta > 0.0f) || !(s->norm_eps > 0.0f))
        return sm_err(err, SM_EINVAL, "model shape: rope_theta and norm_eps must be positive");
    if (!sm_type_supported(type))
        return sm_err(err, SM_EINVAL, "model shape: unsupported weight type %d", type);
    const int block = sm_type_block_elems(type);
    if (s->n_embd % block || s->n_ff % block)
        return sm_err(err, SM_EINVAL, "model shape: %s rows need n_embd %d and n_ff %d to be multiples of %d",
                      sm_type_name(type), s->n_embd, s->n_ff, block);
    /* Element counts must fit the int64 products below and GGUF's u64 shapes. */
    if ((int64_t)s->n_vocab * s->n_embd > ((int64_t)1 << 40) || (int64_t)s->n_ff * s->n_embd > ((int64_t)1 << 40))
        return sm_err(err, SM_EINVAL, "model shape: matrices of more than 2^40 elements");
    return SM_OK;
}

static void set_tensor(sm_init_tensor *t, const char *name, int64_t ne0, int64_t ne1, int is_norm) {
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = is_norm ? 1 : 2;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->is_norm = is_norm;
}

int sm_init_tensor_table(const sm_model_shape *s, sm_init_tensor *out) {
    const int n = 9 * s->n_layer + 3 - (s->tied ? 1 : 0);
    if (!out) return n;
    const int64_t n_embd_kv = (int64_t)s->n_head_kv * (s->n_embd / s->n_head);
    int k = 0;
    char name[64];
    set_tensor(&out[k++], "token_embd.weight", s->n_embd, s->n_vocab, 0);
    for (int l = 0; l < s->n_layer; l++) {
        static const struct { const char *suffix; int kind; } blk[] = {
            {"attn_norm", 0}, {"attn_q", 1}, {"attn_k", 2}, {"attn_v", 2}, {"attn_output", 1},
            {"ffn_norm", 0}, {"ffn_gate", 3}, {"ffn_up", 3}, {"ffn_down", 4},
        };
        for (size_t j = 0; j < sizeof blk / sizeof blk[0]; j++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, blk[j].suffix);
            switch (blk[j].kind) {
            case 0: set_tensor(&out[k++], name, s->n_embd, 1, 1); break;
            case 1: set_tensor(&out[k++], name, s->n_embd, s->n_embd, 0); break;
            case 2: set_tensor(&out[k++], name, s->n_embd, n_embd_kv, 0); break;
            case 3: set_tensor(&out[k++], name, s->n_embd, s->n_ff, 0); break;
            case 4: set_tensor(&out[k++], name, s->n_ff, s->n_embd, 0); break;
            }
        }
    }
    set_tensor(&out[k++], "output_norm.weight", s->n_embd, 1, 1);
    if (!s->tied) set_tensor(&out[k++], "output.weight", s->n_embd, s->n_vocab, 0);
    assert(k == n);
    return k;
}

/* splitmix64's output function: a bijective mix of a 64-bit counter. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Standard normal pair j of the stream `key` (Box-Muller on the two 32-bit halves of one draw). */
static void normal_pair(uint64_t key, int64_t j, double *z0, double *z1) {
    const uint64_t r = mix64(key + (uint64_t)(j + 1) * 0x9e3779b97f4a7c15ull);
    const double u1 = ((double)(r >> 32) + 0.5) / 4294967296.0; /* (0, 1) */
    const double u2 = (double)(r & 0xffffffffu) / 4294967296.0; /* [0, 1) */
    const double radius = sqrt(-2.0 * log(u1)), angle = 6.283185307179586 * u2;
    *z0 = radius * cos(angle);
    *z1 = radius * sin(angle);
}

static int name_has(const char *name, const char *part) { return strstr(name, part) != NULL; }

int sm_init_scheme_preset(const char *name, const sm_model_shape *shape, sm_init_scheme *scheme) {
    if (!strcmp(name, "decode") && shape->tied) {
        /* token_embd is the output too: a large embedding would make every token predict itself. */
        *scheme = (sm_init_scheme){.std = SM_INIT_STD, .std_embd = SM_INIT_STD, .std_qk = 0.15f,
                                   .std_residual = SM_INIT_STD, .output_row_sigma = 0.0f};
        return SM_OK;
    }
    if (!strcmp(name, "decode")) {
        *scheme = (sm_init_scheme){.std = SM_INIT_STD, .std_embd = 1.0f, .std_qk = 0.05f,
                                   .std_residual = 0.01f, .output_row_sigma = 0.5f};
        return SM_OK;
    }
    if (!strcmp(name, "gpt2")) {
        const float residual = SM_INIT_STD / sqrtf(2.0f * (float)(shape->n_layer > 0 ? shape->n_layer : 1));
        *scheme = (sm_init_scheme){.std = SM_INIT_STD, .std_embd = SM_INIT_STD, .std_qk = SM_INIT_STD,
                                   .std_residual = residual, .output_row_sigma = 0.0f};
        return SM_OK;
    }
    return SM_EINVAL;
}

void sm_init_tensor_values(float *w, const sm_init_tensor *t, int64_t n, const sm_init_scheme *scheme, uint64_t seed) {
    if (t->is_norm) {
        for (int64_t i = 0; i < n; i++) w[i] = 1.0f;
        return;
    }
    double std = scheme->std;
    if (!strcmp(t->name, "token_embd.weight")) std = scheme->std_embd;
    if (name_has(t->name, ".attn_q.") || name_has(t->name, ".attn_k.")) std = scheme->std_qk;
    if (name_has(t->name, ".attn_output.") || name_has(t->name, ".ffn_down.")) std = scheme->std_residual;
    const uint64_t key = mix64(seed) ^ fnv1a64(t->name);
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < (n + 1) / 2; j++) {
        double z0, z1;
        normal_pair(key, j, &z0, &z1);
        w[2 * j] = (float)(std * z0);
        if (2 * j + 1 < n) w[2 * j + 1] = (float)(std * z1);
    }
    if (scheme->output_row_sigma > 0.0f && !strcmp(t->name, "output.weight")) {
        const uint64_t row_key = mix64(key ^ 0x726f777363616c65ull); /* "rowscale" */
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < t->ne[1]; r++) {
            double z0, z1;
            normal_pair(row_key, r, &z0, &z1);
            const float scale = (float)exp(scheme->output_row_sigma * z0);
            for (int64_t c = 0; c < t->ne[0]; c++) w[r * t->ne[0] + c] *= scale;
        }
    }
}

/* llama.cpp's llama_ftype for a model whose matrices are all of `type`. */
static uint32_t file_type_of(int type) {
    switch (type) {
    case SM_TYPE_F16: return 1;
    case SM_TYPE_Q4_0: return 2;
    case SM_TYPE_Q8_0: return 7;
    case SM_TYPE_BF16: return 32;
    default: return 0;
    }
}

static int set_hparams(sm_gguf_writer *w, const sm_model_shape *s, int type) {
    int rc = 0;
    rc |= sm_gguf_set_str(w, "general.architecture", "llama");
    rc |= sm_gguf_set_str(w, "general.name", "snipmeta random init");
    rc |= sm_gguf_set_u32(w, "general.file_type", file_type_of(type));
    rc |= sm_gguf_set_u32(w, "llama.context_length", (uint32_t)s->n_ctx);
    rc |= sm_gguf_set_u32(w, "llama.embedding_length", (uint32_t)s->n_embd);
    rc |= sm_gguf_set_u32(w, "llama.block_count", (uint32_t)s->n_layer);
    rc |= sm_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)s->n_ff);
    rc |= sm_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)s->n_head);
    rc |= sm_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv);
    rc |= sm_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(s->n_embd / s->n_head));
    rc |= sm_gguf_set_f32(w, "llama.rope.freq_base", s->rope_theta);
    rc |= sm_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", s->norm_eps);
    rc |= sm_gguf_set_u32(w, "llama.vocab_size", (uint32_t)s->n_vocab);
    return rc ? SM_ENOMEM : SM_OK;
}

static int copy_tokenizer_kv(sm_gguf_writer *w, const sm_gguf *vocab) {
    for (int64_t i = 0; i < sm_gguf_n_kv(vocab); i++) {
        if (strncmp(sm_gguf_key(vocab, i), "tokenizer.", 10)) continue;
        int rc = sm_gguf_copy_kv(w, vocab, i);
        if (rc) return rc;
    }
    return SM_OK;
}

int sm_init_write_gguf(const char *path, const sm_model_shape *shape_in, const sm_init_scheme *scheme,
                       const sm_gguf *vocab, int type, uint64_t seed, sm_error *err) {
    sm_model_shape shape = *shape_in;
    const int64_t tokens = sm_gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (tokens < 0 || sm_gguf_kv_type(vocab, tokens) != SM_GGUF_ARRAY || sm_gguf_arr_n(vocab, tokens) < 1 ||
        sm_gguf_arr_n(vocab, tokens) > INT32_MAX)
        return sm_err(err, SM_EFORMAT, "%s: expected a tokenizer.ggml.tokens array of strings", sm_gguf_path(vocab));
    const int n_vocab = (int)sm_gguf_arr_n(vocab, tokens);
    if (shape.n_vocab && shape.n_vocab != n_vocab)
        return sm_err(err, SM_EINVAL, "%s: the vocabulary has %d tokens, the shape asks for %d", sm_gguf_path(vocab),
                      n_vocab, shape.n_vocab);
    shape.n_vocab = n_vocab;
    int rc = sm_model_shape_check(&shape, type, err);
    if (rc) return rc;

    /* Size table: each tensor's bytes in its stored type, at a 64-byte aligned offset of one slab,
     * then an f32 scratch as large as the largest matrix when matrices are not stored as f32. */
    const int n_tensors = sm_init_tensor_table(&shape, NULL);
    sm_init_tensor *table = calloc((size_t)n_tensors, sizeof *table);
    size_t *offset = calloc((size_t)n_tensors, sizeof *offset);
    if (!table || !offset) { free(table); free(offset); return sm_err(err, SM_ENOMEM, "out of memory"); }
    sm_init_tensor_table(&shape, table);
    size_t total = 0, scratch = 0;
    for (int i = 0; i < n_tensors; i++) {
        const int t_type = table[i].is_norm ? SM_TYPE_F32 : type;
        size_t row;
        sm_type_row_bytes(t_type, table[i].ne[0], &row); /* cannot fail: checked by sm_model_shape_check */
        offset[i] = total;
        total += (row * (size_t)table[i].ne[1] + 63) & ~(size_t)63;
        const size_t n = (size_t)(table[i].ne[0] * table[i].ne[1]);
        if (t_type != SM_TYPE_F32 && n > scratch) scratch = n;
    }
    uint8_t *slab = malloc(total + scratch * sizeof(float));
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (!slab || !w) {
        rc = sm_err(err, SM_ENOMEM, "out of memory for %zu bytes of weights", total + scratch * sizeof(float));
        goto done;
    }
    float *tmp = (float *)(slab + total);

    if ((rc = set_hparams(w, &shape, type)) || (rc = copy_tokenizer_kv(w, vocab))) {
        sm_err(err, rc, "%s: cannot build the metadata", path);
        goto done;
    }
    for (int i = 0; i < n_tensors; i++) {
        const sm_init_tensor *t = &table[i];
        const int t_type = t->is_norm ? SM_TYPE_F32 : type;
        const int64_t n = t->ne[0] * t->ne[1];
        void *dst = slab + offset[i];
        if (t_type == SM_TYPE_F32) {
            sm_init_tensor_values(dst, t, n, scheme, seed);
        } else {
            sm_init_tensor_values(tmp, t, n, scheme, seed);
            size_t row;
            sm_type_row_bytes(t_type, t->ne[0], &row);
            #pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < t->ne[1]; r++)
                sm_quantize_row(t_type, (uint8_t *)dst + (size_t)r * row, tmp + r * t->ne[0], t->ne[0]);
        }
        if ((rc = sm_gguf_add_tensor(w, t->name, t_type, t->n_dims, t->ne, dst))) {
            sm_err(err, rc, "%s: cannot add tensor %s", path, t->name);
            goto done;
        }
    }
    rc = sm_gguf_write(w, path, err);
done:
    sm_gguf_writer_free(w);
    free(slab);
    free(offset);
    free(table);
    return rc;
}
