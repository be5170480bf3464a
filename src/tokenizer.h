/* tokenizer.h: text <-> token ids from a GGUF file's tokenizer.ggml.* metadata, as llama.cpp does.
 *
 * Kinds (tokenizer.ggml.model):
 *   "gpt2"  byte-level BPE: bytes are mapped to GPT-2's printable alphabet (unicode.h), text is
 *           split by the regex pre-tokenizer named by tokenizer.ggml.pre (pretokenize.h: default,
 *           gpt-2, starcoder, deepseek-coder, deepseek-llm, llama3/llama-bpe, qwen2, falcon, ...),
 *           and inside each piece the pair of lowest rank in tokenizer.ggml.merges ("left right")
 *           merges first, leftmost on ties.
 *   "llama" SentencePiece-style BPE: spaces become U+2581, a space is prepended when
 *           tokenizer.ggml.add_space_prefix (default true) says so, adjacent symbols merge by the
 *           highest tokenizer.ggml.scores of the merged text, leftmost on ties, and characters that
 *           are not tokens fall back to the <0xNN> byte tokens. On a vocabulary converted from
 *           llama2.c's tokenizer.bin this gives exactly llama2.c's encode() for UTF-8 text.
 *
 * Token types (tokenizer.ggml.token_type, all NORMAL when absent) are llama.cpp's. Before the
 * kind's algorithm runs, the input is split around special tokens, longest text first:
 * USER_DEFINED tokens always, CONTROL and UNKNOWN tokens only when parse_special is set.
 *
 * Special ids and flags follow llama.cpp's loader: "llama" defaults to BOS 1, EOS 2, UNK 0,
 * add_bos on; "gpt2" defaults to BOS = EOS = 11 (llama.cpp's legacy default) with add_bos on only
 * for the llama3 and tekken pre-tokenizers; the file's tokenizer.ggml.*_token_id and
 * add_bos_token / add_eos_token keys override these. A special id outside the vocabulary is
 * ignored with a warning, as llama.cpp does. End of generation (EOG) is EOS, EOT, EOM, the FIM
 * pad/repo/separator ids, and the tokens named <|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>,
 * <|endoftext|>, <|eom_id|>, <EOT>, _<EOT>, <end_of_utterance> (made CONTROL, as llama.cpp does).
 *
 * Where this differs from llama.cpp, on purpose:
 *   - An unknown tokenizer.ggml.pre (llama.cpp refuses the file) falls back to the default
 *     pre-tokenizer; sm_tokenizer_warning says so, and front ends should print it.
 *   - Bytes that are not well-formed UTF-8 are kept, not replaced with U+FFFD, so detokenizing
 *     always gives the input back.
 *   - Merges must name two tokens whose concatenation is a token (as Hugging Face's tokenizers
 *     require); a file that breaks this is refused instead of tokenized oddly.
 * A tokenizer is read-only once built: many threads may tokenize with one handle.
 */
#ifndef SM_TOKENIZER_H
#define SM_TOKENIZER_H

#include "gguf.h"

#include <stddef.h>

typedef struct sm_tokenizer sm_tokenizer;

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum {
    SM_TOKEN_UNDEFINED = 0,
    SM_TOKEN_NORMAL = 1,
    SM_TOKEN_UNKNOWN = 2,
    SM_TOKEN_CONTROL = 3,
    SM_TOKEN_USER_DEFINED = 4,
    SM_TOKEN_UNUSED = 5,
    SM_TOKEN_BYTE = 6,
};

/* Builds a tokenizer from g's metadata; it copies what it needs, so g may be closed after.
 * Returns NULL with *err set when the metadata is missing or malformed (SM_EFORMAT: no tokens
 * array, scores or token types of the wrong type or length, a merge naming an unknown token, ...)
 * or of a kind this build does not handle (SM_EUNSUPPORTED). Free with sm_tokenizer_free. */
sm_tokenizer *sm_tokenizer_from_gguf(const sm_gguf *g, sm_error *err);
void sm_tokenizer_free(sm_tokenizer *t);

int sm_tokenizer_n_vocab(const sm_tokenizer *t);
int sm_tokenizer_bos(const sm_tokenizer *t);        /* -1 if none */
int sm_tokenizer_eos(const sm_tokenizer *t);        /* -1 if none */
int sm_tokenizer_add_bos(const sm_tokenizer *t);    /* whether the model wants BOS prepended */
int sm_tokenizer_add_eos(const sm_tokenizer *t);    /* whether the model wants EOS appended */
int sm_tokenizer_is_eog(const sm_tokenizer *t, int id); /* end of generation (eos, eot, ...) */
int sm_tokenizer_token_type(const sm_tokenizer *t, int id); /* SM_TOKEN_*; -1 if out of range */
/* "gpt2" or "llama". */
const char *sm_tokenizer_model(const sm_tokenizer *t);
/* The pre-tokenizer in use ("gpt-2", "default", ...); NULL for "llama". */
const char *sm_tokenizer_pre(const sm_tokenizer *t);
/* A note about how the metadata was read (an unknown pre-tokenizer, an ignored special id), for
 * front ends to print; NULL when there is none. */
const char *sm_tokenizer_warning(const sm_tokenizer *t);
/* The id of the token whose vocabulary text is exactly text[0..len), or -1. */
int sm_tokenizer_find(const sm_tokenizer *t, const char *text, size_t len);

/* Tokenizes len bytes of text. add_special: prepend BOS (and append EOS) when the vocabulary
 * asks for it; parse_special: match special/control token texts in the input. Writes a new array
 * to *ids (the caller frees it; never NULL on success) and its length to *n_ids. Returns SM_OK,
 * SM_EINVAL, SM_ENOMEM, or SM_EFORMAT when the regex engine gives up. */
int sm_tokenize(const sm_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                int **ids, int *n_ids, sm_error *err);

/* The bytes token id stands for when detokenized (byte-level BPE unmapped, SentencePiece's
 * U+2581 as a space, <0xNN> as that byte); control and unknown tokens give "" unless `special`,
 * user-defined tokens give their text. Writes at most cap bytes to buf and returns the full
 * length (call again with a bigger buf if larger), or SM_EINVAL for an id out of range. */
int sm_token_to_piece(const sm_tokenizer *t, int id, char *buf, int cap, int special);
/* The raw vocabulary text of id (its length in *len); NULL for an id out of range. */
const char *sm_token_text(const sm_tokenizer *t, int id, size_t *len);

/* The concatenated pieces of ids[0..n) (sm_token_to_piece with `special`), as a new
 * NUL-terminated buffer in *text (the caller frees it) and its length in *len. */
int sm_detokenize(const sm_tokenizer *t, const int *ids, int n, int special, char **text, size_t *len,
                  sm_error *err);

#endif
