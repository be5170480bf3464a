/* checkpoint.h: the state of a training run on disk, so that `--resume` continues it bit for bit.
 *
 * Byte layout (little-endian; floats IEEE-754 binary32, as the host keeps them):
 *   u32 magic "SMCK" (0x4B434D53), u32 version (1)
 *   u64 config length, config bytes   the run's identity as canonical JSON (train.c makes it:
 *                                     mode, model fingerprint, data hash, hyperparameters, seed,
 *                                     threads); a resumed run must present the same bytes
 *   u64 step, u64 epoch, u64 pos      steps done; the data cursor (batch.h)
 *   u64 train_rng                     the train model's dropout counter (train_model.h)
 *   u64 adam_t                        AdamW's step count
 *   f64 best_val, i64 bad_evals       early stopping: best validation loss, evaluations since
 *   u64 tokens_seen, f64 elapsed_s    totals so far
 *   u64 best_step                     the step of best_val
 *   u64 n                             trainable parameters
 *   f32 params[n], f32 m[n], f32 v[n]
 *   u64 n_best (0 or n), f32 best[n_best]   the parameters at best_val, when the run keeps them
 *   u8 sha256[32]                     of every byte before it
 * Files are written atomically: a temporary beside the target, fsync, rename, fsync of the
 * directory; a reader sees the previous checkpoint or the whole new one.
 */
#ifndef SM_CHECKPOINT_H
#define SM_CHECKPOINT_H

#include "batch.h"
#include "optim.h"

#include <stdint.h>

#define SM_CKPT_MAGIC 0x4B434D53u
#define SM_CKPT_VERSION 1u

typedef struct {
    uint64_t step;
    sm_batch_cursor cursor;
    uint64_t train_rng;
    double best_val;
    int64_t bad_evals;
    uint64_t tokens_seen;
    double elapsed_s;
    uint64_t best_step;
} sm_ckpt_state;

/* Writes the checkpoint (params and opt's m, v: opt->n floats each; best, opt->n floats, or
 * NULL) to path atomically. Returns SM_OK or SM_EIO with *err naming the file. */
int sm_checkpoint_save(const char *path, const char *config, const sm_ckpt_state *st, const float *params,
                       const sm_adamw *opt, const float *best, sm_error *err);

/* Reads a checkpoint written for the same config into *st, params and opt (m, v, t) and, when
 * best is not NULL, the best parameters into best (SM_EFORMAT when the file has none), after
 * checking the magic, the version, the checksum, the sizes and the config; nothing is changed on
 * failure. Returns SM_OK; SM_EIO (cannot open: *err says so); SM_EFORMAT for a file that is not
 * a checkpoint, of another version, truncated or corrupt; SM_EINVAL when it belongs to another
 * run: *err names the first config key that differs and both values. */
int sm_checkpoint_load(const char *path, const char *config, sm_ckpt_state *st, float *params, sm_adamw *opt,
                       float *best, sm_error *err);

#endif
