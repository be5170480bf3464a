/* test_pretokenize.c: the PCRE2 pre-tokenizers against plain re-statements of llama.cpp's
 * hand-written splitters for the gpt-2 and llama3 regexes (unicode_regex_split_custom_gpt2 and
 * _llama3 in llama.cpp's unicode.cpp), on random strings over an alphabet of letters, digits,
 * apostrophes, ASCII and Unicode whitespace, CR/LF, marks, CJK, emoji and punctuation. The
 * character classes come from PCRE2 in both, so this checks the regexes' structure, not Unicode
 * tables. Unassigned code points are left out: llama.cpp's splitters give each one a piece of its
 * own, where the regex lets it join punctuation. No fixtures needed. */
#include "pretokenize.h"
#include "unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int letter, number, space;
} flags;

static pcre2_code *re_letter, *re_number, *re_space;
static pcre2_match_data *md;

static int is(const pcre2_code *re, uint32_t cp) {
    char b[4];
    int n = sm_utf8_encode(cp, b);
    return pcre2_match(re, (PCRE2_SPTR)b, (size_t)n, 0, PCRE2_ANCHORED, md, NULL) >= 0;
}

/* A piece of text as code points, with what lies past its end reading as nothing. */
typedef struct {
    const uint32_t *cp;
    int n;
    int *ends, n_ends, prev;
} text;

static flags at(const text *t, int i) {
    if (i >= t->n) return (flags){0, 0, 0};
    return (flags){is(re_letter, t->cp[i]), is(re_number, t->cp[i]), is(re_space, t->cp[i])};
}
static uint32_t cp_at(const text *t, int i) { return i < t->n ? t->cp[i] : UINT32_MAX; }
static void piece(text *t, int end) {
    if (end > t->prev) t->ends[t->n_ends++] = end;
    t->prev = end;
}
static uint32_t lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's|'t|'re|'ve|'m|'ll|'d (case-folded when fold): the length of the contraction at i, or 0. */
static int contraction(const text *t, int i, int fold) {
    if (cp_at(t, i) != '\'' || i + 1 >= t->n) return 0;
    uint32_t a = fold ? lower(cp_at(t, i + 1)) : cp_at(t, i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= t->n) return 0;
    uint32_t b = fold ? lower(cp_at(t, i + 2)) : cp_at(t, i + 2);
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
}

static int other(flags f) { return !f.letter && !f.number && !f.space; }

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(text *t) {
    for (int pos = 0; pos < t->n;) {
        int c = contraction(t, pos, 0);
        if (c) { pos += c; piece(t, pos); continue; }
        int sp = cp_at(t, pos) == ' ';
        flags f = at(t, pos + sp);
        if (f.letter || f.number || other(f)) {
            pos += sp;
            while (pos < t->n && (f.letter ? at(t, pos).letter : f.number ? at(t, pos).number : other(at(t, pos)))) pos++;
            piece(t, pos);
            continue;
        }
        int ws = 0;
        while (at(t, pos + ws).space) ws++;
        if (ws > 1 && pos + ws < t->n) pos += ws - 1; /* leave the last space to the next word */
        else if (ws > 0) pos += ws;
        else pos++;
        piece(t, pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
 * |\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(text *t) {
    for (int pos = 0; pos < t->n;) {
        int c = contraction(t, pos, 1);
        if (c) { pos += c; piece(t, pos); continue; }
        uint32_t cp = cp_at(t, pos);
        flags f = at(t, pos);
        if (cp != '\r' && cp != '\n' && !f.number && (f.letter || at(t, pos + 1).letter)) {
            pos++;
            while (at(t, pos).letter) pos++;
            piece(t, pos);
            continue;
        }
        if (f.number) {
            int start = pos;
            while (at(t, pos).number && pos - start < 3) pos++;
            piece(t, pos);
            continue;
        }
        int sp = cp == ' ';
        if (other(at(t, pos + sp)) && pos + sp < t->n) {
            pos += sp;
            while (pos < t->n && other(at(t, pos))) pos++;
            while (cp_at(t, pos) == '\r' || cp_at(t, pos) == '\n') pos++;
            piece(t, pos);
            continue;
        }
        int ws = 0, last_newline = 0;
        for (; at(t, pos + ws).space; ws++)
            if (cp_at(t, pos + ws) == '\r' || cp_at(t, pos + ws) == '\n') last_newline = pos + ws + 1;
        if (last_newline) pos = last_newline;
        else if (ws > 1 && pos + ws < t->n) pos += ws - 1;
        else if (ws > 0) pos += ws;
        else pos++;
        piece(t, pos);
    }
}

static pcre2_code *compile(const char *re) {
    int code;
    PCRE2_SIZE off;
    return pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
}

int main(void) {
    re_letter = compile("\\p{L}");
    re_number = compile("\\p{N}");
    re_space = compile("\\s");
    md = pcre2_match_data_create(1, NULL);
    static const uint32_t alphabet[] = {'a', 'e', 's', 'l', 'Z', 'S', 'T', 'D', '1', '2', '\'', '!', '.', ' ', ' ', ' ',
                                        '\n', '\r', '\t', 0x0B, 0x0C, 0x1C, 0xA0, 0x85, 0x2028, 0x3000, 0x200B, 0x300,
                                        0x4E2D, 0x1F600, 0x660, 0x2581, 0xE9};
    static const struct {
        const char *pre;
        void (*split)(text *);
    } cases[] = {{"gpt-2", split_gpt2}, {"llama3", split_llama3}};
    uint64_t rng = 0x853c49e6748fea9bull;
    int failures = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sm_error err = {0};
        sm_pretok *p = sm_pretok_new(cases[k].pre, &err);
        if (!p) { printf("FAIL: %s: %s\n", cases[k].pre, err.msg); return 1; }
        int differ = 0;
        for (int it = 0; it < 20000; it++) {
            uint32_t cps[32];
            int ends[32];
            char s[32 * 4];
            size_t byte_at[33], len = 0;
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int n = 1 + (int)(rng % 24);
            for (int i = 0; i < n; i++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                cps[i] = alphabet[rng % (sizeof alphabet / sizeof alphabet[0])];
                byte_at[i] = len;
                len += (size_t)sm_utf8_encode(cps[i], s + len);
            }
            byte_at[n] = len;
            text t = {cps, n, ends, 0, 0};
            cases[k].split(&t);
            size_t *got, n_got;
            if (sm_pretok_split(p, s, len, &got, &n_got, &err)) { printf("FAIL: %s\n", err.msg); return 1; }
            int same = n_got == (size_t)t.n_ends;
            for (int i = 0; same && i < t.n_ends; i++) same = got[i] == byte_at[ends[i]];
            if (!same && differ++ < 5) {
                printf("FAIL %s: code points", cases[k].pre);
                for (int i = 0; i < n; i++) printf(" %04X", cps[i]);
                printf(" split differently\n");
            }
            free(got);
        }
        printf("%s: %d of 20000 random strings split differently from llama.cpp's splitter\n", cases[k].pre, differ);
        failures += differ;
        sm_pretok_free(p);
    }
    pcre2_code_free(re_letter);
    pcre2_code_free(re_number);
    pcre2_code_free(re_space);
    pcre2_match_data_free(md);
    return failures ? 1 : 0;
}
