/* sample.c: next-token sampling (see sample.h). The chain is llama2.c's and llama.cpp's in
 * effect: logits / temp, softmax, keep the top_k most likely, keep the smallest prefix whose mass
 * reaches top_p of what is left, then one draw from the kept set in proportion to probability.
 * Candidates are ordered by probability, then by id, so that ties never depend on qsort. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float p;
    int id;
} candidate;

struct sm_sampler {
    sm_sampler_params params;
    int n_vocab;
    uint64_t rng;
    candidate *cand; /* (n_vocab) */
};

sm_sampler_params sm_sampler_default_params(void) {
    return (sm_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 0};
}

uint64_t sm_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float sm_rng_f32(uint64_t *state) {
    return (float)(sm_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

sm_sampler *sm_sampler_new(const sm_sampler_params *p, int n_vocab) {
    if (!p || n_vocab < 1) return NULL;
    sm_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->cand) { free(s); return NULL; }
    s->params = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    return s;
}

void sm_sampler_free(sm_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s);
}

int sm_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* 1 when a ranks before b: more likely, or as likely with a lower id. */
static int ranks_before(const candidate *a, const candidate *b) {
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

static int compare_rank(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    return ranks_before(x, y) ? -1 : ranks_before(y, x) ? 1 : 0;
}

/* Restores the heap below j: every parent ranks after its children, so the root is the worst. */
static void sift_down(candidate *h, int size, int j) {
    for (;;) {
        int l = 2 * j + 1, r = l + 1, worst = j;
        if (l < size && ranks_before(&h[worst], &h[l])) worst = l;
        if (r < size && ranks_before(&h[worst], &h[r])) worst = r;
        if (worst == j) return;
        candidate t = h[worst]; h[worst] = h[j]; h[j] = t;
        j = worst;
    }
}

/* Moves the k best of c[0..n) to c[0..k), best first. */
static void keep_top_k(candidate *c, int n, int k) {
    for (int j = k / 2 - 1; j >= 0; j--) sift_down(c, k, j);
    for (int i = k; i < n; i++)
        if (ranks_before(&c[i], &c[0])) { c[0] = c[i]; sift_down(c, k, 0); }
    qsort(c, (size_t)k, sizeof *c, compare_rank);
}

int sm_sample(sm_sampler *s, const float *logits) {
    const sm_sampler_params *p = &s->params;
    int n = s->n_vocab;
    if (!(p->temp > 0.0f)) return sm_argmax(logits, n);

    candidate *c = s->cand;
    float max = logits[sm_argmax(logits, n)], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        c[i].id = i;
        c[i].p = expf((logits[i] - max) / p->temp);
        sum += c[i].p;
    }
    int kept = n;
    if (p->top_k > 0 && p->top_k < n) {
        keep_top_k(c, n, p->top_k);
        kept = p->top_k;
    } else if (p->top_p < 1.0f) {
        /* A token below (1 - top_p) / (n - 1) of the mass can never be in the nucleus (llama2.c's
         * cut): drop those before sorting. */
        float cutoff = n > 1 ? (1.0f - p->top_p) / (float)(n - 1) * sum : 0.0f;
        kept = 0;
        for (int i = 0; i < n; i++)
            if (c[i].p >= cutoff) c[kept++] = c[i];
        qsort(c, (size_t)kept, sizeof *c, compare_rank);
    }
    if (kept < n) {
        sum = 0.0f;
        for (int i = 0; i < kept; i++) sum += c[i].p;
    }
    if (p->top_p < 1.0f) {
        float target = p->top_p * sum, cum = 0.0f;
        int i = 0;
        while (i < kept - 1 && cum + c[i].p < target) cum += c[i++].p;
        kept = i + 1;
        sum = cum + c[i].p;
    }
    float r = sm_rng_f32(&s->rng) * sum, cdf = 0.0f;
    for (int i = 0; i < kept; i++) {
        cdf += c[i].p;
        if (r < cdf) return c[i].id;
    }
    return c[kept - 1].id; /* rounding */
}
