/* optim.h: the optimizer side of training: AdamW with decoupled weight decay, the learning-rate
 * schedule (linear warmup, then cosine decay to a floor), and global-norm gradient clipping.
 *
 * AdamW as in Loshchilov & Hutter and PyTorch's torch.optim.AdamW: at step t (1-based),
 *     p <- p - lr * wd * p                       (decoupled decay, only where asked)
 *     m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
 *     p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Every element is updated on its own, so the result does not depend on the thread count.
 * The state (m, v, t) is what a checkpoint saves to resume bit for bit.
 */
#ifndef SM_OPTIM_H
#define SM_OPTIM_H

#include "snipmeta.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float beta1, beta2, eps;    /* PyTorch's defaults: 0.9, 0.999, 1e-8 */
} sm_adamw_config;

typedef struct sm_adamw {
    sm_adamw_config cfg;
    size_t n;           /* parameters */
    uint64_t t;         /* steps taken (the bias correction's t) */
    float *m, *v;       /* (n) each, one allocation */
} sm_adamw;

/* A zeroed AdamW state for n parameters. Returns it (free with sm_adamw_free) or NULL with *err
 * set (SM_ENOMEM, SM_EINVAL for n == 0 or a beta outside [0, 1)). */
sm_adamw *sm_adamw_new(size_t n, const sm_adamw_config *cfg, sm_error *err);
void sm_adamw_free(sm_adamw *o); /* NULL-safe */

/* Starts step t+1: every sm_adamw_update until the next call uses its bias correction. */
void sm_adamw_begin_step(sm_adamw *o);
/* Updates params[off..off+n) from grads[off..off+n) (and m, v at the same offsets) with learning
 * rate lr and decoupled weight decay wd (0: none, as for norms and biases). */
void sm_adamw_update(sm_adamw *o, float *params, const float *grads, size_t off, size_t n, float lr, float wd);

/* A range of the flat buffers and its weight decay. */
typedef struct {
    size_t off, n;
    float wd;
} sm_adamw_segment;

/* sm_adamw_update over every segment, in one parallel region (a model has hundreds of tensors). */
void sm_adamw_update_segments(sm_adamw *o, float *params, const float *grads, const sm_adamw_segment *segs, int n_segs,
                              float lr);

/* The learning-rate schedule: lr_max * (step + 1) / warmup for step < warmup, then a cosine
 * from lr_max down to lr_max * min_frac at step total_steps - 1 (and after). step is 0-based. */
typedef struct {
    float lr_max;
    float min_frac;     /* floor as a fraction of lr_max, in [0, 1] */
    long warmup;        /* steps of linear warmup (0: none) */
    long total_steps;
} sm_lr_schedule;

float sm_lr_at(const sm_lr_schedule *s, long step);

/* The L2 norm of g[0..n), summed in double over a fixed partition of the elements (so the result
 * depends on n only, never on the thread count). */
double sm_grad_norm(const float *g, size_t n);
/* Global-norm clipping: when the norm of g exceeds max_norm (> 0), scales g by max_norm / norm.
 * Returns the norm before clipping. max_norm <= 0 only measures. */
double sm_grad_clip(float *g, size_t n, float max_norm);

#endif
