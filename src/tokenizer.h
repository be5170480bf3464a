/* tokenizer.h: text <-> token ids from a GGUF file's tokenizer.ggml.* metadata, as llama.cpp does.
 *
 * Kinds (tokenizer.ggml.model): "gpt2" byte-level BPE with the pre-tokenizer named by
 * tokenizer.ggml.pre (default/gpt-2, starcoder, deepseek-coder, llama-bpe/llama3, qwen2, ...),
 * and "llama" SentencePiece-style BPE over scores with byte fallback. Special and control tokens
 * (tokenizer.ggml.token_type) are matched whole when parse_special is set.
 */
#ifndef SM_TOKENIZER_H
#define SM_TOKENIZER_H

#include "gguf.h"

#include <stddef.h>

typedef struct sm_tokenizer sm_tokenizer;

/* Builds a tokenizer from g's metadata; it copies what it needs, so g may be closed after.
 * Returns NULL with *err set when the metadata is missing, malformed or of an unknown kind. */
sm_tokenizer *sm_tokenizer_from_gguf(const sm_gguf *g, sm_error *err);
void sm_tokenizer_free(sm_tokenizer *t);

int sm_tokenizer_n_vocab(const sm_tokenizer *t);
int sm_tokenizer_bos(const sm_tokenizer *t);        /* -1 if none */
int sm_tokenizer_eos(const sm_tokenizer *t);        /* -1 if none */
int sm_tokenizer_add_bos(const sm_tokenizer *t);    /* whether the model wants BOS prepended */
int sm_tokenizer_is_eog(const sm_tokenizer *t, int id); /* end of generation (eos, eot, ...) */

/* Tokenizes len bytes of text. add_special: prepend BOS (and append EOS) when the vocabulary
 * asks for it; parse_special: match special/control token texts in the input. Writes a new array
 * to *ids (the caller frees it) and its length to *n_ids. */
int sm_tokenize(const sm_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                int **ids, int *n_ids, sm_error *err);

/* The bytes token id stands for when detokenized (byte-level BPE unmapped, SentencePiece's
 * U+2581 as a space, <0xNN> as that byte); control tokens give "" unless `special`. Writes at
 * most cap bytes to buf and returns the full length (call again with a bigger buf if larger). */
int sm_token_to_piece(const sm_tokenizer *t, int id, char *buf, int cap, int special);
/* The raw vocabulary text of id (its length in *len). */
const char *sm_token_text(const sm_tokenizer *t, int id, size_t *len);

#endif
