/* train.h: the training loop. It owns the sequence of one run: batches (batch.h) into the
 * forward and backward pass (train_model.h), gradient accumulation, global-norm clipping, AdamW
 * with the warmup + cosine schedule (optim.h), validation and early stopping, checkpoints and
 * resuming (checkpoint.h), and the run log. It works the same for LoRA, full fine-tuning and
 * pretraining: the train model decides what is trainable.
 *
 * One optimizer step: zero the gradients; `accum` micro-batches of (batch, seq), each adding the
 * gradient of (its mean loss over target tokens) / accum; clip the global norm; decay and update
 * every tensor (weight decay on matrices only: n_dims 2 in sm_train_tensor, so never on norms and
 * biases; every LoRA A and B is a matrix). Given the seed and the OpenMP thread count, the run is
 * bit-for-bit the same whether it goes straight through or is killed and resumed from any
 * checkpoint: everything that decides the weights (parameters, AdamW m, v and t, step, data
 * cursor, dropout counter, early-stopping state) is in the checkpoint, and nothing that depends
 * on time feeds back into it.
 *
 * The run log is JSON Lines, flushed line by line, one object per event, each with "event":
 *   config     the run's identity (what a checkpoint must match) and the sizes of the data
 *   resume     the step a run resumed from
 *   step       step, loss (mean over the micro-batches), lr, grad_norm, tokens, tokens_per_s,
 *              step_ms, update_ms (clipping and AdamW), epoch
 *   eval       step, val_loss (token-weighted mean over the validation set), val_tokens, eval_ms
 *   checkpoint step, ms
 *   early_stop step, best_val, patience
 *   restore_best  step, val_loss: the weights the run ends with (see patience)
 *   summary    steps, final_loss, first_val, best_val, last_val, tokens, tokens_per_s, elapsed_s,
 *              stopped ("steps", "early", "interrupted")
 */
#ifndef SM_TRAIN_H
#define SM_TRAIN_H

#include "batch.h"
#include "dist.h"
#include "optim.h"
#include "train_model.h"

#include <signal.h>
#include <stdio.h>

/* What the loop reports to a front end after every step and evaluation (the CLI draws its
 * progress bar from it; the library prints nothing). */
typedef struct {
    int is_eval;            /* 1: after an evaluation (val_loss set) */
    long step, total_steps; /* steps done */
    double epoch;           /* epochs of training data consumed */
    float loss, lr;         /* the last step's */
    double grad_norm;
    double tokens_per_s;    /* over this process's steps so far */
    double elapsed_s, eta_s;
    double val_loss, best_val; /* NAN until the first evaluation */
} sm_train_progress;

typedef struct {
    int batch, seq, accum;      /* micro-batch rows, positions per row, micro-batches per step */
    long steps;                 /* optimizer steps; 0: from epochs */
    double epochs;              /* when steps is 0: passes over the training examples */
    float lr, min_lr_frac;      /* peak learning rate; the cosine's floor as a fraction of it */
    long warmup;                /* steps */
    float weight_decay, clip;   /* clip <= 0: no clipping */
    sm_adamw_config adam;
    int eval_every;             /* steps between validation passes (0: none; also at the start and the end) */
    int patience;               /* stop after this many evaluations without a new best (0: never);
                                   with patience the run keeps a copy of the best weights (in
                                   memory and in checkpoints) and ends with them */
    int ckpt_every;             /* steps between checkpoints (0: none) */
    const char *ckpt_path;      /* NULL: no checkpoints */
    int resume;                 /* continue from ckpt_path when it exists */
    uint64_t seed;              /* data order (the model's own seed is the train model's) */
    const char *identity;       /* a JSON object of more identity (model fingerprint, data hash,
                                   adapter settings) merged into the checkpoint's config; or NULL */
    FILE *log;                  /* the JSONL run log, or NULL */
    void (*progress)(void *user, const sm_train_progress *p);
    void *user;
    volatile sig_atomic_t *stop; /* when it becomes non-zero: checkpoint and return (may be NULL) */
    sm_dist *dist;              /* data parallel (dist.h): the process group, NULL for one process.
                                   Each rank computes its rows of every micro-batch (sm_dist_rows,
                                   so size <= batch), its gradient weighted by its share of the
                                   micro-batch's targets; the gradients are summed over the ranks
                                   and every rank takes the same step, so the global batch and the
                                   schedule do not depend on the number of ranks. Rank 0 alone
                                   logs, reports and writes checkpoints; a resume needs the same
                                   number of ranks ("ranks" joins the identity). */
    int zero;                   /* several ranks training the full model: 0 (default) shards the
                                   AdamW state over them (ZeRO-1, zero.h); -1 keeps it whole */
    int activated;              /* an activated adapter (lora.h): on each packed example it is on
                                   from the task's marker token (the last prompt token, the first
                                   position with a target) to the example's end, off over the
                                   prompt before it, as the metadata service runs it */
} sm_train_config;

/* Fills *cfg with the defaults: batch 8, seq 256, accum 1, 1 epoch, lr 2e-4, min_lr_frac 0.1,
 * warmup 0, weight decay 0.01, clip 1.0, AdamW (0.9, 0.999, 1e-8), no evaluation, no
 * checkpoints, seed 1. */
void sm_train_config_default(sm_train_config *cfg);

typedef struct {
    long steps;             /* steps done in all */
    long resumed_from;      /* -1: started afresh */
    long restored_best;     /* the step whose weights the run ended with, -1: the last step's */
    double final_loss;      /* the last step's */
    double first_val, best_val, last_val; /* NAN without evaluations */
    uint64_t tokens;
    double elapsed_s;
    int stopped_early, interrupted;
} sm_train_result;

/* Runs training of tm on `train` (val may be NULL: no evaluation, no early stopping). Every
 * example must fit cfg->seq + 1 tokens. Returns SM_OK with *res filled (interrupted set when
 * cfg->stop ended it: the weights are then those of the last step, and a checkpoint was written
 * when ckpt_path is set), or an SM_E* code with *err set: SM_EINVAL for bad settings or a
 * checkpoint of another run, SM_EFORMAT for a corrupt checkpoint, SM_EIO, SM_ENOMEM. */
int sm_train_run(sm_train_model *tm, const sm_examples *train, const sm_examples *val, const sm_train_config *cfg,
                 sm_train_result *res, sm_error *err);

/* The number of optimizer steps that `epochs` passes over ex make with this batch shape (the
 * micro-batches of a packed pass in epoch 0's order, rounded up to whole steps). */
long sm_train_steps_for_epochs(const sm_examples *ex, int batch, int seq, int accum, double epochs, uint64_t seed);

#endif
