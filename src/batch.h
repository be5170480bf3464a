/* batch.h: training data as token sequences, and the (B,T) batches the training loop feeds to
 * sm_train_forward_backward (train_model.h).
 *
 * An example is a token sequence x[0..L) whose first n_prompt tokens are context only: the
 * model is trained to predict x[j+1] from x[0..j] for j + 1 >= n_prompt. Sources:
 *   - task JSONL (dataset.h's output, one {"prompt": ..., "completion": ...} per line):
 *     x = [BOS when the vocabulary asks for it] prompt completion EOS, n_prompt covering BOS and
 *     the prompt, so the loss is on the completion and its EOS only. prompt + completion is
 *     tokenized as one text (so tokens merge as they would in a running text); the prompt's own
 *     tokens decide n_prompt. An example longer than max_len is cut: a prompt in the student
 *     format (tasks.h) has its code cut to fewer lines with the template's cut line, the marker
 *     line kept (as sm_student_prompt does at inference); any other prompt keeps its head.
 *   - text files (pretraining): each file is one document, [BOS] text EOS, split into chunks of
 *     at most max_len tokens that overlap by one token, so every token but the first is a target.
 *
 * Packing: a row of T positions holds consecutive examples of the epoch's order while they fit
 * (an example takes L - 1 positions: inputs x[0..L-2], targets x[1..L-1]); the rest of the row
 * is padding (target -1). seg numbers the examples of a row (padding gets its own number), so
 * attention and RoPE positions restart at each example. The order of an epoch is a Fisher-Yates
 * shuffle keyed by (seed, epoch) (splitmix64), so the batches depend only on the seed and the
 * cursor (epoch, position), which a checkpoint saves.
 */
#ifndef SM_BATCH_H
#define SM_BATCH_H

#include "snipmeta.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sm_examples {
    int n;              /* examples */
    size_t *off;        /* (n + 1): example i is tokens[off[i] .. off[i+1]) */
    int *n_prompt;      /* (n) */
    int *tokens;
    size_t n_tokens;
    size_t n_targets;   /* target positions over all examples */
    int n_cut;          /* examples cut to max_len */
    int n_merged;       /* examples whose prompt's last token merged with the completion */
    uint8_t hash[32];   /* SHA-256 of the source files' bytes, in order */
} sm_examples;

/* Reads a task JSONL file and tokenizes every record (see above); max_len >= 8 is the longest
 * sequence kept (T + 1 for batches of T positions). Returns SM_OK and *out (free it with
 * sm_examples_free), or SM_EIO, SM_EFORMAT ("PATH:LINE: expected ...": not an object, a missing
 * or non-string "prompt" / "completion", no examples at all), SM_ENOMEM. */
int sm_examples_from_jsonl(sm_examples **out, const char *path, const sm_tokenizer *tok, int max_len, sm_error *err);

/* Reads text documents (a path may be a directory: its regular files, in name order, one level)
 * and chunks them (see above). Chunk number i (counted over all files) goes to *val when
 * val_every > 0 and i % val_every == val_every - 1, else to *train; val may be NULL when
 * val_every is 0. Returns SM_OK, or SM_EIO, SM_EFORMAT (no tokens), SM_ENOMEM. */
int sm_examples_from_text(sm_examples **train, sm_examples **val, const char *const *paths, int n_paths,
                          const sm_tokenizer *tok, int max_len, int val_every, sm_error *err);

void sm_examples_free(sm_examples *ex); /* NULL-safe */

/* One batch: B rows of T positions. */
typedef struct {
    int B, T;
    int *tokens, *targets, *seg;    /* (B, T) each */
    int n_targets;                  /* targets that are not -1 */
    int n_tokens;                   /* positions that hold an example's token (not padding) */
    int n_examples;                 /* examples packed */
} sm_batch;

/* Where the next batch starts: the epoch and the index into that epoch's order. */
typedef struct {
    uint64_t epoch;
    uint64_t pos;
} sm_batch_cursor;

typedef struct sm_batcher sm_batcher;

/* A batcher over ex (which must outlive it) for batches of B rows of T positions. shuffle: each
 * epoch in its own seeded order, and batches run on across epochs forever; 0: file order, one
 * pass (validation). Every example must fit a row (L - 1 <= T). Returns NULL with *err set
 * (SM_EINVAL, SM_ENOMEM). Free with sm_batcher_free. */
sm_batcher *sm_batcher_new(const sm_examples *ex, int B, int T, int shuffle, uint64_t seed, sm_error *err);
void sm_batcher_free(sm_batcher *b);

/* Fills the batcher's batch with the next examples and advances the cursor. Returns 1, or 0 when
 * a non-shuffling batcher has no examples left. The batch stays valid until the next call. */
int sm_batcher_next(sm_batcher *b, const sm_batch **batch);
sm_batch_cursor sm_batcher_cursor(const sm_batcher *b);
/* Moves to a cursor (a checkpoint's); SM_EINVAL when pos is beyond the examples. */
int sm_batcher_seek(sm_batcher *b, sm_batch_cursor c, sm_error *err);
/* Back to the start (validation passes). */
void sm_batcher_rewind(sm_batcher *b);

/* The order of an epoch: perm[0..n) a permutation of 0..n-1, from (seed, epoch) only. */
void sm_shuffle_order(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t epoch);

#endif
