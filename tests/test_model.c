/* test_model.c: the Llama-family model on tiny random models written with the GGUF writer:
 * logits against an independent plain forward (llama and qwen2 rope, q/k/v/o biases, tied and
 * untied output, every stored type), batched prefill against token-by-token decoding, and load
 * errors (missing tensor, wrong shape, wrong type, bad metadata, context overflow) that name
 * the file and the tensor. */
#include "gguf.h"
#include "model.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
            failures++;                                           \
        }                                                         \
    } while (0)

/* ---- a tiny model: its spec, its f32 weights, and the GGUF file of them -------------------- */

typedef struct {
    const char *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float rope_theta, eps;
    int tied, bias;     /* bias: q, k, v (qwen2) and o biases */
    int wtype;          /* stored type of matrices */
    int norm_type;      /* stored type of norm weights and biases */
    const char *omit;   /* a tensor to leave out */
    const char *reshape;/* a tensor to write with one row too many */
    uint64_t seed;
} spec;

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, W_N };
static const char *const w_names[W_N] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

typedef struct {
    spec s;
    int head_dim, q_dim, kv_dim;
    float *tok, *out, *out_norm;                  /* out NULL when tied */
    float **attn_norm, **ffn_norm, **w[W_N], **b[4]; /* per layer; b NULL-free only with bias */
    int w_in[W_N], w_out[W_N];
} weights;

static uint64_t rng_state;
static float urand(void) { /* splitmix64 to a float in [-1, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / 8388608.0f - 1.0f;
}

/* n floats of a*u + c, rounded through `type` so that the reference sees the stored values. */
static float *make_values(size_t n, float a, float c, int type) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = a * urand() + c;
    if (type != SM_TYPE_F32) {
        size_t bytes;
        sm_type_row_bytes(type, (int64_t)n, &bytes);
        void *q = malloc(bytes);
        sm_quantize_row(type, q, v, (int64_t)n);
        sm_dequantize_row(type, v, q, (int64_t)n);
        free(q);
    }
    return v;
}

static void make_weights(weights *W, const spec *s) {
    memset(W, 0, sizeof *W);
    W->s = *s;
    rng_state = s->seed;
    W->head_dim = s->n_embd / s->n_head;
    W->q_dim = s->n_head * W->head_dim;
    W->kv_dim = s->n_head_kv * W->head_dim;
    int in[W_N] = {s->n_embd, s->n_embd, s->n_embd, W->q_dim, s->n_embd, s->n_embd, s->n_ff};
    int out[W_N] = {W->q_dim, W->kv_dim, W->kv_dim, s->n_embd, s->n_ff, s->n_ff, s->n_embd};
    memcpy(W->w_in, in, sizeof in);
    memcpy(W->w_out, out, sizeof out);
    W->tok = make_values((size_t)s->n_vocab * s->n_embd, 1.0f, 0.0f, s->wtype);
    W->out = s->tied ? NULL : make_values((size_t)s->n_vocab * s->n_embd, 0.5f, 0.0f, s->wtype);
    W->out_norm = make_values((size_t)s->n_embd, 0.2f, 1.0f, s->norm_type);
    W->attn_norm = calloc((size_t)s->n_layer, sizeof(float *));
    W->ffn_norm = calloc((size_t)s->n_layer, sizeof(float *));
    for (int p = 0; p < W_N; p++) W->w[p] = calloc((size_t)s->n_layer, sizeof(float *));
    for (int p = 0; p < 4; p++) W->b[p] = calloc((size_t)s->n_layer, sizeof(float *));
    for (int l = 0; l < s->n_layer; l++) {
        W->attn_norm[l] = make_values((size_t)s->n_embd, 0.2f, 1.0f, s->norm_type);
        W->ffn_norm[l] = make_values((size_t)s->n_embd, 0.2f, 1.0f, s->norm_type);
        for (int p = 0; p < W_N; p++)
            W->w[p][l] = make_values((size_t)in[p] * out[p], 1.7f / sqrtf((float)in[p]), 0.0f, s->wtype);
        if (s->bias)
            for (int p = 0; p < 4; p++) W->b[p][l] = make_values((size_t)out[p], 0.3f, 0.0f, s->norm_type);
    }
}

static void free_weights(weights *W) {
    free(W->tok), free(W->out), free(W->out_norm);
    for (int l = 0; l < W->s.n_layer; l++) {
        free(W->attn_norm[l]), free(W->ffn_norm[l]);
        for (int p = 0; p < W_N; p++) free(W->w[p][l]);
        for (int p = 0; p < 4; p++) free(W->b[p][l]);
    }
    free(W->attn_norm), free(W->ffn_norm);
    for (int p = 0; p < W_N; p++) free(W->w[p]);
    for (int p = 0; p < 4; p++) free(W->b[p]);
}

/* Keeps converted tensor bytes alive until the file is written. */
typedef struct {
    void *blocks[512];
    int n;
} arena;

static const void *stored(arena *a, const float *v, size_t n, int type) {
    if (type == SM_TYPE_F32) return v;
    size_t bytes;
    sm_type_row_bytes(type, (int64_t)n, &bytes);
    void *q = malloc(bytes);
    sm_quantize_row(type, q, v, (int64_t)n);
    a->blocks[a->n++] = q;
    return q;
}

static void add(sm_gguf_writer *w, arena *a, const spec *s, const char *name, const float *v, int in, int out, int type) {
    if (s->omit && !strcmp(name, s->omit)) return;
    int64_t ne[2] = {in, out};
    float *grown = NULL;
    if (s->reshape && !strcmp(name, s->reshape)) { /* one more row (a zero row) than expected */
        grown = calloc((size_t)in * (out + 1), sizeof *grown);
        memcpy(grown, v, (size_t)in * out * sizeof *grown);
        v = grown, ne[1] = out + 1;
        a->blocks[a->n++] = grown;
    }
    int rc = sm_gguf_add_tensor(w, name, type, out > 1 || ne[1] > 1 ? 2 : 1, ne, stored(a, v, (size_t)(in * ne[1]), type));
    if (rc) { fprintf(stderr, "FAIL: adding %s: %d\n", name, rc); exit(1); }
}

static void key(char *buf, const spec *s, const char *suffix) { snprintf(buf, 96, "%s.%s", s->arch, suffix); }

static int write_model(const char *path, const weights *W) {
    const spec *s = &W->s;
    sm_gguf_writer *w = sm_gguf_writer_new();
    char k[96];
    sm_gguf_set_str(w, "general.architecture", s->arch);
    key(k, s, "context_length"), sm_gguf_set_u32(w, k, (uint32_t)s->n_ctx);
    key(k, s, "embedding_length"), sm_gguf_set_u32(w, k, (uint32_t)s->n_embd);
    key(k, s, "block_count"), sm_gguf_set_u32(w, k, (uint32_t)s->n_layer);
    key(k, s, "feed_forward_length"), sm_gguf_set_u32(w, k, (uint32_t)s->n_ff);
    key(k, s, "attention.head_count"), sm_gguf_set_u32(w, k, (uint32_t)s->n_head);
    key(k, s, "attention.head_count_kv"), sm_gguf_set_u32(w, k, (uint32_t)s->n_head_kv);
    key(k, s, "rope.freq_base"), sm_gguf_set_f32(w, k, s->rope_theta);
    key(k, s, "attention.layer_norm_rms_epsilon"), sm_gguf_set_f32(w, k, s->eps);
    /* a small SentencePiece-style vocabulary */
    char **texts = calloc((size_t)s->n_vocab, sizeof *texts);
    float *scores = calloc((size_t)s->n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)s->n_vocab, sizeof *types);
    for (int i = 0; i < s->n_vocab; i++) {
        texts[i] = malloc(16);
        if (i < 3) snprintf(texts[i], 16, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else snprintf(texts[i], 16, "%c%c", 'a' + (i - 3) % 26, i - 3 < 26 ? 0 : 'a' + (i - 3) / 26);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : 1;
        scores[i] = -(float)i;
    }
    sm_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, NULL, (uint64_t)s->n_vocab);
    sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, scores, (uint64_t)s->n_vocab);
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, (uint64_t)s->n_vocab);
    sm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    sm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    sm_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);

    arena a = {.n = 0};
    add(w, &a, s, "token_embd.weight", W->tok, s->n_embd, s->n_vocab, s->wtype);
    char name[96];
    for (int l = 0; l < s->n_layer; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        add(w, &a, s, name, W->attn_norm[l], s->n_embd, 1, s->norm_type);
        for (int p = 0; p < W_N; p++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, w_names[p]);
            add(w, &a, s, name, W->w[p][l], W->w_in[p], W->w_out[p], s->wtype);
            if (p < 4 && s->bias) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, w_names[p]);
                add(w, &a, s, name, W->b[p][l], W->w_out[p], 1, s->norm_type);
            }
        }
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        add(w, &a, s, name, W->ffn_norm[l], s->n_embd, 1, s->norm_type);
    }
    add(w, &a, s, "output_norm.weight", W->out_norm, s->n_embd, 1, s->norm_type);
    if (!s->tied) add(w, &a, s, "output.weight", W->out, s->n_embd, s->n_vocab, s->wtype);
    sm_error err = {0};
    int rc = sm_gguf_write(w, path, &err);
    if (rc) fprintf(stderr, "FAIL: writing %s: %s\n", path, err.msg);
    sm_gguf_writer_free(w);
    for (int i = 0; i < a.n; i++) free(a.blocks[i]);
    for (int i = 0; i < s->n_vocab; i++) free(texts[i]);
    free(texts), free(scores), free(types);
    return rc;
}

/* ---- the independent reference forward: plain loops, one token at a time ----------------- */

/* Set while the weights are Q8_0/Q4_0: the input is then rounded through Q8_0 first, as
 * llama.cpp's quantized matmuls (and ours) do. */
static int ref_quantize_input;

static void ref_matvec(float *y, const float *W, const float *xin, const float *b, int in, int out) {
    float xq[1024];
    const float *x = xin;
    if (ref_quantize_input) {
        sm_block_q8_0 blocks[1024 / SM_QK];
        sm_quantize_row(SM_TYPE_Q8_0, blocks, xin, in);
        sm_dequantize_row(SM_TYPE_Q8_0, xq, blocks, in);
        x = xq;
    }
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[i];
        y[o] = (float)s;
    }
}

static void ref_rmsnorm(float *y, const float *x, const float *w, int d, float eps) {
    double ss = 0;
    for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / d + eps);
    for (int i = 0; i < d; i++) y[i] = (float)(x[i] * r * w[i]);
}

/* Rotates each head of x (n_heads * hd) for position pos: pairs (2i, 2i+1), or with neox
 * (i, i + hd/2), by pos * theta^(-2i/hd). */
static void ref_rope(float *x, int n_heads, int hd, int pos, float theta, int neox) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + h * hd;
        for (int i = 0; i < hd / 2; i++) {
            double angle = pos * pow(theta, -2.0 * i / hd);
            int a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
            double x0 = v[a], x1 = v[b];
            v[a] = (float)(x0 * cos(angle) - x1 * sin(angle));
            v[b] = (float)(x0 * sin(angle) + x1 * cos(angle));
        }
    }
}

/* logits (n, n_vocab) of every position of tokens[0..n). */
static void ref_forward(const weights *W, const int *tokens, int n, float *logits) {
    const spec *s = &W->s;
    int d = s->n_embd, hd = W->head_dim, neox = !strcmp(s->arch, "qwen2");
    ref_quantize_input = s->wtype == SM_TYPE_Q8_0 || s->wtype == SM_TYPE_Q4_0;
    float *kc = calloc((size_t)s->n_layer * n * W->kv_dim, sizeof *kc), *vc = calloc((size_t)s->n_layer * n * W->kv_dim, sizeof *vc);
    float *x = malloc(d * sizeof *x), *xb = malloc(d * sizeof *xb), *q = malloc(W->q_dim * sizeof *q);
    float *att = malloc(W->q_dim * sizeof *att), *o = malloc(d * sizeof *o), *sc = malloc(n * sizeof *sc);
    float *g = malloc(s->n_ff * sizeof *g), *u = malloc(s->n_ff * sizeof *u);
    for (int t = 0; t < n; t++) {
        memcpy(x, W->tok + (size_t)tokens[t] * d, d * sizeof *x);
        for (int l = 0; l < s->n_layer; l++) {
            float *kl = kc + (size_t)l * n * W->kv_dim, *vl = vc + (size_t)l * n * W->kv_dim;
            ref_rmsnorm(xb, x, W->attn_norm[l], d, s->eps);
            ref_matvec(q, W->w[W_Q][l], xb, W->b[W_Q][l], d, W->q_dim);
            ref_matvec(kl + (size_t)t * W->kv_dim, W->w[W_K][l], xb, W->b[W_K][l], d, W->kv_dim);
            ref_matvec(vl + (size_t)t * W->kv_dim, W->w[W_V][l], xb, W->b[W_V][l], d, W->kv_dim);
            ref_rope(q, s->n_head, hd, t, s->rope_theta, neox);
            ref_rope(kl + (size_t)t * W->kv_dim, s->n_head_kv, hd, t, s->rope_theta, neox);
            for (int h = 0; h < s->n_head; h++) {
                int kvh = h / (s->n_head / s->n_head_kv);
                double max = -1e30, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += (double)q[h * hd + i] * kl[(size_t)j * W->kv_dim + kvh * hd + i];
                    sc[j] = (float)(dot / sqrt(hd));
                    if (sc[j] > max) max = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += sc[j] = (float)exp(sc[j] - max);
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += sc[j] / sum * vl[(size_t)j * W->kv_dim + kvh * hd + i];
                    att[h * hd + i] = (float)a;
                }
            }
            ref_matvec(o, W->w[W_O][l], att, W->b[W_O][l], W->q_dim, d);
            for (int i = 0; i < d; i++) x[i] += o[i];
            ref_rmsnorm(xb, x, W->ffn_norm[l], d, s->eps);
            ref_matvec(g, W->w[W_GATE][l], xb, NULL, d, s->n_ff);
            ref_matvec(u, W->w[W_UP][l], xb, NULL, d, s->n_ff);
            for (int i = 0; i < s->n_ff; i++) g[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
            ref_matvec(o, W->w[W_DOWN][l], g, NULL, s->n_ff, d);
            for (int i = 0; i < d; i++) x[i] += o[i];
        }
        ref_rmsnorm(xb, x, W->out_norm, d, s->eps);
        ref_matvec(logits + (size_t)t * s->n_vocab, s->tied ? W->tok : W->out, xb, NULL, d, s->n_vocab);
    }
    free(kc), free(vc), free(x), free(xb), free(q), free(att), free(o), free(sc), free(g), free(u);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN counts */
    }
    return m;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static char dir[256];

static spec base_spec(void) {
    return (spec){.arch = "llama", .n_vocab = 40, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                  .n_ff = 96, .n_ctx = 64, .rope_theta = 10000.0f, .eps = 1e-5f, .tied = 1,
                  .wtype = SM_TYPE_F32, .norm_type = SM_TYPE_F32, .seed = 1};
}

static const int seq[] = {1, 5, 9, 13, 3, 30, 22, 7, 7, 39, 4, 18, 2, 11, 25, 6, 8};
enum { N_SEQ = sizeof seq / sizeof seq[0] };

/* Logits of every position against the reference, then prefill in chunks against decoding one
 * token at a time, then truncation. */
static void check_against_reference(const char *what, spec s, double tol) {
    weights W;
    make_weights(&W, &s);
    char path[400];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    if (write_model(path, &W)) { failures++; free_weights(&W); return; }
    sm_error err = {0};
    sm_model *m = sm_model_load(path, &err);
    CHECK(m, "%s: load failed: %s", what, err.msg);
    if (!m) { free_weights(&W); return; }
    CHECK(m->config.tied_output == s.tied, "%s: tied_output %d, expected %d", what, m->config.tied_output, s.tied);
    CHECK(m->config.rope_neox == !strcmp(s.arch, "qwen2"), "%s: rope type", what);
    int V = s.n_vocab;
    float *ref = malloc((size_t)N_SEQ * V * sizeof *ref), *all = malloc((size_t)N_SEQ * V * sizeof *all);
    float *one = malloc((size_t)N_SEQ * V * sizeof *one), *last = malloc((size_t)V * sizeof *last);
    ref_forward(&W, seq, N_SEQ, ref);

    /* all logits in one call, chunks of 5 */
    sm_context *c = sm_context_new(m, 32, 5, &err);
    CHECK(c, "%s: context: %s", what, err.msg);
    CHECK(!sm_forward(c, seq, N_SEQ, all, 1, &err), "%s: forward: %s", what, err.msg);
    /* relative to the largest reference logit */
    double scale = 0;
    for (size_t i = 0; i < (size_t)N_SEQ * V; i++) scale = fmax(scale, fabs(ref[i]));
    double d_ref = max_abs_diff(all, ref, (size_t)N_SEQ * V) / scale;
    /* one token at a time */
    sm_context_truncate(c, 0, NULL);
    for (int t = 0; t < N_SEQ; t++) CHECK(!sm_forward(c, &seq[t], 1, one + (size_t)t * V, 0, &err), "%s: decode: %s", what, err.msg);
    double d_dec = max_abs_diff(one, all, (size_t)N_SEQ * V) / scale;
    /* last-token logits only, from a truncated cache: the first 6 kept, the rest run again */
    sm_context_truncate(c, 6, NULL);
    CHECK(!sm_forward(c, seq + 6, N_SEQ - 6, last, 0, &err), "%s: forward after truncate: %s", what, err.msg);
    double d_last = max_abs_diff(last, all + (size_t)(N_SEQ - 1) * V, (size_t)V) / scale;
    CHECK(sm_context_pos(c) == N_SEQ, "%s: position %d after the run, expected %d", what, sm_context_pos(c), N_SEQ);
    printf("%-26s relative max diff: vs reference %.1e (tol %.0e), decode vs prefill %.1e, after truncate %.1e\n", what, d_ref, tol, d_dec, d_last);
    CHECK(d_ref <= tol, "%s: logits differ from the reference by %.3e of the largest", what, d_ref);
    CHECK(d_dec <= 1e-5, "%s: token-by-token logits differ from prefill by %.3e", what, d_dec);
    CHECK(d_last <= 1e-5, "%s: logits after truncate differ by %.3e", what, d_last);
    sm_context_free(c);
    sm_model_free(m);
    free(ref), free(all), free(one), free(last);
    free_weights(&W);
}

/* Loads a model built from s and expects failure with code and every needle in the message. */
static void expect_load_error(const char *what, spec s, int code, const char *needle1, const char *needle2) {
    weights W;
    make_weights(&W, &s);
    char path[400];
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    if (write_model(path, &W)) { failures++; free_weights(&W); return; }
    sm_error err = {0};
    sm_model *m = sm_model_load(path, &err);
    printf("%-28s -> %s\n", what, err.msg);
    CHECK(!m, "%s: loaded, expected an error", what);
    CHECK(err.code == code, "%s: code %d, expected %d", what, err.code, code);
    CHECK(strstr(err.msg, path), "%s: the message does not name the file: %s", what, err.msg);
    CHECK(!needle1 || strstr(err.msg, needle1), "%s: '%s' not in: %s", what, needle1, err.msg);
    CHECK(!needle2 || strstr(err.msg, needle2), "%s: '%s' not in: %s", what, needle2, err.msg);
    sm_model_free(m);
    free_weights(&W);
}

/* A model whose tensor `name` has its ggml type id patched to `type` in the file's bytes. */
static void expect_type_error(const char *name, uint32_t type) {
    spec s = base_spec();
    weights W;
    make_weights(&W, &s);
    char path[400];
    snprintf(path, sizeof path, "%s/type.gguf", dir);
    write_model(path, &W);
    free_weights(&W);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) size = 0;
    fclose(f);
    /* the tensor info: u64 name length, name, u32 n_dims, u64 ne[n_dims], u32 type */
    size_t nlen = strlen(name);
    unsigned char *p = NULL;
    for (long i = 8; i + (long)nlen < size; i++)
        if (!memcmp(buf + i, name, nlen) && buf[i - 8] == nlen && buf[i + nlen] >= 1 && buf[i + nlen] <= 4) { p = buf + i + nlen; break; }
    CHECK(p, "tensor info of %s not found", name);
    if (p) {
        uint32_t n_dims = p[0];
        unsigned char *t = p + 4 + 8 * n_dims;
        for (int b = 0; b < 4; b++) t[b] = (unsigned char)(type >> (8 * b));
        sm_error err = {0};
        sm_gguf *g = sm_gguf_open_memory(buf, (size_t)size, path, &err);
        sm_model *m = g ? sm_model_from_gguf(g, &err) : NULL;
        printf("%-28s -> %s\n", "unsupported type", err.msg);
        CHECK(!m, "a model with %s of type %u loaded", name, type);
        CHECK(strstr(err.msg, name), "the type error does not name %s: %s", name, err.msg);
        sm_model_free(m);
    }
    free(buf);
}

static void check_context_errors(void) {
    spec s = base_spec();
    weights W;
    make_weights(&W, &s);
    char path[400];
    snprintf(path, sizeof path, "%s/ctx.gguf", dir);
    write_model(path, &W);
    free_weights(&W);
    sm_error err = {0};
    sm_model *m = sm_model_load(path, &err);
    CHECK(m, "load: %s", err.msg);
    if (!m) return;
    sm_context *c = sm_context_new(m, 8, 4, &err);
    float *logits = malloc((size_t)s.n_vocab * sizeof *logits);
    CHECK(!sm_forward(c, seq, 6, logits, 0, &err), "forward 6 of 8: %s", err.msg);
    err = (sm_error){0};
    int rc = sm_forward(c, seq, 3, logits, 0, &err);
    printf("%-28s -> %s\n", "context overflow", err.msg);
    CHECK(rc == SM_EINVAL && strstr(err.msg, "context"), "overflow gave %d: %s", rc, err.msg);
    CHECK(sm_context_pos(c) == 6, "a failed forward moved the position to %d", sm_context_pos(c));
    CHECK(!sm_forward(c, seq, 2, logits, 0, &err), "forward to exactly n_ctx: %s", err.msg);
    int bad = s.n_vocab;
    sm_context_truncate(c, 0, NULL);
    err = (sm_error){0};
    rc = sm_forward(c, &bad, 1, logits, 0, &err);
    printf("%-28s -> %s\n", "token out of range", err.msg);
    CHECK(rc == SM_EINVAL, "an out-of-range token gave %d", rc);
    CHECK(sm_context_truncate(c, 3, NULL) == SM_EINVAL, "truncating beyond the position should fail");
    free(logits);
    sm_context_free(c);
    sm_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sm_test_model_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }

    spec s = base_spec();
    check_against_reference("llama f32 tied", s, 2e-4);
    s.tied = 0, s.seed = 2;
    check_against_reference("llama f32 untied", s, 2e-4);
    s = base_spec(), s.arch = "qwen2", s.bias = 1, s.seed = 3, s.rope_theta = 1000000.0f, s.eps = 1e-6f;
    check_against_reference("qwen2 f32 biases neox", s, 2e-4);
    s.tied = 0, s.norm_type = SM_TYPE_F16, s.seed = 4;
    check_against_reference("qwen2 untied f16 norms", s, 2e-4);
    s = base_spec(), s.n_head_kv = 1, s.seed = 5;
    check_against_reference("llama multi-query", s, 2e-4);
    s = base_spec(), s.wtype = SM_TYPE_F16, s.norm_type = SM_TYPE_BF16, s.seed = 6;
    check_against_reference("llama f16 weights", s, 2e-4);
    s.wtype = SM_TYPE_BF16, s.seed = 7;
    check_against_reference("llama bf16 weights", s, 2e-4);
    /* Q8_0/Q4_0: the reference rounds matmul inputs through Q8_0 too */
    s.wtype = SM_TYPE_Q8_0, s.norm_type = SM_TYPE_F32, s.seed = 8;
    check_against_reference("llama q8_0 weights", s, 1e-4);
    s.wtype = SM_TYPE_Q4_0, s.seed = 9;
    check_against_reference("llama q4_0 weights", s, 1e-4);

    s = base_spec(), s.omit = "blk.1.ffn_up.weight";
    expect_load_error("missing tensor", s, SM_EFORMAT, "blk.1.ffn_up.weight", "missing");
    s = base_spec(), s.omit = "output_norm.weight";
    expect_load_error("missing norm", s, SM_EFORMAT, "output_norm.weight", "missing");
    s = base_spec(), s.reshape = "blk.0.attn_k.weight";
    expect_load_error("wrong shape", s, SM_EFORMAT, "blk.0.attn_k.weight", "expected {64, 32}");
    s = base_spec(), s.reshape = "blk.1.ffn_norm.weight";
    expect_load_error("wrong vector shape", s, SM_EFORMAT, "blk.1.ffn_norm.weight", "expected {64}");
    s = base_spec(), s.arch = "gpt2";
    expect_load_error("unknown architecture", s, SM_EUNSUPPORTED, "gpt2", NULL);
    s = base_spec(), s.n_head = 5;
    expect_load_error("inconsistent heads", s, SM_EFORMAT, "head_count", NULL);
    expect_type_error("blk.0.attn_v.weight", 12 /* q4_K */);
    check_context_errors();

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", dir);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_model: ok\n");
    return 0;
}
