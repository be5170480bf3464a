/* bench_train.c: training throughput of train_model.h on random models of a real shape, one JSON
 * line per (shape, mode): tokens/s, step time, trainable parameter count, FLOP/s and the fraction
 * of a stated peak, and peak RSS.
 *
 * Shapes: "stories15m" (dim 288, 6 layers, 6 heads, ffn 768, vocab 32000, tied) and
 * "smollm2-135m" (576, 30 layers, 9/3 heads, ffn 1536, vocab 49152, tied). Modes: "lora" (rank 16,
 * alpha 32, q/k/v/o, over an F32 base), "lora_q8" (the same over a Q8_0 base), "full" (every
 * weight, from the base) and "pretrain" (every weight, from a fresh random init: the same work as
 * full). A step is one sm_train_forward_backward over B x T tokens plus an AdamW update of the
 * trainable slab (inline here: the loop's optimizer lives in optim.c). Each mode runs in its own
 * forked process so that its peak RSS (getrusage of the child) is its own; all modes of one run
 * see the same machine load, so compare ratios within a run.
 *
 * Usage: bench_train [-s stories15m|smollm2-135m|all] [-m lora,lora_q8,full,pretrain] [-B 4] [-T 256]
 *                    [-n steps] [-t threads] [--peak GFLOPS]
 * Also prints the GFLOP/s of the three matrix products at the shape's FFN size ("kernel" lines).
 * On a machine shared with other jobs run it with OMP_WAIT_POLICY=passive: spinning threads that
 * wait at a barrier for a descheduled partner then cost about half the time.
 */
#include "kernels.h"
#include "kernels_backward.h"
#include "train_model.h"

#include "../tests/ref/tiny_model.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) { /* CPU seconds of every thread of the process */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float nrand(void) { /* roughly normal: sum of 4 uniforms */
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        s += (float)((rng >> 40) * 0x1p-24) - 0.5f;
    }
    return s * 1.7320508f;
}

static int shape_config(const char *name, sm_model_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->arch, "llama");
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->tied_output = 1;
    c->n_ctx_train = 2048;
    if (strcmp(name, "stories15m") == 0) {
        c->n_vocab = 32000; c->n_embd = 288; c->n_layer = 6; c->n_head = 6; c->n_head_kv = 6; c->n_ff = 768;
    } else if (strcmp(name, "smollm2-135m") == 0) {
        c->n_vocab = 49152; c->n_embd = 576; c->n_layer = 30; c->n_head = 9; c->n_head_kv = 3; c->n_ff = 1536;
        c->rope_theta = 100000.0f;
    } else {
        return -1;
    }
    c->head_dim = c->n_embd / c->n_head;
    return 0;
}

/* Random weights of std 0.02 (norms 1) in tiny_model.h's order. */
static float *random_weights(const sm_model_config *c, uint64_t seed) {
    rng = seed * 0x2545f4914f6cdd1dull + 1;
    const size_t n = tiny_weights_count(c, 0);
    float *w = malloc(sizeof(float) * n);
    if (!w) return NULL;
    for (size_t i = 0; i < n; i++) w[i] = 0.02f * nrand();
    size_t off = (size_t)c->n_vocab * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f;
        off += c->n_embd;
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            if (p == SM_PROJ_GATE) {
                for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f;
                off += c->n_embd;
            }
            off += (size_t)tiny_proj_in(c, p) * tiny_proj_out(c, p);
        }
    }
    for (int i = 0; i < c->n_embd; i++) w[off + i] = 1.0f;
    return w;
}

/* AdamW over the slab, as a loop would run it. */
static void adamw(float *p, const float *g, float *m, float *v, size_t n, int step) {
    const float lr = 1e-4f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    const float c1 = 1.0f - powf(b1, step), c2 = 1.0f - powf(b2, step);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr * ((m[i] / c1) / (sqrtf(v[i] / c2) + eps) + wd * p[i]);
    }
}

/* Matrix FLOPs per token of the forward pass: 2 * (every projection + the output). */
static double matmul_params(const sm_model_config *c) {
    double p = (double)c->n_vocab * c->n_embd;
    for (int q = 0; q < SM_PROJ_COUNT; q++) p += (double)c->n_layer * tiny_proj_in(c, q) * tiny_proj_out(c, q);
    return p;
}

static void run_mode(const char *shape, const char *mode, const sm_model_config *c, int B, int T, int steps,
                     double peak) {
    const int lora_mode = strncmp(mode, "lora", 4) == 0;
    const int type = strcmp(mode, "lora_q8") == 0 ? SM_TYPE_Q8_0 : SM_TYPE_F32;
    float *w = random_weights(c, strcmp(mode, "pretrain") == 0 ? 2 : 1);
    if (!w) { fprintf(stderr, "out of memory\n"); exit(1); }
    tiny_model tm;
    tiny_model_build(&tm, c, w, type, 0);
    free(w);
    sm_error err = {0};
    sm_lora *lo = NULL;
    const int rank = 16;
    if (lora_mode) {
        lo = sm_lora_new(c, rank, 32.0f, 0, SM_LORA_TARGETS_ATTN, &err);
        if (!lo) { fprintf(stderr, "sm_lora_new: %s\n", err.msg); exit(1); }
        sm_lora_init(lo, 1);
    }
    sm_train_model *t = sm_train_model_new(&tm.model, lo, lora_mode ? SM_TRAIN_LORA : SM_TRAIN_FULL, B, T, 0.0f, 1, &err);
    if (!t) { fprintf(stderr, "sm_train_model_new: %s\n", err.msg); exit(1); }
    size_t n_params;
    float *params = sm_train_params(t, &n_params), *grads = sm_train_grads(t, NULL);
    float *m = calloc(n_params, sizeof(float)), *v = calloc(n_params, sizeof(float));
    int *tokens = malloc(sizeof(int) * B * T), *targets = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)((uint64_t)(i * 2654435761u) % (uint64_t)c->n_vocab);
        targets[i] = (int)((uint64_t)((i + 1) * 2654435761u) % (uint64_t)c->n_vocab);
    }
    double t_fb = 0.0, t_opt = 0.0, cpu = 0.0;
    float loss = 0.0f;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        const double c0 = cpu_now();
        const double t0 = now();
        sm_train_zero_grads(t);
        sm_train_forward_backward(t, tokens, targets, NULL, B, T, &loss, &err);
        const double t1 = now();
        adamw(params, grads, m, v, n_params, s + 1);
        const double t2 = now();
        if (s > 0) { t_fb += t1 - t0; t_opt += t2 - t1; cpu += cpu_now() - c0; }
    }
    cpu /= steps;
    t_fb /= steps;
    t_opt /= steps;
    const double step = t_fb + t_opt, tokens_per_step = (double)B * T;
    const double attn = 6.0 * c->n_layer * (double)c->n_head * c->head_dim * T; /* causal fwd+bwd per token */
    const double mp = matmul_params(c);
    double flops_per_token = lora_mode ? 4.0 * mp + attn : 6.0 * mp + attn;
    if (lora_mode) /* each adapted pair: forward 2r(in+out), backward 4r(in+out) */
        for (int q = SM_PROJ_Q; q <= SM_PROJ_O; q++)
            flops_per_token += 6.0 * c->n_layer * rank * (tiny_proj_in(c, q) + tiny_proj_out(c, q));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double gflops = flops_per_token * tokens_per_step / step / 1e9;
    /* On a shared machine the wall time counts other jobs' turns; CPU time per step over the
     * thread count is the step time this run would have on cores of its own (an estimate: it
     * assumes the threads kept busy, which OMP_WAIT_POLICY=passive makes true of waits). */
    const double step_cpu = cpu / omp_get_max_threads();
    const double gflops_cpu = flops_per_token * tokens_per_step / step_cpu / 1e9;
    printf("{\"bench\":\"train\",\"shape\":\"%s\",\"mode\":\"%s\",\"base_type\":\"%s\",\"threads\":%d,\"B\":%d,\"T\":%d,"
           "\"trainable_params\":%zu,\"tokens_per_s\":%.1f,\"step_s\":%.4f,\"fwd_bwd_s\":%.4f,\"optim_s\":%.4f,"
           "\"gflop_per_token\":%.4f,\"gflops\":%.1f,\"peak_fraction\":%.3f,\"cpu_step_s\":%.4f,"
           "\"tokens_per_s_own_cores\":%.1f,\"gflops_own_cores\":%.1f,\"peak_fraction_own_cores\":%.3f,"
           "\"peak_rss_mib\":%.0f,\"loss\":%.4f}\n",
           shape, mode, sm_type_name(type), omp_get_max_threads(), B, T, n_params, tokens_per_step / step, step, t_fb,
           t_opt, flops_per_token / 1e9, gflops, gflops / peak, step_cpu, tokens_per_step / step_cpu, gflops_cpu,
           gflops_cpu / peak, ru.ru_maxrss / 1024.0, loss);
    fflush(stdout);
    free(tokens); free(targets); free(m); free(v);
    sm_train_model_free(t);
    sm_lora_free(lo);
    tiny_model_free(&tm);
}

/* GFLOP/s of the three products at (n tokens, in, out). */
static void kernel_bench(const char *shape, int n, int in, int out, double peak) {
    float *x = malloc(sizeof(float) * n * in), *w = malloc(sizeof(float) * out * in), *y = malloc(sizeof(float) * n * out);
    float *dw = calloc((size_t)out * in, sizeof(float)), *dx = calloc((size_t)n * in, sizeof(float));
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = nrand();
    for (size_t i = 0; i < (size_t)out * in; i++) w[i] = 0.02f * nrand();
    for (size_t i = 0; i < (size_t)n * out; i++) y[i] = nrand();
    const double flops = 2.0 * n * in * out;
    struct { const char *name; int which; } k[] = {{"matmul_forward (kernels.c)", 0}, {"matmul_forward_f32", 1},
                                                   {"matmul_backward_dx", 2}, {"matmul_backward_dw", 3}};
    for (int i = 0; i < 4; i++) {
        double best = 1e30, best_cpu = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            const double t0 = now(), c0 = cpu_now();
            switch (k[i].which) {
            case 0: matmul_forward(y, x, w, SM_TYPE_F32, n, in, out); break;
            case 1: matmul_forward_f32(y, x, w, n, in, out); break;
            case 2: matmul_backward_dx(dx, y, w, SM_TYPE_F32, n, in, out); break;
            case 3: matmul_backward_dw(dw, NULL, y, x, n, in, out); break;
            }
            const double dt = now() - t0, dc = (cpu_now() - c0) / omp_get_max_threads();
            if (dt < best) best = dt;
            if (dc < best_cpu) best_cpu = dc;
        }
        printf("{\"bench\":\"train_kernel\",\"shape\":\"%s\",\"kernel\":\"%s\",\"n\":%d,\"in\":%d,\"out\":%d,\"threads\":%d,"
               "\"gflops\":%.1f,\"peak_fraction\":%.3f,\"gflops_own_cores\":%.1f,\"peak_fraction_own_cores\":%.3f}\n",
               shape, k[i].name, n, in, out, omp_get_max_threads(), flops / best / 1e9, flops / best / 1e9 / peak,
               flops / best_cpu / 1e9, flops / best_cpu / 1e9 / peak);
    }
    free(x); free(w); free(y); free(dw); free(dx);
}

int main(int argc, char **argv) {
    const char *shapes = "all", *modes = "lora,lora_q8,full,pretrain";
    int B = 4, T = 256, steps = 2, threads = 2;
    double peak = 230.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "%s needs a value\n", a); return 2; }
        if (!strcmp(a, "-s")) shapes = v;
        else if (!strcmp(a, "-m")) modes = v;
        else if (!strcmp(a, "-B")) B = atoi(v);
        else if (!strcmp(a, "-T")) T = atoi(v);
        else if (!strcmp(a, "-n")) steps = atoi(v);
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "--peak")) peak = atof(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (B < 1 || T < 1 || steps < 1 || threads < 1) { fprintf(stderr, "bad sizes\n"); return 2; }
    omp_set_num_threads(threads);
    const char *all[] = {"stories15m", "smollm2-135m"};
    for (int s = 0; s < 2; s++) {
        if (strcmp(shapes, "all") != 0 && strcmp(shapes, all[s]) != 0) continue;
        sm_model_config c;
        shape_config(all[s], &c);
        /* every measurement in a child: libgomp's threads do not survive a fork, so the parent
         * never starts them */
        pid_t kid = fork();
        if (kid == 0) {
            kernel_bench(all[s], B * T, c.n_embd, c.n_ff, peak);
            fflush(stdout);
            _exit(0);
        }
        waitpid(kid, NULL, 0);
        char list[256];
        snprintf(list, sizeof list, "%s", modes);
        for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                run_mode(all[s], m, &c, B, T, steps, peak);
                _exit(0);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "%s %s failed\n", all[s], m);
        }
    }
    return 0;
}
