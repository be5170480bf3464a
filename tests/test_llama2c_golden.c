/* test_llama2c_golden.c: stories260K converted to GGUF and run by the library, against an
 * independent llama2.c-style forward over the .bin (tests/ref): greedy continuations of several
 * prompts must be the same tokens, position for position; and the logits of the prompt positions
 * must agree to float rounding. Then the same for an unshared-classifier variant of the
 * checkpoint (negative vocab_size, wcls appended), which converts to a separate output.weight. */
#include "llama2c.h"
#include "model.h"
#include "sample.h"

#include "ref/llama2c_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

static const char *const prompts[] = {
    "",
    "Once upon a time",
    "Lily and Ben went to the park",
    "The little dog was sad because",
    "One day, a girl named Sue found a big red box. She",
};

/* The library's greedy continuation in llama2.c's loop: the prompt prefilled in one call, then
 * one token at a time, `steps` positions in all. */
static int lib_greedy(sm_model *m, const int *prompt, int n_prompt, int steps, int *out, double *max_logit_diff,
                      ref_llama2c *ref) {
    sm_error err = {0};
    sm_context *c = sm_context_new(m, steps, 0, &err);
    int V = m->config.n_vocab, n_out = 0;
    float *logits = malloc((size_t)V * n_prompt * sizeof *logits);
    if (!c || sm_forward(c, prompt, n_prompt, logits, 1, &err)) { fprintf(stderr, "FAIL: %s\n", err.msg); exit(1); }
    /* every prompt position's logits against the reference's */
    for (int t = 0; t < n_prompt; t++) {
        float *r = ref_llama2c_forward(ref, prompt[t], t);
        for (int i = 0; i < V; i++) *max_logit_diff = fmax(*max_logit_diff, fabs(r[i] - logits[(size_t)t * V + i]));
    }
    for (int i = 0; i < n_prompt - 1; i++) out[n_out++] = prompt[i + 1];
    float *last = logits + (size_t)(n_prompt - 1) * V;
    for (int pos = n_prompt;; pos++) {
        int next = sm_argmax(last, V);
        if (next == 1) break;
        out[n_out++] = next;
        if (pos >= steps) break;
        if (sm_forward(c, &next, 1, last, 0, &err)) { fprintf(stderr, "FAIL: %s\n", err.msg); exit(1); }
    }
    free(logits);
    sm_context_free(c);
    return n_out;
}

/* Greedy continuation of `text` by the library and by the reference must be the same tokens. */
static void compare(sm_model *m, ref_llama2c *ref, const ref_tokenizer *rt, const char *text, int steps) {
    int *want = malloc(1024 * sizeof *want), *got = malloc(1024 * sizeof *got), *prompt = malloc(1024 * sizeof *prompt);
    int n_prompt = ref_encode(rt, text, prompt);
    int n_want = ref_llama2c_greedy(ref, prompt, n_prompt, steps, want);
    double diff = 0;
    int n_got = lib_greedy(m, prompt, n_prompt, steps, got, &diff, ref);
    int same_upto = 0;
    while (same_upto < n_want && same_upto < n_got && want[same_upto] == got[same_upto]) same_upto++;
    printf("%s prompt \"%s\": %d prompt tokens, %d tokens out, %d equal; prompt logits max diff %.2e\n",
           m->config.tied_output ? "tied" : "untied", text, n_prompt, n_got, same_upto, diff);
    if (n_got != n_want || same_upto != n_want) {
        fprintf(stderr, "FAIL: prompt \"%s\": the library's greedy tokens differ from llama2.c's at index %d "
                        "(%d vs %d tokens)\n", text, same_upto, n_got, n_want);
        failures++;
    }
    if (diff > 1e-4) {
        fprintf(stderr, "FAIL: prompt \"%s\": logits differ by %.3e\n", text, diff);
        failures++;
    }
    free(want), free(got), free(prompt);
}

/* Writes `path`: the checkpoint with vocab_size negated and a classifier wcls appended, each row
 * a scaled, shifted copy of the token embedding's row (so that the text stays story-like). */
static int write_unshared(const char *ckpt, const char *path) {
    size_t size;
    unsigned char *b = ref_read_file(ckpt, &size);
    if (!b) return -1;
    int32_t dim = ref_i32(b), vocab = ref_i32(b + 20), neg = -vocab;
    memcpy(b + 20, &neg, 4); /* the test host is little-endian like the file (checked in main) */
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, size, f) == size;
    const float *emb = (const float *)(b + 28);
    for (int i = 0; ok && i < vocab; i++)
        for (int j = 0; ok && j < dim; j++) {
            float w = 1.1f * emb[(size_t)i * dim + j] + 0.01f * sinf((float)(i + j));
            ok = fwrite(&w, 4, 1, f) == 1;
        }
    if (f) fclose(f);
    free(b);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char ckpt[512], tokbin[512], dir[256], gguf[400];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tokbin, sizeof tokbin, "%s/fixtures/stories260K/tok512.bin", shared);
    if (access(ckpt, R_OK) || access(tokbin, R_OK)) { fprintf(stderr, "skip: %s not found\n", ckpt); return 77; }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sm_test_l2cg_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(gguf, sizeof gguf, "%s/stories260K.gguf", dir);

    sm_error err = {0};
    sm_llama2c_config cfg;
    if (sm_llama2c_convert(ckpt, tokbin, gguf, &cfg, &err)) { fprintf(stderr, "FAIL: convert: %s\n", err.msg); return 1; }
    sm_model *m = sm_model_load(gguf, &err);
    if (!m) { fprintf(stderr, "FAIL: load: %s\n", err.msg); return 1; }
    ref_tokenizer rt = {0};
    ref_llama2c ref;
    if (ref_tokenizer_load(&rt, tokbin, cfg.vocab_size) || ref_llama2c_load(&ref, ckpt)) {
        fprintf(stderr, "FAIL: reading the llama2.c files\n");
        return 1;
    }
    const int steps = 160;
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) compare(m, &ref, &rt, prompts[p], steps);
    ref_llama2c_free(&ref);
    sm_model_free(m);

    /* the unshared classifier */
    const uint32_t one = 1;
    char unshared[400];
    snprintf(unshared, sizeof unshared, "%s/unshared.bin", dir);
    if (*(const unsigned char *)&one != 1) {
        printf("skipping the unshared variant on a big-endian host\n");
    } else if (write_unshared(ckpt, unshared) || sm_llama2c_convert(unshared, tokbin, gguf, &cfg, &err) ||
               !(m = sm_model_load(gguf, &err)) || ref_llama2c_load(&ref, unshared)) {
        fprintf(stderr, "FAIL: the unshared variant: %s\n", err.msg);
        failures++;
    } else {
        if (m->config.tied_output || cfg.shared_classifier) {
            fprintf(stderr, "FAIL: the unshared variant converted to a tied output\n");
            failures++;
        }
        compare(m, &ref, &rt, "Once upon a time", 100);
        compare(m, &ref, &rt, "", 100);
        ref_llama2c_free(&ref);
        sm_model_free(m);
    }
    ref_tokenizer_free(&rt);
    unlink(unshared);
    unlink(gguf);
    rmdir(dir);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_llama2c_golden: ok\n");
    return 0;
}
