/* test_lora_f16.c: LoRA adapters held as f16 (sm_lora_to_f16, what a registry keeps resident).
 *
 *   - lora_forward_f16 against its plain reference over shapes of one to 17 rows, ranks 1-16 and
 *     odd sizes (max relative difference printed, tolerance 1e-5 of the row's scale);
 *   - the conversion: values are sm_fp32_to_fp16 of the f32 ones, half the bytes, the f32 matrices
 *     gone; a GGUF written from it holds F16 tensors that load back to the same values; PEFT
 *     writing refuses it; merging reads it as the same values;
 *   - the forward pass (random Q8_0 model of the StarCoder vocabulary, and llama2.c's stories260K
 *     when the fixture is there): with the f16 adapter, logits match the f32 adapter whose values
 *     were rounded to f16 up to summation order (1e-4), the original f32 adapter within the
 *     rounding's effect (printed), and 32 greedy tokens are the same as with the f32 adapter.
 */
#include "gguf.h"
#include "kernels.h"
#include "llama2c.h"
#include "lora.h"
#include "model_init.h"
#include "sample.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void check_kernel(void) {
    static const int shapes[][4] = { /* n, in, rank, out */
        {1, 576, 8, 576}, {1, 576, 8, 192}, {2, 64, 4, 96}, {3, 576, 16, 1536}, {4, 1536, 8, 576},
        {5, 13, 1, 7}, {17, 576, 8, 192}, {1, 37, 3, 5}, {64, 96, 2, 33},
    };
    uint64_t state = 99;
    double worst = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int n = shapes[k][0], in = shapes[k][1], rank = shapes[k][2], out = shapes[k][3];
        float *x = malloc(sizeof(float) * n * in), *y = malloc(sizeof(float) * n * out), *y_ref = malloc(sizeof(float) * n * out);
        float *ax = malloc(sizeof(float) * n * rank), *bax = malloc(sizeof(float) * n * out);
        float *ax_ref = malloc(sizeof(float) * n * rank), *bax_ref = malloc(sizeof(float) * n * out);
        uint16_t *a = malloc(sizeof(uint16_t) * rank * in), *b = malloc(sizeof(uint16_t) * out * rank);
        for (int i = 0; i < n * in; i++) x[i] = 2 * sm_rng_f32(&state) - 1;
        for (int i = 0; i < rank * in; i++) a[i] = sm_fp32_to_fp16((2 * sm_rng_f32(&state) - 1) / sqrtf((float)in));
        for (int i = 0; i < out * rank; i++) b[i] = sm_fp32_to_fp16(0.1f * (2 * sm_rng_f32(&state) - 1));
        for (int i = 0; i < n * out; i++) y[i] = y_ref[i] = 2 * sm_rng_f32(&state) - 1;
        float s = 1.5f;
        lora_forward_f16(y, ax, bax, x, a, b, s, n, in, rank, out);
        lora_forward_f16_ref(y_ref, ax_ref, bax_ref, x, a, b, s, n, in, rank, out);
        double max_diff = 0, scale = 0;
        for (int i = 0; i < n * out; i++) {
            double d = fabs((double)y[i] - y_ref[i]);
            if (!(d <= max_diff)) max_diff = d;
            if (fabs(bax_ref[i]) > scale) scale = fabs(bax_ref[i]);
        }
        double rel = max_diff / (s * (scale > 0 ? scale : 1));
        if (rel > worst) worst = rel;
        CHECK(rel <= 1e-5, "lora_forward_f16 n %d in %d rank %d out %d: max difference %.3g (relative %.3g)", n, in, rank, out, max_diff, rel);
        free(x), free(y), free(y_ref), free(ax), free(bax), free(ax_ref), free(bax_ref), free(a), free(b);
    }
    printf("lora_forward_f16 vs reference: %zu shapes, max relative difference %.3g\n", sizeof shapes / sizeof shapes[0], worst);
}

static sm_lora *random_adapter(const sm_model_config *cfg, unsigned targets, uint64_t seed) {
    sm_error err = {0};
    sm_lora *l = sm_lora_new(cfg, 8, 16.0f, 0, targets, &err);
    if (!l) { fprintf(stderr, "FAIL: adapter: %s\n", err.msg); exit(1); }
    sm_lora_init(l, seed);
    uint64_t state = seed * 31 + 7;
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            for (size_t i = 0; pair->b && i < (size_t)pair->out * l->rank; i++) pair->b[i] = 0.1f * (2 * sm_rng_f32(&state) - 1);
        }
    snprintf(l->task, sizeof l->task, "title");
    return l;
}

/* A copy of l (through a GGUF file) with every value rounded to f16 but held as f32, and another
 * held as f16. */
static void copies(const sm_lora *l, const char *dir, sm_lora **rounded, sm_lora **half) {
    sm_error err = {0};
    char path[4300];
    snprintf(path, sizeof path, "%s/copy.gguf", dir);
    if (sm_lora_save_gguf(l, path, &err) || !(*rounded = sm_lora_load_gguf(path, &err)) || !(*half = sm_lora_load_gguf(path, &err))) {
        fprintf(stderr, "FAIL: copy: %s\n", err.msg);
        exit(1);
    }
    for (size_t i = 0; i < (*rounded)->n_params; i++) (*rounded)->params[i] = sm_fp16_to_fp32(sm_fp32_to_fp16((*rounded)->params[i]));
    CHECK(sm_lora_to_f16(*half, &err) == SM_OK, "to_f16: %s", err.msg);
}

static void check_conversion(const sm_model_config *cfg, const char *dir) {
    sm_error err = {0};
    sm_lora *l = random_adapter(cfg, SM_LORA_TARGETS_ATTN | (1u << SM_PROJ_DOWN), 5), *rounded, *half;
    snprintf(l->arch, sizeof l->arch, "%s", cfg->arch);
    copies(l, dir, &rounded, &half);
    CHECK(half->params == NULL && half->params16 != NULL && sm_lora_bytes(half) * 2 == sm_lora_bytes(l),
          "f16: params %p, params16 %p, %zu bytes (f32 %zu)", (void *)half->params, (void *)half->params16, sm_lora_bytes(half), sm_lora_bytes(l));
    CHECK(sm_lora_to_f16(half, &err) == SM_OK && half->params16, "a second conversion");
    int bad = 0, n_set = 0;
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const sm_lora_pair *x = sm_lora_at(l, layer, (sm_proj)p), *h = sm_lora_at(half, layer, (sm_proj)p);
            if (sm_lora_pair_set(x) != sm_lora_pair_set(h) || h->a || h->b) bad++;
            if (!x->a) continue;
            n_set++;
            for (size_t i = 0; i < (size_t)l->rank * x->in; i++) bad += h->a16[i] != sm_fp32_to_fp16(x->a[i]);
            for (size_t i = 0; i < (size_t)x->out * l->rank; i++) bad += h->b16[i] != sm_fp32_to_fp16(x->b[i]);
        }
    CHECK(bad == 0 && n_set == l->n_layer * 5, "conversion: %d values or pairs differ (%d pairs)", bad, n_set);

    /* written as F16, read back: the f16 values */
    char path[4300];
    snprintf(path, sizeof path, "%s/half.gguf", dir);
    CHECK(sm_lora_save_gguf(half, path, &err) == SM_OK, "save f16: %s", err.msg);
    sm_gguf *g = sm_gguf_open(path, &err);
    const sm_gguf_tensor *t = g ? sm_gguf_find_tensor(g, "blk.0.attn_q.weight.lora_a") : NULL;
    CHECK(t && t->type == SM_TYPE_F16, "the written tensor is not F16");
    sm_gguf_close(g);
    sm_lora *back = sm_lora_load_gguf(path, &err);
    CHECK(back && back->n_params == rounded->n_params && !memcmp(back->params, rounded->params, back->n_params * sizeof(float)),
          "an f16 adapter written and read back differs: %s", back ? "" : err.msg);
    sm_lora_free(back);
    CHECK(sm_lora_save_peft(half, "base", dir, &err) == SM_EINVAL, "PEFT writing of an f16 adapter accepted");

    /* merging reads the same values */
    int in = sm_lora_at(l, 1, SM_PROJ_V)->in, out = sm_lora_at(l, 1, SM_PROJ_V)->out;
    float *w1 = calloc((size_t)in * out, sizeof(float)), *w2 = calloc((size_t)in * out, sizeof(float));
    sm_lora_merge_into(w1, rounded, 0.5f, 1, SM_PROJ_V);
    sm_lora_merge_into(w2, half, 0.5f, 1, SM_PROJ_V);
    double max_diff = 0;
    for (int i = 0; i < in * out; i++) max_diff = fmax(max_diff, fabs((double)w1[i] - w2[i]));
    CHECK(max_diff <= 1e-6, "merge of the f16 adapter differs by %.3g", max_diff);
    free(w1), free(w2);
    sm_lora_free(l), sm_lora_free(rounded), sm_lora_free(half);
}

/* logits of prompt then n_gen greedy tokens with adapter l (from position 0) */
static void run(const sm_model *m, const sm_lora *l, const int *prompt, int n_prompt, int n_gen, float *logits, int *ids) {
    sm_error err = {0};
    sm_context *c = sm_context_new(m, 256, 64, &err);
    float one = 1.0f;
    if (!c || sm_context_set_adapters(c, &l, &one, 1, &err) || sm_forward(c, prompt, n_prompt, logits, 0, &err)) {
        fprintf(stderr, "FAIL: forward: %s\n", err.msg);
        exit(1);
    }
    int n_vocab = m->config.n_vocab;
    for (int k = 0; k < n_gen; k++) {
        ids[k] = sm_argmax(logits + (size_t)k * n_vocab, n_vocab);
        if (k + 1 < n_gen && sm_forward(c, &ids[k], 1, logits + (size_t)(k + 1) * n_vocab, 0, &err)) {
            fprintf(stderr, "FAIL: step: %s\n", err.msg);
            exit(1);
        }
    }
    sm_context_free(c);
}

static void check_forward(const char *what, const sm_model *m, const char *dir) {
    enum { N_GEN = 32 };
    int n_vocab = m->config.n_vocab;
    sm_lora *l = random_adapter(&m->config, SM_LORA_TARGETS_ATTN, 17), *rounded, *half;
    snprintf(l->arch, sizeof l->arch, "%s", m->config.arch);
    copies(l, dir, &rounded, &half);
    int prompt[24];
    uint64_t state = 4242;
    for (int i = 0; i < 24; i++) prompt[i] = 1 + (int)(sm_rng_f32(&state) * (float)(n_vocab - 2));
    float *lf = malloc(sizeof(float) * N_GEN * n_vocab), *lr = malloc(sizeof(float) * N_GEN * n_vocab), *lh = malloc(sizeof(float) * N_GEN * n_vocab);
    int idf[N_GEN], idr[N_GEN], idh[N_GEN];
    run(m, l, prompt, 24, N_GEN, lf, idf);
    run(m, rounded, prompt, 24, N_GEN, lr, idr);
    run(m, half, prompt, 24, N_GEN, lh, idh);
    double d_rounded = 0, d_f32 = 0, range = 0;
    for (size_t i = 0; i < (size_t)N_GEN * n_vocab; i++) {
        d_rounded = fmax(d_rounded, fabs((double)lh[i] - lr[i]));
        d_f32 = fmax(d_f32, fabs((double)lh[i] - lf[i]));
        range = fmax(range, fabs((double)lf[i]));
    }
    int same_r = !memcmp(idh, idr, sizeof idh), same_f = !memcmp(idh, idf, sizeof idh);
    printf("%s: f16 adapter vs f32 rounded to f16: max |logit difference| %.3g; vs the f32 adapter: %.3g (logits up to %.3g); "
           "%d greedy tokens %s\n", what, d_rounded, d_f32, range, N_GEN, same_f ? "identical" : "DIFFER");
    CHECK(d_rounded <= 1e-4 * (1 + range), "%s: f16 adapter vs f32 rounded: %.3g", what, d_rounded);
    CHECK(same_r, "%s: greedy tokens differ between the f16 adapter and the rounded f32 one", what);
    CHECK(same_f, "%s: greedy tokens differ between the f16 adapter and the f32 one", what);
    free(lf), free(lr), free(lh);
    sm_lora_free(l), sm_lora_free(rounded), sm_lora_free(half);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    omp_set_num_threads(2);
    check_kernel();
    char dir[] = "/tmp/test_lora_f16.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    sm_error err = {0};
    char vocab_path[4096], path[4300];
    snprintf(vocab_path, sizeof vocab_path, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    if (access(vocab_path, R_OK) == 0) {
        sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
        sm_model_shape shape = {.n_embd = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 256, .n_ctx = 512,
                                .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied = 1};
        sm_init_scheme scheme;
        snprintf(path, sizeof path, "%s/q8.gguf", dir);
        sm_model *m = NULL;
        if (!vocab || sm_init_scheme_preset("decode", &shape, &scheme) || sm_init_write_gguf(path, &shape, &scheme, vocab, SM_TYPE_Q8_0, 3, &err) ||
            !(m = sm_model_load(path, &err))) {
            fprintf(stderr, "FAIL: model: %s\n", err.msg);
            failures++;
        } else {
            check_conversion(&m->config, dir);
            check_forward("random q8_0", m, dir);
        }
        sm_gguf_close(vocab);
        sm_model_free(m);
    } else {
        printf("random model: skipped (no %s)\n", vocab_path);
    }
    char ckpt[4200], tok[4200];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/fixtures/stories260K/tok512.bin", shared);
    snprintf(path, sizeof path, "%s/stories.gguf", dir);
    if (access(ckpt, R_OK) == 0 && access(tok, R_OK) == 0) {
        sm_model *m = NULL;
        if (sm_llama2c_convert(ckpt, tok, path, NULL, &err) || !(m = sm_model_load(path, &err))) {
            fprintf(stderr, "FAIL: stories260K: %s\n", err.msg);
            failures++;
        } else {
            check_forward("stories260K", m, dir);
        }
        sm_model_free(m);
    } else {
        printf("stories260K: skipped (no fixture)\n");
    }
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) { fprintf(stderr, "test_lora_f16: %d failures\n", failures); return 1; }
    printf("test_lora_f16: ok\n");
    return 0;
}
