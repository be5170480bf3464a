/* pretokenize.h: the regex pre-tokenizers of byte-level BPE, by tokenizer.ggml.pre name.
 *
 * A pre-tokenizer splits text into pieces ("words") before BPE merges run inside each piece. As in
 * llama.cpp, a pre-tokenizer is a list of regexes applied in turn: each regex splits every piece
 * the previous ones made into its matches and the text between them (which also become pieces),
 * and a regex sees only the piece it splits (a lookahead stops at the piece's end). The regex
 * lists are llama.cpp's (llama-vocab.cpp) and run under PCRE2 with UTF and Unicode properties.
 *
 * Bytes that are not well-formed UTF-8 match nothing and so fall into the pieces between matches;
 * they are kept as they are (llama.cpp replaces them with U+FFFD first), so that every byte of the
 * input reaches the tokenizer and detokenizing gives the input back.
 */
#ifndef SM_PRETOKENIZE_H
#define SM_PRETOKENIZE_H

#include "snipmeta.h"

#include <stddef.h>

typedef struct sm_pretok sm_pretok;

/* Whether name (a tokenizer.ggml.pre value) is one this build knows. */
int sm_pretok_known(const char *name);

/* Compiles the pre-tokenizer called name ("default" when name is NULL or ""). Returns a handle
 * the caller frees with sm_pretok_free, or NULL with *err set: SM_EUNSUPPORTED for an unknown
 * name, SM_ENOMEM, or SM_EFORMAT if a regex does not compile (a bug). */
sm_pretok *sm_pretok_new(const char *name, sm_error *err);
void sm_pretok_free(sm_pretok *p);

/* The canonical name of the regex list in use ("gpt-2", "llama3", ...). */
const char *sm_pretok_name(const sm_pretok *p);
/* llama.cpp's per-type defaults: look a whole piece up in the vocabulary before merging
 * (llama3, tekken), and prepend BOS unless the file says otherwise. */
int sm_pretok_ignore_merges(const sm_pretok *p);
int sm_pretok_add_bos(const sm_pretok *p);

/* Splits text[0..len) into pieces that tile it in order: piece i is [ends[i-1], ends[i]) with
 * ends[-1] = 0. Writes a new array to *ends (the caller frees it) and the count to *n_pieces
 * (0 for empty text). Safe to call from many threads on one handle. Returns SM_OK, SM_ENOMEM, or
 * SM_EFORMAT if the regex engine fails (a resource limit on pathological input). */
int sm_pretok_split(const sm_pretok *p, const char *text, size_t len, size_t **ends, size_t *n_pieces,
                    sm_error *err);

#endif
