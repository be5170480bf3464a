/* zero.h: ZeRO stage 1 (Rajbhandari et al., 2020): the AdamW state sharded over the ranks of a
 * data-parallel group (dist.h), for full fine-tuning and pretraining, where m and v are twice the
 * model. Rank r owns the slice [lo[r], lo[r+1]) of the flat parameters (sm_dist_slices) and keeps
 * m and v for it only. One step:
 *   1. reduce-scatter the gradients: each rank gets the sum over ranks of its slice;
 *   2. the global gradient norm from every slice's sum of squares (one scalar allreduce), and
 *      clipping of the own slice (as sm_grad_clip: max_norm / (norm + 1e-6));
 *   3. AdamW on the own slice, with the tensors' weight decay (the segments cut to the slice);
 *   4. allgather the updated parameters, so that every rank holds the whole model again.
 * That is the same traffic as one allreduce (a reduce-scatter and an allgather), and per rank
 * 1/N of the optimizer state. The update is elementwise, so the weights equal those of the
 * unsharded step up to the float order of the gradient sums and of the norm.
 */
#ifndef SM_ZERO_H
#define SM_ZERO_H

#include "dist.h"
#include "optim.h"

typedef struct sm_zero sm_zero;

/* The sharded state of n parameters over the group d (which must outlive it), with segs (offsets
 * into the whole flat buffer) giving each tensor's weight decay. Returns it (free with
 * sm_zero_free) or NULL with *err set (SM_ENOMEM, SM_EINVAL). */
sm_zero *sm_zero_new(sm_dist *d, size_t n, const sm_adamw_config *cfg, const sm_adamw_segment *segs, int n_segs,
                     sm_error *err);
void sm_zero_free(sm_zero *z); /* NULL-safe */

/* One optimizer step (see above) with learning rate lr on the gradients of this rank (summed
 * over the ranks here); clip <= 0 only measures. Writes the global norm before clipping to *norm.
 * Collective. grads is clobbered outside the own slice. */
int sm_zero_step(sm_zero *z, float *params, float *grads, float lr, float clip, double *norm, sm_error *err);

/* The whole state for a checkpoint: rank root gets a new full AdamW state (m, v of every
 * parameter, t) in *full, which it frees with sm_adamw_free; the others get NULL. Collective. */
int sm_zero_gather(sm_zero *z, int root, sm_adamw **full, sm_error *err);
/* Takes this rank's slice of a full state (as read from a checkpoint by every rank). */
void sm_zero_load(sm_zero *z, const sm_adamw *full);

/* Bytes of optimizer state this rank holds (m and v of its slice). */
size_t sm_zero_state_bytes(const sm_zero *z);

#endif
