/* train_model.h: the trainable view of a Llama-family model (model.h): the training forward pass
 * over a batch of B sequences of T tokens, its hand-written backward pass, and the flat parameter
 * and gradient buffers that the optimizer, checkpoints and gradient all-reduce work on.
 *
 * Two modes:
 *   SM_TRAIN_LORA  the base stays frozen in whatever type it is stored (F32, F16, BF16, Q8_0,
 *                  Q4_0; the forward pass is the serving one, quantized activations included);
 *                  the trainable parameters are the adapter's slab `lora->params` (lora.h), used
 *                  in place. No gradient for a base weight is ever computed or stored.
 *   SM_TRAIN_FULL  every weight is trainable in f32: token_embd, the norms, every projection and
 *                  its bias where the base has one, output_norm and output (one tensor when tied).
 *                  The base's weights are converted to f32 into an owned slab at creation; used
 *                  for full fine-tuning and, from a randomly initialised base (model_init.h), for
 *                  pretraining.
 *
 * The batch: tokens and targets (B,T) row-major; a target of -1 is masked (prompt tokens,
 * padding): the loss is the mean cross-entropy over the unmasked targets only. seg (B,T), or
 * NULL for one sequence per row, packs several sequences into a row: a token attends only to
 * earlier tokens of its own segment (runs of equal seg values), and RoPE positions restart at 0
 * at the start of each segment.
 *
 * Determinism: for a fixed seed and OpenMP thread count every result is bit-identical run to run
 * (static schedules, each output element summed by one thread in a fixed order, no atomics).
 * LoRA dropout masks depend only on (seed, call counter, layer, projection, element), so a resumed
 * run that restores the counter (sm_train_rng / sm_train_set_rng) draws the same masks.
 */
#ifndef SM_TRAIN_MODEL_H
#define SM_TRAIN_MODEL_H

#include "lora.h"
#include "model.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SM_TRAIN_LORA = 0,
    SM_TRAIN_FULL = 1,
} sm_train_mode;

typedef struct sm_train_model sm_train_model;

/* Makes the trainable model over `base` (which must outlive it). mode SM_TRAIN_LORA needs `lora`
 * (made for this base: n_layer and every targeted pair's in/out match; it must outlive the train
 * model; its slab is trained in place); SM_TRAIN_FULL takes lora NULL. max_batch, max_seq bound
 * B and T of every later call (activations for max_batch * max_seq tokens are allocated once).
 * lora_dropout in [0, 1): dropout on the input of each adapter pair during
 * sm_train_forward_backward (PEFT's lora_dropout); never in sm_train_forward_loss.
 * Returns a new train model that the caller frees with sm_train_model_free, or NULL with *err set
 * (SM_EINVAL for a bad argument or an adapter that does not fit the base, SM_ENOMEM). */
sm_train_model *sm_train_model_new(const sm_model *base, sm_lora *lora, int mode, int max_batch, int max_seq,
                                   float lora_dropout, uint64_t seed, sm_error *err);
void sm_train_model_free(sm_train_model *tm);

int sm_train_model_mode(const sm_train_model *tm);
const sm_model *sm_train_model_base(const sm_train_model *tm);

/* The flat trainable parameters and their gradients, n floats each, in the same layout. LORA:
 * params is lora->params. FULL: an owned f32 slab laid out by the tensor table below. The
 * pointers stay valid for the life of tm; the caller (the optimizer) updates params in place. */
float *sm_train_params(sm_train_model *tm, size_t *n);
float *sm_train_grads(sm_train_model *tm, size_t *n);
/* Sets every gradient to 0 (they accumulate across calls). */
void sm_train_zero_grads(sm_train_model *tm);

/* One named tensor of the flat buffers, for the optimizer (weight decay on matrices only), logs
 * and checkpoints. Names are llama.cpp's ("blk.3.attn_q.weight"; LoRA: "blk.3.attn_q.weight.lora_a"
 * (rank, in) and ".lora_b" (out, rank)). */
typedef struct {
    char name[64];
    size_t offset;      /* in floats, into params and grads */
    size_t n;           /* elements */
    int n_dims;         /* 1: a norm weight or bias; 2: a matrix */
    int rows, cols;     /* a matrix of `rows` rows of `cols` floats (n_dims 1: rows 1) */
} sm_train_tensor;

int sm_train_n_tensors(const sm_train_model *tm);
const sm_train_tensor *sm_train_tensor_at(const sm_train_model *tm, int i);

/* Scales the gradients that sm_train_forward_backward accumulates: they are those of
 * scale * (mean loss of the call). 1 by default; a loop accumulating k micro-batches may set 1/k. */
void sm_train_set_grad_scale(sm_train_model *tm, float scale);

/* The dropout counter: advanced by one on each sm_train_forward_backward call. A checkpoint
 * saves it; a resumed run restores it so that the same masks are drawn. */
uint64_t sm_train_rng(const sm_train_model *tm);
void sm_train_set_rng(sm_train_model *tm, uint64_t counter);

/* Where the adapter is on, for activated adapters (lora.h: switched on only from the task's
 * invocation sequence onward): on (B,T), 1 where the adapter's delta is added to the token's
 * projections, 0 where the base alone runs (the shared prompt prefix). Copied; applies to the
 * following calls, whose B and T must then equal these. NULL: on everywhere (the default).
 * An adapter with lora->activated set needs a mask before sm_train_forward_backward.
 * Returns 0, or SM_EINVAL in FULL mode or for a shape beyond max_batch x max_seq. */
int sm_train_set_adapter_mask(sm_train_model *tm, const unsigned char *on, int B, int T, sm_error *err);

/* Forward and backward over the batch: writes the mean cross-entropy over unmasked targets to
 * *loss (0 when every target is masked) and ADDS (+=) its gradient (times the grad scale) to the
 * gradient buffer, so that gradient accumulation is repeated calls. Tokens must be in
 * [0, n_vocab), targets in [-1, n_vocab), 1 <= B <= max_batch, 1 <= T <= max_seq.
 * Returns 0, or SM_EINVAL with *err naming the bad value (nothing is changed then). */
int sm_train_forward_backward(sm_train_model *tm, const int *tokens, const int *targets, const int *seg,
                              int B, int T, float *loss, sm_error *err);
/* The same loss without dropout and without touching the gradients (validation). */
int sm_train_forward_loss(sm_train_model *tm, const int *tokens, const int *targets, const int *seg,
                          int B, int T, float *loss, sm_error *err);
/* Same as sm_train_forward_loss, also writing the logits (B*T, n_vocab) (tests, evaluation). */
int sm_train_forward_logits(sm_train_model *tm, const int *tokens, const int *seg, int B, int T, float *logits,
                            sm_error *err);

/* FULL mode: writes the current weights as a GGUF model to path (atomically), with every
 * metadata key of the base's file (general.file_type set to match), matrices stored as `type`
 * (F32, F16, BF16, Q8_0, Q4_0; rows a multiple of 32 for the quantized ones), norms and biases
 * as F32, the tied layout kept. Returns 0, SM_EINVAL in LORA mode or for an unusable type (the
 * adapter is saved by lora.c), or SM_EIO / SM_ENOMEM with *err set. */
int sm_train_model_save_gguf(const sm_train_model *tm, const char *path, int type, sm_error *err);

#endif
