/* test_grad_model.c: the whole training forward/backward (train_model.h) of tiny models against
 * central differences of a double-precision forward of the same model (tests/ref/tiny_model.h).
 *
 * FULL mode: every weight (token_embd, norms, projections, q/k/v biases, output, tied or not).
 * LORA mode: dA and dB of adapters on all seven projections, over a base stored as F32, F16 and
 * BF16 (the double model reads the dequantized weights), and over Q8_0 with a looser tolerance:
 * there the forward quantizes activations as llama.cpp does, which the double model does not.
 * Configurations cover GQA, RoPE norm and neox, masked targets and packed segments. Each tensor
 * prints its max abs error and its error relative to its largest gradient against a tolerance.
 * Also: forward_loss agrees with forward_backward, accumulation adds, two runs are bit-identical,
 * a packed segment sees only itself, dropout masks follow the counter. Exits 1 on any failure.
 */
#include "train_model.h"

#include "kernels.h"
#include "ref/tiny_model.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static uint64_t rng_state = 0x853c49e6748fea9bull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * 0x1p-24) * 2.0f - 1.0f;
}

static void expect(int ok, const char *what) {
    printf("%-70s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* Random weights in tiny_model.h's order: norms near 1, matrices and biases of scale `std`. */
static float *random_weights(const sm_model_config *c, int has_bias, float std) {
    size_t n = tiny_weights_count(c, has_bias);
    float *w = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) w[i] = std * frand();
    /* the norms: overwrite at their offsets */
    size_t off = (size_t)c->n_vocab * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f + 0.2f * frand();
        off += c->n_embd;
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            if (p == SM_PROJ_GATE) {
                for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f + 0.2f * frand();
                off += c->n_embd;
            }
            off += (size_t)tiny_proj_in(c, p) * tiny_proj_out(c, p) + (has_bias && p < SM_PROJ_O ? tiny_proj_out(c, p) : 0);
        }
    }
    for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f + 0.2f * frand();
    return w;
}

typedef struct {
    sm_model_config c;
    int B, T, has_bias, packed;
    int tokens[64], targets[64], seg[64];
} batch;

static void make_batch(batch *b, const sm_model_config *c, int B, int T, int has_bias, int packed) {
    b->c = *c;
    b->B = B;
    b->T = T;
    b->has_bias = has_bias;
    b->packed = packed;
    for (int i = 0; i < B * T; i++) {
        b->tokens[i] = (int)((frand() + 1.0f) * 0.5f * c->n_vocab) % c->n_vocab;
        b->targets[i] = (int)((frand() + 1.0f) * 0.5f * c->n_vocab) % c->n_vocab;
        b->seg[i] = 0;
    }
    b->targets[0] = b->targets[2] = -1; /* a masked prompt */
    if (packed) /* row 1 holds two sequences */
        for (int t = T / 2; t < T; t++) b->seg[T + t] = 1;
}

typedef struct {
    dmodel *d;
    const batch *b;
} loss_ctx;

static double loss_of(const loss_ctx *x) {
    return dmodel_loss(x->d, x->b->tokens, x->b->targets, x->b->packed ? x->b->seg : NULL, x->b->B, x->b->T);
}

/* Central differences over p[0..n) against g; returns 1 when within tol of max |numeric|. */
static void check_tensor(const char *mode, const char *name, double *p, const float *g, size_t n, const loss_ctx *x,
                         double tol) {
    const double h = 1e-6;
    double max_abs = 0.0, scale = 0.0;
    double *num = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) {
        const double p0 = p[i];
        p[i] = p0 + h;
        const double lp = loss_of(x);
        p[i] = p0 - h;
        const double lm = loss_of(x);
        p[i] = p0;
        num[i] = (lp - lm) / (2 * h);
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    }
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(g[i] - num[i]);
        if (e > max_abs || e != e) max_abs = e;
    }
    const double floor_ = scale > 1e-4 ? scale : 1e-4;
    const int bad = !(max_abs <= tol * floor_);
    printf("grad %-5s %-34s n %5zu  max|g| %9.3g  max abs err %9.3g  rel %9.3g  tol %6.0e  %s\n", mode, name, n, scale,
           max_abs, max_abs / floor_, tol, bad ? "FAIL" : "ok");
    if (bad) failures++;
    free(num);
}

static int find(const sm_train_model *t, const char *name) {
    for (int i = 0; i < sm_train_n_tensors(t); i++)
        if (strcmp(sm_train_tensor_at(t, i)->name, name) == 0) return i;
    return -1;
}

/* FULL mode: the double model reads every tensor from P, a double copy of the train params. */
static void check_full(const char *label, const sm_model_config *c, int has_bias, int packed) {
    printf("-- full, %s\n", label);
    float *w = random_weights(c, has_bias, 0.3f);
    tiny_model tm;
    tiny_model_build(&tm, c, w, SM_TYPE_F32, has_bias);
    batch b;
    make_batch(&b, c, 2, 6, has_bias, packed);
    sm_error err = {0};
    sm_train_model *t = sm_train_model_new(&tm.model, NULL, SM_TRAIN_FULL, 2, 6, 0.0f, 1, &err);
    if (!t) { printf("sm_train_model_new: %s\n", err.msg); failures++; return; }
    size_t n;
    float *params = sm_train_params(t, &n), *grads = sm_train_grads(t, NULL);
    expect(n == tiny_weights_count(c, has_bias) && memcmp(params, w, n * sizeof(float)) == 0,
           "full: the parameter slab holds the base weights in table order");
    sm_train_zero_grads(t);
    float loss = 0.0f, loss2 = 0.0f;
    const int *seg = packed ? b.seg : NULL;
    int rc = sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss, &err);
    expect(rc == 0, "full: forward_backward returns 0");
    /* the double model over P */
    double *P = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) P[i] = params[i];
    dmodel d;
    dmodel_make(&d, &tm.model, NULL, NULL);
    dmodel_free(&d); /* keep only the shape; point every tensor into P */
    d.layers = calloc((size_t)c->n_layer, sizeof *d.layers);
    d.c = *c;
    d.rank = 0;
    char nm[64];
#define AT(name_) (P + sm_train_tensor_at(t, find(t, name_))->offset)
    d.tok = AT("token_embd.weight");
    d.out_norm = AT("output_norm.weight");
    d.output = c->tied_output ? d.tok : AT("output.weight");
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        d.layers[l].attn_norm = AT(nm);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        d.layers[l].ffn_norm = AT(nm);
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sm_proj_name(p));
            d.layers[l].w[p] = AT(nm);
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, sm_proj_name(p));
            d.layers[l].bias[p] = find(t, nm) >= 0 ? AT(nm) : NULL;
        }
    }
#undef AT
    loss_ctx x = {&d, &b};
    const double want = loss_of(&x);
    printf("loss  full  float %.9f  double %.9f  abs err %.3g\n", loss, want, fabs(loss - want));
    expect(fabs(loss - want) < 1e-5 * fabs(want), "full: loss matches the double model");
    for (int i = 0; i < sm_train_n_tensors(t); i++) {
        const sm_train_tensor *tt = sm_train_tensor_at(t, i);
        check_tensor("full", tt->name, P + tt->offset, grads + tt->offset, tt->n, &x, 2e-4);
    }
    /* forward_loss, accumulation, determinism */
    rc = sm_train_forward_loss(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    expect(rc == 0 && loss2 == loss, "full: forward_loss equals forward_backward's loss");
    float *g1 = malloc(sizeof(float) * n);
    memcpy(g1, grads, sizeof(float) * n);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    int acc_ok = 1;
    float gmax = 0.0f;
    for (size_t i = 0; i < n; i++) gmax = fmaxf(gmax, fabsf(g1[i]));
    for (size_t i = 0; i < n; i++) acc_ok &= fabsf(grads[i] - 2.0f * g1[i]) <= 1e-6f * gmax; /* float rounding only */
    if (!acc_ok) {
        double e = 0.0;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) if (fabs(grads[i] - 2.0 * g1[i]) > e) { e = fabs(grads[i] - 2.0 * g1[i]); at = i; }
        printf("accumulation: max diff %.3g at %zu (%g vs 2 x %g)\n", e, at, grads[at], g1[at]);
    }
    expect(acc_ok, "full: a second call adds the same gradient (accumulation)");
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    expect(memcmp(grads, g1, sizeof(float) * n) == 0 && loss2 == loss, "full: a rerun is bit-identical");
    sm_train_zero_grads(t);
    sm_train_set_grad_scale(t, 0.25f);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    int scale_ok = 1;
    for (size_t i = 0; i < n; i++) scale_ok &= fabsf(grads[i] - 0.25f * g1[i]) <= 1e-6f * gmax;
    expect(scale_ok, "full: the grad scale scales the gradient");
    free(g1);
    free(d.layers);
    free(P);
    sm_train_model_free(t);
    tiny_model_free(&tm);
    free(w);
}

static void check_lora(const char *label, const sm_model_config *c, int type, int has_bias, int packed, double tol) {
    printf("-- lora, %s, base %s\n", label, sm_type_name(type));
    float *w = random_weights(c, has_bias, 0.3f);
    tiny_model tm;
    tiny_model_build(&tm, c, w, type, has_bias);
    sm_error err = {0};
    sm_lora *lo = sm_lora_new(c, 2, 4.0f, 0, SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP, &err);
    if (!lo) { printf("sm_lora_new: %s\n", err.msg); failures++; return; }
    for (size_t i = 0; i < lo->n_params; i++) lo->params[i] = 0.3f * frand(); /* B nonzero, so dA is too */
    batch b;
    make_batch(&b, c, 2, 6, has_bias, packed);
    const int *seg = packed ? b.seg : NULL;
    sm_train_model *t = sm_train_model_new(&tm.model, lo, SM_TRAIN_LORA, 2, 6, 0.0f, 1, &err);
    if (!t) { printf("sm_train_model_new: %s\n", err.msg); failures++; return; }
    size_t n;
    float *params = sm_train_params(t, &n), *grads = sm_train_grads(t, NULL);
    expect(params == lo->params && n == lo->n_params, "lora: the parameters are the adapter's slab");
    sm_train_zero_grads(t);
    float loss = 0.0f, loss2 = 0.0f;
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss, &err);
    double *L = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) L[i] = lo->params[i];
    dmodel d;
    dmodel_make(&d, &tm.model, lo, L);
    loss_ctx x = {&d, &b};
    const double want = loss_of(&x);
    printf("loss  lora  float %.9f  double %.9f  abs err %.3g\n", loss, want, fabs(loss - want));
    expect(fabs(loss - want) < (type == SM_TYPE_Q8_0 ? 1e-2 : 1e-5) * fabs(want), "lora: loss matches the double model");
    for (int i = 0; i < sm_train_n_tensors(t); i++) {
        const sm_train_tensor *tt = sm_train_tensor_at(t, i);
        check_tensor("lora", tt->name, L + tt->offset, grads + tt->offset, tt->n, &x, tol);
    }
    sm_train_forward_loss(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    expect(loss2 == loss, "lora: forward_loss equals forward_backward's loss");
    dmodel_free(&d);
    free(L);
    sm_train_model_free(t);

    /* dropout: masks follow the counter */
    t = sm_train_model_new(&tm.model, lo, SM_TRAIN_LORA, 2, 6, 0.5f, 7, &err);
    grads = sm_train_grads(t, NULL);
    float *g0 = malloc(sizeof(float) * n), *g1 = malloc(sizeof(float) * n);
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    memcpy(g0, grads, sizeof(float) * n);
    expect(sm_train_rng(t) == 1, "lora dropout: the counter advances per call");
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    memcpy(g1, grads, sizeof(float) * n);
    expect(memcmp(g0, g1, sizeof(float) * n) != 0, "lora dropout: the next call draws other masks");
    sm_train_set_rng(t, 0);
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, b.tokens, b.targets, seg, b.B, b.T, &loss2, &err);
    expect(memcmp(g0, grads, sizeof(float) * n) == 0, "lora dropout: restoring the counter redraws the same masks");
    free(g0);
    free(g1);
    sm_train_model_free(t);
    sm_lora_free(lo);
    tiny_model_free(&tm);
    free(w);
}

/* An activated adapter: on only from each row's invocation position onward. */
static void check_lora_mask(const sm_model_config *c) {
    printf("-- lora, activated (adapter mask), packed\n");
    float *w = random_weights(c, 0, 0.3f);
    tiny_model tm;
    tiny_model_build(&tm, c, w, SM_TYPE_F32, 0);
    sm_error err = {0};
    sm_lora *lo = sm_lora_new(c, 2, 4.0f, 0, SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP, &err);
    for (size_t i = 0; i < lo->n_params; i++) lo->params[i] = 0.3f * frand();
    lo->activated = 1;
    batch b;
    make_batch(&b, c, 2, 6, 0, 1);
    const unsigned char on[12] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1};
    sm_train_model *t = sm_train_model_new(&tm.model, lo, SM_TRAIN_LORA, 2, 6, 0.0f, 1, &err);
    float loss;
    expect(sm_train_forward_backward(t, b.tokens, b.targets, b.seg, 2, 6, &loss, &err) == SM_EINVAL,
           "activated: training without an adapter mask is SM_EINVAL");
    expect(sm_train_set_adapter_mask(t, on, 2, 6, &err) == 0, "activated: the mask is taken");
    expect(sm_train_forward_backward(t, b.tokens, b.targets, b.seg, 1, 6, &loss, &err) == SM_EINVAL,
           "activated: a batch of another shape than the mask is SM_EINVAL");
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, b.tokens, b.targets, b.seg, 2, 6, &loss, &err);
    size_t n;
    sm_train_params(t, &n);
    const float *grads = sm_train_grads(t, NULL);
    double *L = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) L[i] = lo->params[i];
    dmodel d;
    dmodel_make(&d, &tm.model, lo, L);
    d.lora_on = on;
    loss_ctx x = {&d, &b};
    const double want = loss_of(&x);
    printf("loss  lora  float %.9f  double %.9f  abs err %.3g\n", loss, want, fabs(loss - want));
    expect(fabs(loss - want) < 1e-5 * fabs(want), "activated: loss matches the double model with the mask");
    for (int i = 0; i < sm_train_n_tensors(t); i++) {
        const sm_train_tensor *tt = sm_train_tensor_at(t, i);
        check_tensor("act", tt->name, L + tt->offset, grads + tt->offset, tt->n, &x, 2e-4);
    }
    dmodel_free(&d);
    free(L);
    sm_train_model_free(t);
    sm_lora_free(lo);
    tiny_model_free(&tm);
    free(w);
}

/* A packed segment gives the same logits as the same tokens alone at the start of a row. */
static void check_packing(const sm_model_config *c) {
    float *w = random_weights(c, 0, 0.3f);
    tiny_model tm;
    tiny_model_build(&tm, c, w, SM_TYPE_F32, 0);
    sm_error err = {0};
    sm_train_model *t = sm_train_model_new(&tm.model, NULL, SM_TRAIN_FULL, 2, 6, 0.0f, 1, &err);
    const int tokens[6] = {5, 9, 1, 7, 3, 12}, seg[6] = {4, 4, 4, 8, 8, 8};
    const int V = c->n_vocab;
    float *packed = malloc(sizeof(float) * 6 * V), *alone = malloc(sizeof(float) * 3 * V);
    sm_train_forward_logits(t, tokens, seg, 1, 6, packed, &err);
    sm_train_forward_logits(t, tokens + 3, NULL, 1, 3, alone, &err);
    double e = 0.0;
    for (int i = 0; i < 3 * V; i++) e = fmax(e, fabs(packed[3 * V + i] - alone[i]));
    printf("packing: logits of a second segment vs the segment alone: max abs diff %.3g\n", e);
    expect(e <= 1e-6, "packing: a segment attends only to itself, positions restart");
    /* and the train forward agrees with the inference forward (kvcache.c) */
    sm_context *ctx = sm_context_new(&tm.model, 8, 8, &err);
    float *inf = malloc(sizeof(float) * 6 * V);
    sm_forward(ctx, tokens, 6, inf, 1, &err);
    sm_train_forward_logits(t, tokens, NULL, 1, 6, packed, &err);
    e = 0.0;
    for (int i = 0; i < 6 * V; i++) e = fmax(e, fabs(packed[i] - inf[i]));
    printf("train forward vs inference forward (sm_forward): max abs diff %.3g\n", e);
    expect(e <= 1e-5, "train logits match the inference forward");
    /* bad input */
    const int bad_tokens[2] = {0, V};
    const int targets[2] = {1, 2};
    float loss;
    expect(sm_train_forward_backward(t, bad_tokens, targets, NULL, 1, 2, &loss, &err) == SM_EINVAL,
           "a token outside the vocabulary is SM_EINVAL");
    expect(sm_train_forward_backward(t, tokens, targets, NULL, 3, 2, &loss, &err) == SM_EINVAL,
           "a batch larger than max_batch is SM_EINVAL");
    const int masked[2] = {-1, -1};
    expect(sm_train_forward_backward(t, tokens, masked, NULL, 1, 2, &loss, &err) == 0 && loss == 0.0f,
           "an all-masked batch has loss 0");
    sm_context_free(ctx);
    free(inf); free(packed); free(alone);
    sm_train_model_free(t);
    tiny_model_free(&tm);
    free(w);
}

int main(void) {
    omp_set_num_threads(2);
    sm_model_config a = {.arch = "llama", .n_vocab = 32, .n_embd = 16, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                         .head_dim = 4, .n_ff = 24, .n_ctx_train = 64, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                         .rope_neox = 0, .tied_output = 0};
    sm_model_config b = a;
    b.n_vocab = 29;
    b.n_head_kv = 1;
    b.n_ff = 20;
    b.rope_neox = 1;
    b.tied_output = 1;
    b.rope_theta = 1000.0f;
    check_full("untied, rope norm, GQA 4/2", &a, 0, 0);
    check_full("tied, rope neox, MQA 4/1, q/k/v biases, packed", &b, 1, 1);
    check_lora("untied, rope norm, packed", &a, SM_TYPE_F32, 0, 1, 2e-4);
    check_lora("tied, neox, biases", &b, SM_TYPE_F16, 1, 0, 2e-4);
    check_lora("untied, rope norm", &a, SM_TYPE_BF16, 0, 0, 2e-4);
    sm_model_config q = a;
    q.n_embd = 32;
    q.n_head_kv = 4;
    q.head_dim = 8;
    q.n_ff = 64;
    q.n_layer = 1;
    check_lora("Q8_0 base (activations quantized in the forward; loose)", &q, SM_TYPE_Q8_0, 0, 0, 5e-2);
    check_lora_mask(&a);
    check_packing(&a);
    if (failures) {
        printf("%d check(s) FAILED\n", failures);
        return 1;
    }
    printf("all model gradient checks passed\n");
    return 0;
}
