/* sha256.h: SHA-256 (FIPS 180-4), incremental and one-shot, plus the snippet id.
 *
 * The snippet id is the first 16 hex digits of the SHA-256 of the whitespace-normalised code:
 * every run of ASCII whitespace (space, tab, newline, carriage return, form feed, vertical tab)
 * becomes one space and leading and trailing whitespace is dropped. This matches every id in
 * ../shared/data/labels.jsonl (checked on all 2,358 of its snippets).
 */
#ifndef SM_SHA256_H
#define SM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sm_sha256 {
    uint32_t state[8];
    uint64_t n_bytes;   /* message length so far */
    uint8_t block[64];  /* pending partial block */
    size_t n_block;     /* bytes in block */
} sm_sha256_ctx;

void sm_sha256_init(sm_sha256_ctx *h);
void sm_sha256_update(sm_sha256_ctx *h, const void *data, size_t len);
void sm_sha256_final(sm_sha256_ctx *h, uint8_t digest[32]);
/* digest = SHA-256(data[0..len)). */
void sm_sha256(uint8_t digest[32], const void *data, size_t len);
/* Writes the 64 lowercase hex digits of digest and a NUL to hex (65 bytes). */
void sm_sha256_hex(char hex[65], const uint8_t digest[32]);

/* Writes the snippet id of code[0..len) (16 lowercase hex digits and a NUL) to id (17 bytes).
 * Streams the normalisation: no allocation. */
void sm_snippet_id(char id[17], const char *code, size_t len);

#endif
