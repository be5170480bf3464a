/* sample.h: choosing the next token from a row of logits: greedy, temperature, top-k, top-p,
 * with a seeded generator so that the same seed gives the same tokens.
 *
 * The generator is splitmix64 (Steele, Lea, Flood 2014: a 64-bit counter advanced by the golden
 * ratio, then mixed): small, fast, no bad seeds, and the same stream on every platform. A draw
 * in [0, 1) takes the top 24 bits of one output.
 */
#ifndef SM_SAMPLE_H
#define SM_SAMPLE_H

#include "snipmeta.h"

#include <stdint.h>

typedef struct {
    float temp;     /* <= 0: greedy (argmax, the lowest id on ties) */
    int top_k;      /* keep the k most likely tokens; <= 0: all */
    float top_p;    /* keep the smallest most-likely set whose mass reaches top_p; >= 1: all */
    uint64_t seed;
} sm_sampler_params;

/* The defaults: temp 0.8, top_k 40, top_p 0.95, seed 0 (llama.cpp's defaults). */
sm_sampler_params sm_sampler_default_params(void);

typedef struct sm_sampler sm_sampler;

/* A sampler for rows of n_vocab logits. Returns a new sampler that the caller frees with
 * sm_sampler_free, or NULL when out of memory or n_vocab < 1. */
sm_sampler *sm_sampler_new(const sm_sampler_params *p, int n_vocab);
void sm_sampler_free(sm_sampler *s);

/* The next token id for logits (n_vocab floats, left unchanged); advances the generator unless
 * greedy. */
int sm_sample(sm_sampler *s, const float *logits);

/* The index of the largest of x[0..n), the lowest index on ties. */
int sm_argmax(const float *x, int n);

/* splitmix64: advances *state and returns the next 64 random bits. */
uint64_t sm_rng_next(uint64_t *state);
/* A float uniform in [0, 1). */
float sm_rng_f32(uint64_t *state);

#endif
