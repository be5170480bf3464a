/* test_train_model.c: train_model.h on a real trained model (stories260K, converted from
 * ../shared/fixtures to a temporary GGUF): the FULL parameter table and save to GGUF (reloaded,
 * the same weights and logits), results independent of the thread count, a refused quantized save
 * of rows that are not whole blocks, and a short LoRA run (Adam inline) that drives the loss of a
 * fixed continuation far down while the base's weights stay untouched. Skips (77) without the
 * fixture. Exits 1 on any failure.
 */
#include "train_model.h"

#include "llama2c.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

static void expect(int ok, const char *what) {
    printf("%-72s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

enum { B = 2, T = 24 };

static void make_batch(int *tokens, int *targets, int *seg, int V) {
    for (int i = 0; i < B * T; i++) {
        tokens[i] = 1 + (i * 37 + 11) % (V - 1);
        targets[i] = i % T < 8 ? -1 : 1 + (i * 53 + 5) % (V - 1); /* 8 prompt tokens masked */
        seg[i] = i % T < 15 ? 0 : 1;
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char ckpt[4096], tok[4096], gguf[4096], saved[4096];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/fixtures/stories260K/tok512.bin", shared);
    if (access(ckpt, R_OK) || access(tok, R_OK)) { printf("no stories260K fixture: skipped\n"); return 77; }
    char dir[] = "/tmp/sm_train_model_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(gguf, sizeof gguf, "%s/stories260K.gguf", dir);
    snprintf(saved, sizeof saved, "%s/full.gguf", dir);
    sm_error err = {0};
    if (sm_llama2c_convert(ckpt, tok, gguf, NULL, &err)) { printf("convert: %s\n", err.msg); return 1; }
    sm_model *m = sm_model_load(gguf, &err);
    if (!m) { printf("load: %s\n", err.msg); return 1; }
    const int V = m->config.n_vocab;
    int tokens[B * T], targets[B * T], seg[B * T];
    make_batch(tokens, targets, seg, V);

    /* FULL: thread-count independence, save and reload */
    omp_set_num_threads(1);
    sm_train_model *t1 = sm_train_model_new(m, NULL, SM_TRAIN_FULL, B, T, 0.0f, 1, &err);
    if (!t1) { printf("new: %s\n", err.msg); return 1; }
    size_t n;
    float *p1 = sm_train_params(t1, &n), *g1 = sm_train_grads(t1, NULL);
    float loss1, loss2;
    sm_train_zero_grads(t1);
    sm_train_forward_backward(t1, tokens, targets, seg, B, T, &loss1, &err);
    omp_set_num_threads(2);
    sm_train_model *t2 = sm_train_model_new(m, NULL, SM_TRAIN_FULL, B, T, 0.0f, 1, &err);
    float *g2 = sm_train_grads(t2, NULL);
    sm_train_zero_grads(t2);
    sm_train_forward_backward(t2, tokens, targets, seg, B, T, &loss2, &err);
    printf("stories260K full: %zu parameters in %d tensors, loss %.6f\n", n, sm_train_n_tensors(t1), loss1);
    expect(loss1 == loss2 && memcmp(g1, g2, n * sizeof(float)) == 0, "full: 1 and 2 threads give bit-identical loss and gradients");
    /* an SGD step, then save and reload */
    for (size_t i = 0; i < n; i++) p1[i] -= 0.05f * g1[i];
    expect(sm_train_model_save_gguf(t1, saved, SM_TYPE_Q8_0, &err) == SM_EINVAL,
           "full: Q8_0 save of rows of 172 (not whole blocks) is SM_EINVAL");
    int rc = sm_train_model_save_gguf(t1, saved, SM_TYPE_F32, &err);
    expect(rc == 0, "full: save as F32 GGUF");
    if (rc) printf("  %s\n", err.msg);
    sm_model *m2 = rc ? NULL : sm_model_load(saved, &err);
    expect(m2 != NULL, "full: the saved model loads (tokenizer and metadata copied)");
    if (m2) {
        sm_train_model *t3 = sm_train_model_new(m2, NULL, SM_TRAIN_FULL, B, T, 0.0f, 1, &err);
        size_t n3;
        float *p3 = sm_train_params(t3, &n3);
        expect(n3 == n && memcmp(p1, p3, n * sizeof(float)) == 0, "full: the reloaded weights are the trained ones, bit for bit");
        float *la = malloc(sizeof(float) * B * T * V), *lb = malloc(sizeof(float) * B * T * V);
        sm_train_forward_logits(t1, tokens, seg, B, T, la, &err);
        sm_train_forward_logits(t3, tokens, seg, B, T, lb, &err);
        expect(memcmp(la, lb, sizeof(float) * B * T * V) == 0, "full: the reloaded model gives the same logits");
        float before;
        sm_train_forward_loss(t2, tokens, targets, seg, B, T, &before, &err);
        float after;
        sm_train_forward_loss(t3, tokens, targets, seg, B, T, &after, &err);
        printf("  one SGD step: loss %.6f -> %.6f\n", before, after);
        expect(after < before, "full: one SGD step lowers the loss");
        free(la); free(lb);
        sm_train_model_free(t3);
        sm_model_free(m2);
    }
    sm_train_model_free(t1);
    sm_train_model_free(t2);

    /* LORA: a fixed continuation learned in a few dozen Adam steps; the base is untouched */
    sm_lora *lo = sm_lora_new(&m->config, 8, 16.0f, 0, SM_LORA_TARGETS_ATTN, &err);
    if (!lo) { printf("sm_lora_new: %s\n", err.msg); return 1; }
    sm_lora_init(lo, 42);
    sm_train_model *tl = sm_train_model_new(m, lo, SM_TRAIN_LORA, B, T, 0.05f, 3, &err);
    if (!tl) { printf("new lora: %s\n", err.msg); return 1; }
    const float *q0 = m->layers[0].proj[SM_PROJ_Q].data;
    float q_before = q0[5];
    size_t np;
    float *p = sm_train_params(tl, &np), *g = sm_train_grads(tl, NULL);
    float *am = calloc(np, sizeof(float)), *av = calloc(np, sizeof(float));
    /* the task: after any prompt, continue with the same 16 tokens */
    for (int i = 0; i < B * T; i++) targets[i] = i % T < 8 ? -1 : 10 + (i % T);
    float first = 0.0f, last = 0.0f;
    for (int step = 1; step <= 60; step++) {
        float loss;
        sm_train_zero_grads(tl);
        sm_train_forward_backward(tl, tokens, targets, NULL, B, T, &loss, &err);
        if (step == 1) first = loss;
        const float lr = 1e-2f, c1 = 1.0f - powf(0.9f, step), c2 = 1.0f - powf(0.999f, step);
        for (size_t i = 0; i < np; i++) {
            am[i] = 0.9f * am[i] + 0.1f * g[i];
            av[i] = 0.999f * av[i] + 0.001f * g[i] * g[i];
            p[i] -= lr * (am[i] / c1) / (sqrtf(av[i] / c2) + 1e-8f);
        }
    }
    sm_train_forward_loss(tl, tokens, targets, NULL, B, T, &last, &err);
    printf("stories260K LoRA rank 8 (%zu parameters): loss %.4f -> %.4f after 60 steps\n", np, first, last);
    expect(last < 0.25f * first, "lora: the task's loss falls below a quarter");
    expect(q0[5] == q_before, "lora: the base weights are untouched");
    free(am); free(av);
    sm_train_model_free(tl);
    sm_lora_free(lo);
    sm_model_free(m);
    unlink(gguf);
    unlink(saved);
    rmdir(dir);
    if (failures) {
        printf("%d check(s) FAILED\n", failures);
        return 1;
    }
    printf("all train_model checks passed\n");
    return 0;
}
