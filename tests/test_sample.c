/* test_sample.c: the sampler: greedy ties, top-k = 1 is greedy, draws follow softmax(logits/T)
 * within a tolerance, top-k and top-p cut where they should, a seed fixes the stream. */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

static sm_sampler *make(float temp, int top_k, float top_p, uint64_t seed, int n) {
    sm_sampler_params p = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    sm_sampler *s = sm_sampler_new(&p, n);
    if (!s) { fprintf(stderr, "FAIL: sm_sampler_new\n"); exit(1); }
    return s;
}

/* Draws n_draws tokens and compares their frequencies with `expected` (n probabilities). */
static void check_distribution(const char *what, sm_sampler *s, const float *logits, const double *expected, int n, int n_draws) {
    int *count = calloc((size_t)n, sizeof *count);
    for (int i = 0; i < n_draws; i++) count[sm_sample(s, logits)]++;
    double max_diff = 0;
    for (int i = 0; i < n; i++) {
        double f = (double)count[i] / n_draws, d = fabs(f - expected[i]);
        if (d > max_diff) max_diff = d;
        if (expected[i] == 0) CHECK(count[i] == 0, "%s: token %d was drawn %d times but is cut", what, i, count[i]);
    }
    printf("%-34s max |freq - p| = %.4f over %d draws\n", what, max_diff, n_draws);
    CHECK(max_diff < 0.01, "%s: frequencies differ from the distribution by %.4f", what, max_diff);
    free(count);
}

static void softmax_ref(double *p, const float *logits, int n, double temp) {
    double max = logits[0], sum = 0;
    for (int i = 1; i < n; i++) if (logits[i] > max) max = logits[i];
    for (int i = 0; i < n; i++) sum += p[i] = exp((logits[i] - max) / temp);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

int main(void) {
    /* argmax: the lowest id on ties */
    float tie[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    CHECK(sm_argmax(tie, 5) == 1, "argmax of a tie should be the lowest id, got %d", sm_argmax(tie, 5));
    sm_sampler *g = make(0.0f, 40, 0.9f, 1, 5);
    CHECK(sm_sample(g, tie) == 1, "greedy should pick id 1");
    sm_sampler_free(g);

    /* top-k = 1 is greedy, whatever the temperature and seed */
    uint64_t rng = 7;
    enum { V = 1000 };
    float *logits = malloc(V * sizeof *logits);
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < V; i++) logits[i] = 4.0f * sm_rng_f32(&rng) - 2.0f;
        sm_sampler *k1 = make(1.5f, 1, 1.0f, (uint64_t)trial, V);
        int a = sm_argmax(logits, V), b = sm_sample(k1, logits);
        CHECK(a == b, "top-k 1 gave %d, argmax %d", b, a);
        sm_sampler_free(k1);
    }

    /* the full distribution, at two temperatures */
    float small[6] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 0.0f};
    double expected[6];
    for (int t = 0; t < 2; t++) {
        double temp = t ? 0.7 : 1.0;
        softmax_ref(expected, small, 6, temp);
        sm_sampler *s = make((float)temp, 0, 1.0f, 1234, 6);
        check_distribution(t ? "softmax, temp 0.7" : "softmax, temp 1", s, small, expected, 6, 200000);
        sm_sampler_free(s);
    }

    /* top-k 2: the two most likely, renormalized */
    softmax_ref(expected, small, 6, 1.0);
    double mass = expected[1] + expected[4];
    double topk[6] = {0, expected[1] / mass, 0, 0, expected[4] / mass, 0};
    sm_sampler *sk = make(1.0f, 2, 1.0f, 99, 6);
    check_distribution("top-k 2", sk, small, topk, 6, 200000);
    sm_sampler_free(sk);

    /* top-p: probabilities 0.5, 0.3, 0.15, 0.05; p = 0.75 keeps {0, 1}; p = 0.9 keeps {0, 1, 2} */
    float pl[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    double p75[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0}, p90[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
    sm_sampler *sp = make(1.0f, 0, 0.75f, 5, 4);
    check_distribution("top-p 0.75", sp, pl, p75, 4, 200000);
    sm_sampler_free(sp);
    sp = make(1.0f, 0, 0.9f, 6, 4);
    check_distribution("top-p 0.9", sp, pl, p90, 4, 200000);
    sm_sampler_free(sp);
    /* top-k then top-p */
    sp = make(1.0f, 3, 0.75f, 8, 4);
    double k3p75[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0};
    check_distribution("top-k 3, top-p 0.75", sp, pl, k3p75, 4, 100000);
    sm_sampler_free(sp);

    /* a seed fixes the stream; another seed gives another */
    for (int i = 0; i < V; i++) logits[i] = 0.01f * (float)(i % 17);
    sm_sampler *a = make(1.0f, 0, 1.0f, 42, V), *b = make(1.0f, 0, 1.0f, 42, V), *c = make(1.0f, 0, 1.0f, 43, V);
    int same = 1, differ = 0;
    for (int i = 0; i < 200; i++) {
        int x = sm_sample(a, logits), y = sm_sample(b, logits), z = sm_sample(c, logits);
        same &= x == y;
        differ |= x != z;
    }
    CHECK(same, "the same seed gave different tokens");
    CHECK(differ, "seeds 42 and 43 gave the same 200 tokens");
    sm_sampler_free(a), sm_sampler_free(b), sm_sampler_free(c);

    /* splitmix64's published first output for seed 0 */
    uint64_t s0 = 0;
    CHECK(sm_rng_next(&s0) == 0xe220a8397b1dcdafull, "splitmix64(0) first output is wrong");

    free(logits);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_sample: ok\n");
    return 0;
}
