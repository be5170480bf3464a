/* bench_model.c: inference speed and memory of a whole model, measured as llama.cpp's llama-bench
 * measures them, so that the two print comparable numbers for the same GGUF file.
 *
 *   ppN    prefill: N prompt tokens in one sm_forward call (chunks of n_batch) into an empty cache;
 *          tokens/s = N / time.
 *   tgN    decode: N tokens one at a time from an empty cache, each token the argmax of the last
 *          logits; tokens/s = N / time.
 *   mem    peak resident set (VmHWM) against the bytes it has to hold: the mapped file plus the
 *          KV cache (f32 K and V for n_layer * n_ctx positions).
 * Each test runs once untimed (warm-up: page faults, caches) and then `reps` times; the mean and
 * standard deviation of tokens/s are printed. Prompt tokens are fixed pseudo-random ids.
 *
 * usage: bench_model -m MODEL.gguf [-t THREADS] [-p 128,512] [-n 128] [-r REPS]
 * Prints one JSON line per test:
 *   {"bench":"model","impl":"snipmeta","type":"q8_0","test":"pp512","threads":2,"tok_s":...,...}
 */
#include "kernels.h"
#include "model.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TESTS 8

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A field of /proc/self/status in kB ("VmHWM", "VmRSS"), or -1. */
static long proc_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    const size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') { kb = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return kb;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Parses "128,512" into out[0..n); returns n, or -1 on a bad list. */
static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || n == cap) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static void print_result(const char *model_type, const char *test, int threads, const double *tok_s, int reps) {
    double mean = 0, var = 0;
    for (int r = 0; r < reps; r++) mean += tok_s[r] / reps;
    for (int r = 0; r < reps; r++) var += (tok_s[r] - mean) * (tok_s[r] - mean) / (reps > 1 ? reps - 1 : 1);
    printf("{\"bench\":\"model\",\"impl\":\"snipmeta\",\"type\":\"%s\",\"test\":\"%s\",\"threads\":%d,"
           "\"tok_s\":%.2f,\"tok_s_sd\":%.2f,\"reps\":%d,\"isa\":\"%s\"}\n",
           model_type, test, threads, mean, sqrt(var), reps, sm_kernels_isa());
    fflush(stdout);
}

/* Times n_prompt tokens in one forward call from an empty cache. */
static int run_prefill(sm_context *ctx, const int *prompt, int n_prompt, float *logits, double *seconds,
                       sm_error *err) {
    int rc = sm_context_truncate(ctx, 0, err);
    if (rc) return rc;
    const double t0 = now_s();
    rc = sm_forward(ctx, prompt, n_prompt, logits, 0, err);
    *seconds = now_s() - t0;
    return rc;
}

/* Times n_gen single-token forward calls from an empty cache, each fed the previous argmax. */
static int run_decode(sm_context *ctx, int first, int n_gen, float *logits, int n_vocab, double *seconds,
                      sm_error *err) {
    int rc = sm_context_truncate(ctx, 0, err), token = first;
    if (rc) return rc;
    const double t0 = now_s();
    for (int i = 0; i < n_gen && !rc; i++) {
        rc = sm_forward(ctx, &token, 1, logits, 0, err);
        token = argmax(logits, n_vocab);
    }
    *seconds = now_s() - t0;
    return rc;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int threads = 2, reps = 3, n_gen = 128, prompts[MAX_TESTS] = {128, 512}, n_prompts = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "bench_model: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-n")) n_gen = atoi(v);
        else if (!strcmp(a, "-p")) {
            if ((n_prompts = parse_list(v, prompts, MAX_TESTS)) < 0) { fprintf(stderr, "bench_model: bad -p\n"); return 2; }
        } else { fprintf(stderr, "bench_model: unknown option %s\n", a); return 2; }
    }
    if (!path || threads < 1 || reps < 1 || reps > 100 || n_gen < 0) {
        fprintf(stderr, "usage: bench_model -m MODEL.gguf [-t THREADS] [-p 128,512] [-n 128] [-r REPS]\n");
        return 2;
    }
    omp_set_num_threads(threads);

    sm_error err = {0};
    const double t_load = now_s();
    sm_model *m = sm_model_load(path, &err);
    if (!m) { fprintf(stderr, "bench_model: %s\n", err.msg); return 1; }
    const double load_s = now_s() - t_load;
    const sm_model_config *cfg = &m->config;
    const char *model_type = sm_type_name(m->layers[0].proj[SM_PROJ_Q].type);

    int n_ctx = n_gen;
    for (int i = 0; i < n_prompts; i++) n_ctx = prompts[i] > n_ctx ? prompts[i] : n_ctx;
    sm_context *ctx = sm_context_new(m, n_ctx, 512, &err);
    float *logits = malloc((size_t)cfg->n_vocab * sizeof *logits);
    int *prompt = malloc((size_t)n_ctx * sizeof *prompt);
    double *tok_s = malloc((size_t)reps * sizeof *tok_s);
    if (!ctx || !logits || !prompt || !tok_s) {
        fprintf(stderr, "bench_model: %s\n", ctx ? "out of memory" : err.msg);
        return 1;
    }
    uint64_t state = 42; /* fixed pseudo-random prompt ids (an LCG) */
    for (int i = 0; i < n_ctx; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int)((state >> 33) % (uint64_t)cfg->n_vocab);
    }

    int rc = 0;
    char test[32];
    for (int i = 0; i < n_prompts && !rc; i++) {
        double s;
        rc = run_prefill(ctx, prompt, prompts[i], logits, &s, &err); /* warm-up */
        for (int r = 0; r < reps && !rc; r++) {
            rc = run_prefill(ctx, prompt, prompts[i], logits, &s, &err);
            tok_s[r] = prompts[i] / s;
        }
        snprintf(test, sizeof test, "pp%d", prompts[i]);
        if (!rc) print_result(model_type, test, threads, tok_s, reps);
    }
    if (n_gen > 0 && !rc) {
        double s;
        rc = run_decode(ctx, prompt[0], n_gen < 16 ? n_gen : 16, logits, cfg->n_vocab, &s, &err); /* warm-up */
        for (int r = 0; r < reps && !rc; r++) {
            rc = run_decode(ctx, prompt[0], n_gen, logits, cfg->n_vocab, &s, &err);
            tok_s[r] = n_gen / s;
        }
        snprintf(test, sizeof test, "tg%d", n_gen);
        if (!rc) print_result(model_type, test, threads, tok_s, reps);
    }
    if (rc) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
    } else {
        const double mib = 1024.0 * 1024.0;
        const double file_mib = (double)sm_gguf_file_size(m->gguf) / mib;
        const double kv_mib = 2.0 * cfg->n_layer * (double)n_ctx * cfg->n_head_kv * cfg->head_dim * sizeof(float) / mib;
        const double peak_mib = (double)proc_status_kb("VmHWM") / 1024.0;
        printf("{\"bench\":\"model\",\"impl\":\"snipmeta\",\"type\":\"%s\",\"test\":\"mem\",\"threads\":%d,"
               "\"peak_rss_mib\":%.1f,\"file_mib\":%.1f,\"kv_cache_mib\":%.1f,\"n_ctx\":%d,"
               "\"overhead_mib\":%.1f,\"load_s\":%.3f}\n",
               model_type, threads, peak_mib, file_mib, kv_mib, n_ctx, peak_mib - file_mib - kv_mib, load_s);
    }
    free(tok_s);
    free(prompt);
    free(logits);
    sm_context_free(ctx);
    sm_model_free(m);
    return rc ? 1 : 0;
}
