/* unicode.h: the UTF-8 helpers and GPT-2's byte-level mapping that the tokenizers share.
 *
 * Byte-level BPE (GPT-2 and its descendants) never sees raw bytes: each byte 0..255 is first
 * mapped to a printable code point (the printable Latin-1 bytes to themselves, the other 68 bytes
 * to U+0100..U+0143 in byte order), and vocabulary texts are written in that alphabet.
 */
#ifndef SM_UNICODE_H
#define SM_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* The length of the UTF-8 sequence that starts with byte `lead`, from its high four bits
 * (1 for ASCII and for stray continuation bytes, 2, 3 or 4), as llama.cpp's unicode_len_utf8.
 * Callers clip it to the bytes left. */
int sm_utf8_len(unsigned char lead);

/* Decodes one well-formed UTF-8 sequence at s (n bytes available): returns its length (1..4) and
 * the code point in *cp, or 0 when the bytes there are not a well-formed sequence (overlong,
 * surrogate, above U+10FFFF, truncated). */
int sm_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Encodes cp (at most U+10FFFF) into out; returns the length, 1..4. */
int sm_utf8_encode(uint32_t cp, char out[4]);

/* GPT-2's byte-to-unicode map: the code point that stands for byte b. */
uint32_t sm_byte_to_unicode(uint8_t b);
/* Its inverse: the byte that code point cp stands for, or -1 when cp is not in the map. */
int sm_unicode_to_byte(uint32_t cp);

#endif
