/* test_optim: AdamW against hand-computed steps (decoupled decay, bias correction), the
 * warmup + cosine schedule, global-norm clipping, and independence from the thread count. */
#include "optim.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check_close(const char *what, double got, double want, double tol) {
    double d = fabs(got - want);
    int ok = d <= tol;
    printf("%-44s got %.9g want %.9g diff %.2e (tol %.0e) %s\n", what, got, want, d, tol, ok ? "ok" : "FAIL");
    failures += !ok;
}

/* Two AdamW steps (lr 0.1, wd 0.01, betas 0.9/0.999, eps 1e-8), worked out by hand in double:
 *   p = 1, g = 0.5 then -0.25:
 *     t=1: p = 1 * (1 - 0.001) = 0.999; m = 0.05, v = 0.00025; m^ = 0.5, v^ = 0.25
 *          p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899000002
 *     t=2: p = 0.899000002 * 0.999 = 0.898101002; m = 0.045 - 0.025 = 0.02,
 *          v = 0.00024975 + 0.0000625 = 0.00031225; m^ = 0.02 / 0.19, v^ = 0.00031225 / 0.001999
 *          p = 0.898101002 - 0.1 * 0.105263158 / 0.395225... = 0.871467299
 *   p = -2, g = 0 then 3: t=1 decay only: -1.998; t=2: m = 0.3, v = 0.009, m^ = 1.578947,
 *          v^ = 4.502251, p = -1.998 * 0.999 - 0.1 * 1.578947 / 2.121851 = -2.070415682
 *   a third element in a range without decay (wd 0): p = 1, g = 0.5 then -0.25 -> 0.900000002 then
 *          0.9 - 0.1 * 0.105263158 / 0.395225382 = 0.873366...  (checked against the same algebra) */
static void test_adamw(void) {
    sm_adamw_config cfg = {0.9f, 0.999f, 1e-8f};
    sm_error err = {0};
    sm_adamw *o = sm_adamw_new(3, &cfg, &err);
    if (!o) { printf("sm_adamw_new: %s\nFAIL\n", err.msg); failures++; return; }
    float p[3] = {1.0f, -2.0f, 1.0f};
    float g1[3] = {0.5f, 0.0f, 0.5f}, g2[3] = {-0.25f, 3.0f, -0.25f};
    sm_adamw_begin_step(o);
    sm_adamw_update(o, p, g1, 0, 2, 0.1f, 0.01f);
    sm_adamw_update(o, p, g1, 2, 1, 0.1f, 0.0f);
    check_close("adamw t=1 p[0] (decay, bias correction)", p[0], 0.899000002, 2e-7);
    check_close("adamw t=1 p[1] (zero gradient: decay only)", p[1], -1.998, 2e-7);
    check_close("adamw t=1 p[2] (no decay)", p[2], 0.900000002, 2e-7);
    check_close("adamw t=1 m[0]", o->m[0], 0.05, 5e-8);
    /* 1 - 0.999f is 0.00099998713: 1.3e-5 relative from 0.001 */
    check_close("adamw t=1 v[0]", o->v[0], 0.00025, 5e-9);
    sm_adamw_begin_step(o);
    sm_adamw_update(o, p, g2, 0, 2, 0.1f, 0.01f);
    sm_adamw_update(o, p, g2, 2, 1, 0.1f, 0.0f);
    check_close("adamw t=2 p[0]", p[0], 0.8714672987058463, 2e-7);
    check_close("adamw t=2 p[1]", p[1], -2.0704156820059967, 4e-7);
    /* p[2]: 0.900000002 - 0.1 * (0.02 / 0.19) / (sqrt(0.00031225 / 0.001999) + 1e-8) */
    check_close("adamw t=2 p[2]", p[2], 0.900000002 - 0.1 * (0.02 / 0.19) / (sqrt(0.00031225 / 0.001999) + 1e-8), 2e-7);
    check_close("adamw t=2 m[1]", o->m[1], 0.3, 1e-7);
    check_close("adamw t=2 v[1]", o->v[1], 0.009, 2e-7);
    if (o->t != 2) { printf("adamw t = %llu, want 2 FAIL\n", (unsigned long long)o->t); failures++; }
    sm_adamw_free(o);

    /* bad settings */
    sm_adamw_config bad = {1.0f, 0.999f, 1e-8f};
    if (sm_adamw_new(3, &bad, &err) || err.code != SM_EINVAL) { printf("beta1 = 1 accepted FAIL\n"); failures++; }
    if (sm_adamw_new(0, &cfg, &err)) { printf("n = 0 accepted FAIL\n"); failures++; }
    sm_adamw_free(NULL);
}

static void test_schedule(void) {
    sm_lr_schedule s = {.lr_max = 1e-3f, .min_frac = 0.1f, .warmup = 10, .total_steps = 110};
    /* warmup (step+1)/10 * 1e-3; then 1e-4 + 0.9e-3 * (1 + cos(pi * (step - 10) / 99)) / 2 */
    static const struct { long step; double lr; } want[] = {
        {0, 1e-4}, {4, 5e-4}, {9, 1e-3}, {10, 1e-3}, {59, 0.0005571396837256635},
        {108, 0.00010022655592756672}, {109, 1e-4}, {500, 1e-4},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char what[64];
        snprintf(what, sizeof what, "schedule step %ld", want[i].step);
        check_close(what, sm_lr_at(&s, want[i].step), want[i].lr, 1e-9);
    }
    sm_lr_schedule flat = {.lr_max = 2e-4f, .min_frac = 1.0f, .warmup = 0, .total_steps = 50};
    check_close("schedule min_frac 1: constant", sm_lr_at(&flat, 30), 2e-4, 1e-10);
    sm_lr_schedule one = {.lr_max = 2e-4f, .min_frac = 0.0f, .warmup = 0, .total_steps = 1};
    check_close("schedule one step: the floor", sm_lr_at(&one, 0), 0.0, 1e-12);
    sm_lr_schedule zero = {.lr_max = 1e-3f, .min_frac = 0.0f, .warmup = 0, .total_steps = 101};
    check_close("schedule cosine midpoint", sm_lr_at(&zero, 50), 5e-4, 1e-9);
}

static void test_clip(void) {
    float g[2] = {3.0f, 4.0f};
    double n = sm_grad_clip(g, 2, 1.0f);
    check_close("clip: norm before", n, 5.0, 1e-12);
    check_close("clip: g[0] scaled to norm 1", g[0], 0.6 * 5.0 / (5.0 + 1e-6), 1e-7);
    check_close("clip: g[1] scaled to norm 1", g[1], 0.8 * 5.0 / (5.0 + 1e-6), 1e-7);
    float h[2] = {0.3f, 0.4f};
    n = sm_grad_clip(h, 2, 1.0f);
    check_close("clip: under the limit, unchanged", h[0], 0.3f, 0);
    check_close("clip: norm 0.5", n, 0.5, 1e-7);
    float k[2] = {30.0f, 40.0f};
    sm_grad_clip(k, 2, 0.0f);
    check_close("clip 0: measure only", k[1], 40.0, 0);

    /* a long vector: the norm against a plain double sum, and the same bits at 1 and 4 threads */
    size_t N = 1000003;
    float *v = malloc(N * sizeof *v), *w1 = malloc(N * sizeof *w1), *w4 = malloc(N * sizeof *w4);
    double ref = 0;
    uint32_t s = 12345;
    for (size_t i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        v[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 1e-2f;
        ref += (double)v[i] * v[i];
    }
    memcpy(w1, v, N * sizeof *v);
    memcpy(w4, v, N * sizeof *v);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = sm_grad_clip(w1, N, 0.5f);
    omp_set_num_threads(4);
    double n4 = sm_grad_clip(w4, N, 0.5f);
    omp_set_num_threads(nt);
    check_close("norm of 1e6 elements vs double sum", n1, sqrt(ref), 1e-9 * sqrt(ref));
    int same = n1 == n4 && !memcmp(w1, w4, N * sizeof *w1);
    printf("%-44s %s\n", "clip: 1 thread == 4 threads, bit for bit", same ? "ok" : "FAIL");
    failures += !same;
    check_close("clipped vector has norm 0.5", sm_grad_norm(w1, N), 0.5, 1e-6);

    /* AdamW on the same vector at 1 and 4 threads */
    sm_adamw_config cfg = {0.9f, 0.999f, 1e-8f};
    sm_adamw *a1 = sm_adamw_new(N, &cfg, NULL), *a4 = sm_adamw_new(N, &cfg, NULL);
    memcpy(w1, v, N * sizeof *v);
    memcpy(w4, v, N * sizeof *v);
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(1);
        sm_adamw_begin_step(a1);
        sm_adamw_update(a1, w1, v, 0, N, 1e-3f, 0.1f);
        omp_set_num_threads(4);
        sm_adamw_begin_step(a4);
        sm_adamw_update(a4, w4, v, 0, N, 1e-3f, 0.1f);
    }
    omp_set_num_threads(nt);
    same = !memcmp(w1, w4, N * sizeof *w1) && !memcmp(a1->m, a4->m, 2 * N * sizeof(float));
    printf("%-44s %s\n", "adamw: 1 thread == 4 threads, bit for bit", same ? "ok" : "FAIL");
    failures += !same;
    sm_adamw_free(a1);
    sm_adamw_free(a4);
    free(v);
    free(w1);
    free(w4);
}

int main(void) {
    test_adamw();
    test_schedule();
    test_clip();
    if (failures) {
        printf("test_optim: %d FAILED\n", failures);
        return 1;
    }
    printf("test_optim: all ok\n");
    return 0;
}
