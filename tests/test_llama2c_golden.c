/* test_llama2c_golden.c: stories260K converted to GGUF and run by the library, against an
 * independent llama2.c-style forward over the .bin (tests/ref): greedy continuations of several
 * prompts must be the same tokens, position for position; and the logits of the first positions
 * must agree to float rounding. */
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
    int *want = malloc(1024 * sizeof *want), *got = malloc(1024 * sizeof *got), *prompt = malloc(1024 * sizeof *prompt);
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        int n_prompt = ref_encode(&rt, prompts[p], prompt);
        int n_want = ref_llama2c_greedy(&ref, prompt, n_prompt, steps, want);
        double diff = 0;
        int n_got = lib_greedy(m, prompt, n_prompt, steps, got, &diff, &ref);
        int same_upto = 0;
        while (same_upto < n_want && same_upto < n_got && want[same_upto] == got[same_upto]) same_upto++;
        printf("prompt \"%s\": %d prompt tokens, %d tokens out, %d equal; prompt logits max diff %.2e\n", prompts[p],
               n_prompt, n_got, same_upto, diff);
        if (n_got != n_want || same_upto != n_want) {
            fprintf(stderr, "FAIL: prompt \"%s\": the library's greedy tokens differ from llama2.c's at index %d "
                            "(%d vs %d tokens)\n", prompts[p], same_upto, n_got, n_want);
            failures++;
        }
        if (diff > 1e-4) {
            fprintf(stderr, "FAIL: prompt \"%s\": logits differ by %.3e\n", prompts[p], diff);
            failures++;
        }
    }
    free(want), free(got), free(prompt);
    ref_llama2c_free(&ref);
    ref_tokenizer_free(&rt);
    sm_model_free(m);
    unlink(gguf);
    rmdir(dir);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_llama2c_golden: ok\n");
    return 0;
}
