/* tokenizer_impl.h: the inside of sm_tokenizer, shared by tokenizer.c (building it from metadata,
 * lookups, detokenizing) and tokenizer_encode.c (tokenizing). Not a contract outside those two. */
#ifndef SM_TOKENIZER_IMPL_H
#define SM_TOKENIZER_IMPL_H

#include "pretokenize.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

enum { TOK_BPE = 1, TOK_SPM = 2 };

#define TOK_MAX_EOG 32

typedef struct {
    uint32_t off, len; /* the token's text in sm_tokenizer.text */
} tok_text;

typedef struct {
    int32_t left, right; /* token ids of the pair; left = -1 marks an empty slot */
    int32_t rank;        /* the merge's index in tokenizer.ggml.merges (lower merges first) */
    int32_t id;          /* the token the pair merges into */
} merge_slot;

struct sm_tokenizer {
    int kind;
    int n_vocab;
    size_t max_token_len; /* bytes of the longest token text */
    /* One slab holds every array below (sized once in tokenizer.c). */
    tok_text *tok;      /* [n_vocab] */
    float *score;       /* [n_vocab] */
    uint8_t *type;      /* [n_vocab] SM_TOKEN_* */
    int32_t *tok_slot;  /* open-addressing table text -> id, -1 empty, tok_mask + 1 slots */
    size_t tok_mask;
    merge_slot *merge;  /* open-addressing table (left, right) -> merge, merge_mask + 1 slots */
    size_t merge_mask;
    int32_t *special;   /* ids matched whole before tokenizing, longest text first */
    int n_special;
    char *text;         /* every token's text, each NUL-terminated */
    int32_t byte_token[256]; /* BPE: the token of byte b's mapped character; SPM: <0xNN>; or -1 */
    int16_t unmap[0x144];    /* BPE: GPT-2 code point -> byte, -1 where unmapped */
    int bos, eos, eot, eom, unk;
    int eog[TOK_MAX_EOG];
    int n_eog;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    sm_pretok *pretok;  /* BPE only */
    char pre[64];
    char warning[256];
    void *slab;
};

/* The id of the token whose text is s[0..n), or -1. */
int tok_lookup(const sm_tokenizer *t, const char *s, size_t n);
/* The merge of the pair (left, right), or NULL. */
const merge_slot *tok_merge_lookup(const sm_tokenizer *t, int32_t left, int32_t right);

#endif
