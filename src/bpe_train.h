/* bpe_train.h: training a byte-level BPE vocabulary (GPT-2's kind) on a text corpus.
 *
 * As Hugging Face's BpeTrainer with a ByteLevel pre-tokenizer does:
 *   1. Text is split around the special and marker token texts (they are never learned from),
 *      then into pieces by the regex pre-tokenizer named `pre` (pretokenize.h), so that no merge
 *      ever crosses a piece boundary; equal pieces are counted once with their frequency (the
 *      word-count dictionary).
 *   2. Every word starts as its bytes (tokens 0..255 of the byte alphabet, which is always whole,
 *      so that any input can be tokenized). Repeatedly, the adjacent pair of tokens that occurs
 *      most often over all words (frequency-weighted) is merged into a new token; ties go to the
 *      pair of smaller (left id, right id). Pair counts are kept up to date incrementally: a
 *      merge touches only the words that hold the pair (an index pair -> words), and a max-heap
 *      with lazy re-checking picks the next pair. Training stops at the vocabulary size or when
 *      no pair occurs min_frequency times.
 * The result depends only on the multiset of texts added (not on their order or the thread
 * count), so the same corpus always gives the same file, byte for byte.
 *
 * Vocabulary layout (ids): the special tokens (CONTROL; the first is BOS, EOS and padding), then
 * the marker tokens (USER_DEFINED: always matched whole in the input, so that the plain-text
 * form of a marker becomes one token), then the 256 byte tokens in byte order, then one token per
 * merge in merge order. A merge whose text is already a token (two merge paths to the same text)
 * is kept in the merges list and adds no token.
 *
 * The file written is a vocabulary-only GGUF as llama.cpp's vocab files are:
 *   general.architecture "llama", general.name, tokenizer.ggml.model "gpt2", tokenizer.ggml.pre,
 *   tokenizer.ggml.tokens / token_type / merges, bos / eos / padding token ids (the first special
 *   token), add_bos_token and add_eos_token false, snipmeta.bpe.* (training parameters and the
 *   corpus size). It loads with sm_tokenizer_from_gguf.
 */
#ifndef SM_BPE_TRAIN_H
#define SM_BPE_TRAIN_H

#include "snipmeta.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sm_bpe_params {
    int vocab_size;                 /* tokens in all: specials + markers + 256 + merges */
    const char *pre;                /* tokenizer.ggml.pre name ("gpt2" is taken as "gpt-2"); NULL: "default" */
    const char *const *special;     /* CONTROL tokens; special[0] is BOS/EOS/padding; may be empty */
    int n_special;
    const char *const *markers;     /* USER_DEFINED tokens (texts matched whole), may be empty */
    int n_markers;
    int min_frequency;              /* a pair must occur this often to be merged (at least 1) */
} sm_bpe_params;

typedef struct sm_bpe_trainer sm_bpe_trainer;

/* Checks p (vocab_size at least specials + markers + 256, a known pre-tokenizer, distinct
 * non-empty special and marker texts) and starts an empty word-count dictionary. The strings of
 * p are copied. Returns a trainer the caller frees with sm_bpe_trainer_free, or NULL with *err
 * set (SM_EINVAL, SM_EUNSUPPORTED for an unknown pre-tokenizer, SM_ENOMEM). */
sm_bpe_trainer *sm_bpe_trainer_new(const sm_bpe_params *p, sm_error *err);
void sm_bpe_trainer_free(sm_bpe_trainer *t);

/* Adds len bytes of text (one document) to the word counts. Not after sm_bpe_train. Returns
 * SM_OK, SM_ENOMEM, SM_EINVAL (called after training) or SM_EFORMAT (the regex engine gave up). */
int sm_bpe_add_text(sm_bpe_trainer *t, const char *text, size_t len, sm_error *err);

/* Runs the merges (once). progress, when not NULL, is called now and then with the merges done
 * and the merges wanted. Returns SM_OK or SM_ENOMEM. */
int sm_bpe_train(sm_bpe_trainer *t, void (*progress)(void *ctx, int done, int total), void *ctx,
                 sm_error *err);

/* Writes the trained vocabulary (see above) to path atomically. Returns SM_OK, SM_EINVAL before
 * training, SM_EIO or SM_ENOMEM. */
int sm_bpe_write_gguf(const sm_bpe_trainer *t, const char *path, sm_error *err);

/* After training: the counts, and merge i's two token texts and count as raw bytes (for tests
 * and reports). sm_bpe_merge returns SM_EINVAL for i out of range. */
typedef struct sm_bpe_stats {
    uint64_t bytes;        /* text bytes added */
    uint64_t pieces;       /* pre-tokenizer pieces counted */
    uint64_t words;        /* distinct pieces */
    int n_merges;          /* merges learned */
    int n_vocab;           /* tokens in the vocabulary */
} sm_bpe_stats;
void sm_bpe_get_stats(const sm_bpe_trainer *t, sm_bpe_stats *s);
int sm_bpe_merge(const sm_bpe_trainer *t, int i, const char **left, size_t *left_len, const char **right,
                 size_t *right_len, uint64_t *count);

#endif
