/* test_tokenizer.c: unit tests of the tokenizer module (tokenizer.h, unicode.h, pretokenize.h):
 * GPT-2's byte mapping; detokenize(tokenize(x)) == x on every fixture vocabulary for tricky and
 * random UTF-8 and for invalid bytes; special tokens with parsing on and off; add_special;
 * SentencePiece merges against a plain reference of llama2.c's encode() on tok512.bin; and
 * malformed metadata refused with a message that names the key.
 * argv[1]: the ../shared directory (exit 77 when its fixtures are absent). */
#include "gguf.h"
#include "pretokenize.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            failures++;                                          \
        }                                                        \
    } while (0)

static const char *const vocab_names[] = {"gpt-2", "starcoder", "deepseek-coder", "llama-spm"};
enum { N_VOCABS = 4 };

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { /* xorshift64*, fixed seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static sm_tokenizer *load_vocab(const char *shared, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/ggml-vocab-%s.gguf", shared, name);
    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(path, &err);
    if (!g) { CHECK(0, "open %s: %s", path, err.msg); return NULL; }
    sm_tokenizer *t = sm_tokenizer_from_gguf(g, &err);
    sm_gguf_close(g);
    CHECK(t, "tokenizer of %s: %s", path, err.msg);
    return t;
}

/* What detokenizing gives back for text: the text itself, or for SentencePiece with the space
 * prefix a space before it and U+2581 read as a space. */
static char *expected_roundtrip(const sm_tokenizer *t, const char *s, size_t n, size_t *out_n) {
    char *e = malloc(n + 2);
    size_t k = 0;
    if (strcmp(sm_tokenizer_model(t), "llama")) {
        memcpy(e, s, n);
        k = n;
    } else {
        if (n) e[k++] = ' ';
        for (size_t i = 0; i < n; i++) {
            if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) e[k++] = ' ', i += 2;
            else e[k++] = s[i];
        }
    }
    *out_n = k;
    return e;
}

static void check_roundtrip(const sm_tokenizer *t, const char *vocab, const char *s, size_t n) {
    int *ids, n_ids;
    sm_error err = {0};
    int rc = sm_tokenize(t, s, n, 0, 0, &ids, &n_ids, &err);
    CHECK(rc == 0, "%s: tokenize: %s", vocab, err.msg);
    if (rc) return;
    char *back;
    size_t back_n, want_n;
    rc = sm_detokenize(t, ids, n_ids, 0, &back, &back_n, &err);
    CHECK(rc == 0, "%s: detokenize: %s", vocab, err.msg);
    char *want = expected_roundtrip(t, s, n, &want_n);
    if (!rc) {
        CHECK(back_n == want_n && !memcmp(back, want, want_n), "%s: round trip of %zu bytes '%.40s' gave %zu bytes '%.40s'",
              vocab, n, s, back_n, back);
        free(back);
    }
    free(want);
    free(ids);
}

/* ---- GPT-2's byte mapping ---- */

static void test_byte_mapping(void) {
    int seen[0x144] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = sm_byte_to_unicode((uint8_t)b);
        CHECK(cp < 0x144, "byte %d maps to U+%04X, outside U+0000..U+0143", b, cp);
        if (cp >= 0x144) continue;
        CHECK(!seen[cp], "byte %d maps to U+%04X twice", b, cp);
        seen[cp] = 1;
        CHECK(sm_unicode_to_byte(cp) == b, "U+%04X maps back to %d, not %d", cp, sm_unicode_to_byte(cp), b);
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
            CHECK(cp == (uint32_t)b, "printable byte %d should map to itself", b);
    }
    CHECK(sm_byte_to_unicode(' ') == 0x120, "space should map to U+0120 (Ġ)");
    CHECK(sm_byte_to_unicode('\n') == 0x10A, "newline should map to U+010A (Ċ)");
    CHECK(sm_byte_to_unicode(0x7F) == 0x121 && sm_byte_to_unicode(0xA0) == 0x142 && sm_byte_to_unicode(0xAD) == 0x143,
          "DEL, NBSP and soft hyphen map to U+0121, U+0142, U+0143");
    CHECK(sm_unicode_to_byte(0x144) == -1 && sm_unicode_to_byte(0x4E00) == -1, "unmapped code points give -1");
    /* UTF-8 helpers: every code point encodes and decodes back; bad sequences are refused. */
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 97)) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char s[4];
        uint32_t back;
        int n = sm_utf8_encode(cp, s);
        CHECK(sm_utf8_decode(s, (size_t)n, &back) == n && back == cp, "UTF-8 round trip of U+%04X", cp);
        CHECK(sm_utf8_len((unsigned char)s[0]) == n, "sm_utf8_len of U+%04X", cp);
    }
    uint32_t cp;
    CHECK(sm_utf8_decode("\xc0\x80", 2, &cp) == 0, "overlong NUL refused");
    CHECK(sm_utf8_decode("\xed\xa0\x80", 3, &cp) == 0, "surrogate refused");
    CHECK(sm_utf8_decode("\xf4\x90\x80\x80", 4, &cp) == 0, "above U+10FFFF refused");
    CHECK(sm_utf8_decode("\xe4\xb8", 2, &cp) == 0, "truncated refused");
}

/* Bytes each vocabulary can stand for: tokenized alone, the byte detokenizes to itself. All 256
 * except where a vocabulary has a byte's character only as a USER_DEFINED token, which
 * detokenizes to its text (deepseek-coder's 13 bytes that never occur in UTF-8, such as 0xF5 as
 * "õ"; llama.cpp does the same). */
static int representable[N_VOCABS][256];

static void test_bytes_roundtrip(sm_tokenizer *const *toks) {
    static const int expected_missing[N_VOCABS] = {0, 14, 13, 0}; /* starcoder also lacks 0xF1 (planes 4-7) */
    for (int v = 0; v < N_VOCABS; v++) {
        int missing = 0;
        for (int b = 0; b < 256; b++) {
            char c = (char)b, piece[16];
            int *ids, n;
            sm_error err = {0};
            if (sm_tokenize(toks[v], &c, 1, 0, 0, &ids, &n, &err)) { CHECK(0, "%s: %s", vocab_names[v], err.msg); continue; }
            int k = 0, len = 0;
            for (int i = 0; i < n && len < 8; i++) len += sm_token_to_piece(toks[v], ids[i], piece + len, 8, 0);
            k = !strcmp(sm_tokenizer_model(toks[v]), "llama"); /* the space prefix */
            representable[v][b] = len == 1 + k && piece[k] == c;
            missing += !representable[v][b];
            free(ids);
        }
        CHECK(missing == expected_missing[v], "%s: %d bytes do not round-trip alone (expected %d)", vocab_names[v], missing,
              expected_missing[v]);
    }
}

/* ---- round trips ---- */

static const char *const tricky[] = {
    "", " ", "  ", "\n", "\r\n", "\t\t", " \n \n", "Hello world", " Hello World!", "Hello, world!",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "int main(void) {\n    return 0; // done\n}\n", "def f(x):\n\treturn x ** 2  # square\n",
    "caf\xc3\xa9 na\xc3\xafve", "F\xc3\xbchrer \xc3\xb5\xc3\xb7\xc3\x81", "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97",
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "e\xcc\x81\xcc\x82 combining", "nbsp\xc2\xa0here\xe3\x80\x80ideographic\xe2\x80\xa8line", "\xd9\xa1\xd9\xa2\xd9\xa3 123456789",
    "3.14159 1,000,000 0x1F -42", "<|endoftext|> <s> </s> <fim_prefix>", "\xe2\x96\x81 lower one eighth block",
    "\xef\xbf\xbd replacement \xf4\x8f\xbf\xbf max", "\x01\x02\x7f control", "tab\ttab\vvt\fff",
};

/* A random string of code points drawn from ranges that exercise the pre-tokenizers, using only
 * bytes that vocabulary v can stand for. */
static size_t random_utf8(int v, char *buf, size_t max_chars) {
    static const uint32_t ranges[][2] = {
        {'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {' ', ' '}, {' ', '/'}, {':', '@'}, {'\t', '\r'}, {0xA0, 0xFF},
        {0x300, 0x36F}, {0x400, 0x4FF}, {0x660, 0x669}, {0x2000, 0x206F}, {0x3000, 0x303F}, {0x4E00, 0x9FFF},
        {0xAC00, 0xD7A3}, {0x1F300, 0x1F64F}, {0x200D, 0x200D}, {0xFE0F, 0xFE0F}, {0x2581, 0x2581}, {0x10000, 0x10FFFF},
    };
    size_t n = 0, chars = 1 + rnd() % max_chars;
    for (size_t i = 0; i < chars; i++) {
        const uint32_t *r = ranges[rnd() % (sizeof ranges / sizeof ranges[0])];
        uint32_t cp = r[0] + rnd() % (r[1] - r[0] + 1);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        int len = sm_utf8_encode(cp, buf + n), ok = 1;
        for (int k = 0; k < len; k++) ok &= representable[v][(unsigned char)buf[n + (size_t)k]];
        if (ok) n += (size_t)len;
    }
    return n;
}

static void test_roundtrips(sm_tokenizer *const *toks) {
    char buf[4 * 200 + 8];
    for (int v = 0; v < N_VOCABS; v++) {
        for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++)
            check_roundtrip(toks[v], vocab_names[v], tricky[i], strlen(tricky[i]));
        for (int k = 0; k < 300; k++) {
            size_t n = random_utf8(v, buf, 200);
            check_roundtrip(toks[v], vocab_names[v], buf, n);
        }
        for (int k = 0; k < 100; k++) { /* any bytes, invalid UTF-8 included */
            size_t n = 1 + rnd() % 64;
            for (size_t i = 0; i < n; i++)
                do buf[i] = (char)(rnd() % 255 + 1);
                while (!representable[v][(unsigned char)buf[i]]);
            check_roundtrip(toks[v], vocab_names[v], buf, n);
        }
    }
}

/* ---- special tokens ---- */

static int tokenize(const sm_tokenizer *t, const char *s, int add_special, int parse_special, int **ids) {
    int n;
    sm_error err = {0};
    if (sm_tokenize(t, s, strlen(s), add_special, parse_special, ids, &n, &err)) {
        CHECK(0, "tokenize '%s': %s", s, err.msg);
        *ids = NULL;
        return -1;
    }
    return n;
}

static int contains(const int *ids, int n, int id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

static void test_specials(sm_tokenizer *const *toks) {
    const sm_tokenizer *gpt2 = toks[0], *star = toks[1], *ds = toks[2], *spm = toks[3];
    int *ids, n;

    n = tokenize(gpt2, "a<|endoftext|>b", 0, 1, &ids);
    CHECK(n == 3 && ids[1] == 50256, "gpt-2: <|endoftext|> parsed whole (n=%d)", n);
    free(ids);
    n = tokenize(gpt2, "a<|endoftext|>b", 0, 0, &ids);
    CHECK(n > 3 && !contains(ids, n, 50256), "gpt-2: <|endoftext|> as text without parse_special (n=%d)", n);
    free(ids);
    CHECK(sm_tokenizer_is_eog(gpt2, 50256) && !sm_tokenizer_is_eog(gpt2, 198), "gpt-2: EOG set");
    CHECK(!sm_tokenizer_add_bos(gpt2), "gpt-2 adds no BOS by default");
    n = tokenize(gpt2, "hi", 1, 0, &ids);
    CHECK(n == 1, "gpt-2: add_special adds nothing (n=%d)", n);
    free(ids);

    n = tokenize(star, "<fim_prefix>def f():<fim_suffix>", 0, 1, &ids);
    CHECK(n > 2 && ids[0] == 1 && ids[n - 1] == 3, "starcoder: FIM tokens parsed whole");
    free(ids);
    n = tokenize(star, "<fim_prefix>", 0, 0, &ids);
    CHECK(n > 1 && !contains(ids, n, 1), "starcoder: FIM token as text without parse_special");
    free(ids);

    /* deepseek-coder's USER_DEFINED tokens match even without parse_special (as llama.cpp). */
    n = tokenize(ds, "F\xc3\xbchrer", 0, 0, &ids);
    CHECK(n == 4 && ids[1] == 32009, "deepseek-coder: user-defined token matched without parse_special");
    free(ids);
    n = tokenize(ds, "x", 1, 0, &ids);
    CHECK(n == 2 && ids[0] == 32013, "deepseek-coder: add_bos_token adds BOS 32013");
    free(ids);
    n = tokenize(ds, "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 0, 1, &ids);
    CHECK(n == 1 && ids[0] == 32014, "deepseek-coder: EOS text parsed whole");
    free(ids);
    CHECK(sm_tokenizer_is_eog(ds, 32014), "deepseek-coder: EOS is EOG");

    n = tokenize(spm, "<s>Hello</s>", 0, 1, &ids);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 2, "llama-spm: <s>Hello</s> -> 1 15043 2 (n=%d)", n);
    free(ids);
    n = tokenize(spm, "<s>Hello", 0, 0, &ids);
    CHECK(n > 2 && ids[0] != 1, "llama-spm: <s> as text without parse_special");
    free(ids);
    n = tokenize(spm, "Hello", 1, 0, &ids);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 15043, "llama-spm: add_special prepends BOS");
    free(ids);
    CHECK(sm_tokenizer_bos(spm) == 1 && sm_tokenizer_eos(spm) == 2 && sm_tokenizer_is_eog(spm, 2), "llama-spm ids");

    char piece[8];
    CHECK(sm_token_to_piece(spm, 1, piece, sizeof piece, 0) == 0, "control token gives '' without special");
    CHECK(sm_token_to_piece(spm, 1, piece, sizeof piece, 1) == 3 && !memcmp(piece, "<s>", 3), "control token text with special");
    CHECK(sm_token_to_piece(spm, 15043, piece, 2, 0) == 6 && !memcmp(piece, " H", 2), "short buffer: full length returned");
    CHECK(sm_token_to_piece(spm, 3 + 0x0A, piece, sizeof piece, 0) == 1 && piece[0] == '\n', "<0x0A> is a newline");
    CHECK(sm_token_to_piece(spm, -1, piece, sizeof piece, 0) < 0 && sm_token_to_piece(spm, 32000, piece, 8, 0) < 0,
          "ids out of range refused");
    CHECK(sm_tokenizer_find(gpt2, "Hello", 5) == 15496 && sm_tokenizer_find(gpt2, "no such token!", 14) == -1, "find");
}

/* ---- SentencePiece merges against llama2.c's encode() ---- */

typedef struct {
    int n;
    char **text; /* llama2.c's own texts: raw spaces, "<0xNN>" bytes */
    float *score;
    int *sorted; /* ids by text, for binary search as llama2.c's str_lookup */
} l2c_vocab;

static const l2c_vocab *sort_vocab;
static int by_text(const void *a, const void *b) {
    return strcmp(sort_vocab->text[*(const int *)a], sort_vocab->text[*(const int *)b]);
}

static int l2c_lookup(const l2c_vocab *v, const char *s) {
    int lo = 0, hi = v->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(v->text[v->sorted[mid]], s);
        if (c == 0) return v->sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* llama2.c's encode() without BOS/EOS, written plainly: dummy prefix, code points (a lead byte
 * and at most three continuation bytes) or byte fallback (id = byte + 3), then repeatedly merge
 * the leftmost best-scoring adjacent pair whose concatenation is a token. */
static int l2c_encode(const l2c_vocab *v, const char *text, int *out) {
    int n = 0;
    char buf[512];
    if (text[0]) out[n++] = l2c_lookup(v, " ");
    for (const char *c = text; *c;) {
        size_t len = 1;
        while (c[len] && ((unsigned char)c[len] & 0xC0) == 0x80 && len < 4) len++;
        memcpy(buf, c, len);
        buf[len] = 0;
        int id = l2c_lookup(v, buf);
        if (id >= 0) out[n++] = id;
        else
            for (size_t i = 0; i < len; i++) out[n++] = (unsigned char)buf[i] + 3;
        c += len;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1;
        for (int i = 0; i + 1 < n; i++) {
            snprintf(buf, sizeof buf, "%s%s", v->text[out[i]], v->text[out[i + 1]]);
            int id = l2c_lookup(v, buf);
            if (id >= 0 && v->score[id] > best) best = v->score[id], best_id = id, best_i = i;
        }
        if (best_i < 0) break;
        out[best_i] = best_id;
        memmove(out + best_i + 1, out + best_i + 2, (size_t)(n - best_i - 2) * sizeof *out);
        n--;
    }
    return n;
}

static int read_tok512(const char *shared, l2c_vocab *v) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/stories260K/tok512.bin", shared);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int32_t max_len;
    v->n = 512;
    v->text = calloc(512, sizeof *v->text);
    v->score = calloc(512, sizeof *v->score);
    int ok = fread(&max_len, 4, 1, f) == 1;
    for (int i = 0; ok && i < 512; i++) {
        int32_t len;
        ok = fread(&v->score[i], 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 && len >= 0 && len < 256 &&
             (v->text[i] = calloc(1, (size_t)len + 1)) && fread(v->text[i], 1, (size_t)len, f) == (size_t)len;
    }
    fclose(f);
    if (!ok) return -1;
    v->sorted = malloc(512 * sizeof *v->sorted);
    for (int i = 0; i < 512; i++) v->sorted[i] = i;
    sort_vocab = v;
    qsort(v->sorted, 512, sizeof *v->sorted, by_text);
    return 0;
}

/* The vocabulary as the converter writes it: ' ' -> U+2581, scores, token types. */
static sm_tokenizer *tok512_tokenizer(const l2c_vocab *v) {
    char **texts = calloc((size_t)v->n, sizeof *texts);
    int32_t *types = calloc((size_t)v->n, sizeof *types);
    for (int i = 0; i < v->n; i++) {
        const char *s = v->text[i];
        texts[i] = malloc(strlen(s) * 3 + 1);
        char *o = texts[i];
        for (; *s; s++) {
            if (*s == ' ') memcpy(o, "\xe2\x96\x81", 3), o += 3;
            else *o++ = *s;
        }
        *o = 0;
        types[i] = i == 0 ? SM_TOKEN_UNKNOWN : i <= 2 ? SM_TOKEN_CONTROL
                 : (strlen(v->text[i]) == 6 && !strncmp(v->text[i], "<0x", 3)) ? SM_TOKEN_BYTE : SM_TOKEN_NORMAL;
    }
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_gguf_set_str(w, "general.architecture", "llama");
    sm_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, NULL, (uint64_t)v->n);
    sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, v->score, (uint64_t)v->n);
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, (uint64_t)v->n);
    char path[] = "/tmp/sm_test_tok512_XXXXXX";
    int fd = mkstemp(path);
    sm_error err = {0};
    sm_tokenizer *t = NULL;
    if (fd >= 0 && !sm_gguf_write(w, path, &err)) {
        sm_gguf *g = sm_gguf_open(path, &err);
        if (g) t = sm_tokenizer_from_gguf(g, &err);
        sm_gguf_close(g);
    }
    CHECK(t, "tok512 as GGUF: %s", err.msg);
    if (fd >= 0) close(fd), unlink(path);
    sm_gguf_writer_free(w);
    for (int i = 0; i < v->n; i++) free(texts[i]);
    free(texts);
    free(types);
    return t;
}

static void test_llama2c_equivalence(const char *shared) {
    l2c_vocab v = {0};
    if (read_tok512(shared, &v)) { CHECK(0, "cannot read tok512.bin"); return; }
    sm_tokenizer *t = tok512_tokenizer(&v);
    static const char alphabet[][5] = {"a", "e", "t", "h", "o", "n", "s", "d", "l", "y", " ", " ", " ", ".", ",",
                                       "!", "'", "\"", "\n", "T", "L", "1", "9", "\xc3\xa9", "\xe4\xb8\xad",
                                       "\xf0\x9f\x98\x80", "\t", "-"};
    static const char *const words[] = {"Once upon a time", " there was", " little girl", "Lily", " happy",
                                        " the park.", " said,", "\"Hi!\"", "  ", "\n\n"};
    char text[600];
    int ref[1200];
    int checked = 0;
    for (int k = 0; t && k < 400; k++) {
        size_t n = 0;
        int parts = rnd() % 40;
        for (int p = 0; p < parts; p++) {
            const char *s = rnd() % 3 ? alphabet[rnd() % (sizeof alphabet / sizeof alphabet[0])]
                                      : words[rnd() % (sizeof words / sizeof words[0])];
            size_t l = strlen(s);
            memcpy(text + n, s, l);
            n += l;
        }
        text[n] = 0;
        int n_ref = l2c_encode(&v, text, ref);
        int *ids, n_ids;
        sm_error err = {0};
        if (sm_tokenize(t, text, n, 0, 0, &ids, &n_ids, &err)) { CHECK(0, "tok512: %s", err.msg); continue; }
        int same = n_ids == n_ref && !memcmp(ids, ref, (size_t)n_ref * sizeof *ids);
        CHECK(same, "tok512: '%s' gives %d tokens, llama2.c's encode %d", text, n_ids, n_ref);
        checked += same;
        free(ids);
    }
    printf("llama2.c encode() equivalence on tok512: %d/400 random texts\n", checked);
    sm_tokenizer_free(t);
    for (int i = 0; i < v.n; i++) free(v.text[i]);
    free(v.text);
    free(v.score);
    free(v.sorted);
}

/* ---- malformed metadata ---- */

enum { M_OK, M_NO_TOKENS, M_TOKENS_INTS, M_MERGE_UNKNOWN, M_MERGE_RESULT, M_MERGE_NOSPACE, M_TYPES_LEN,
       M_SCORES_TYPE, M_SCORES_SCALAR, M_NO_MERGES, M_NO_MODEL, M_BAD_MODEL, M_UNKNOWN_PRE, M_BAD_BOS,
       M_BOS_TYPE, M_EMPTY_TOKEN, M_ONE_MERGE, M_LLAMA3, M_MODEL_INT };

/* A tiny byte-level vocabulary (all 256 byte characters, "ab", "abc") with one defect. */
static sm_tokenizer *tiny_vocab(int defect, sm_error *err) {
    char *texts[260];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        texts[n] = calloc(1, 5);
        sm_utf8_encode(sm_byte_to_unicode((uint8_t)b), texts[n]);
        n++;
    }
    texts[n++] = strdup("ab");
    texts[n++] = strdup(defect == M_EMPTY_TOKEN ? "" : "abc");
    const char *merges[] = {"a b", defect == M_EMPTY_TOKEN ? "a b" : defect == M_MERGE_UNKNOWN ? "ab zz" : defect == M_MERGE_RESULT ? "b c"
                                   : defect == M_MERGE_NOSPACE ? "abc" : "ab c"};
    int32_t types[260];
    float scores[260];
    for (int i = 0; i < n; i++) types[i] = SM_TOKEN_NORMAL, scores[i] = (float)-i;
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (defect == M_MODEL_INT) sm_gguf_set_u32(w, "tokenizer.ggml.model", 2);
    else if (defect != M_NO_MODEL) sm_gguf_set_str(w, "tokenizer.ggml.model", defect == M_BAD_MODEL ? "bert" : "gpt2");
    sm_gguf_set_str(w, "tokenizer.ggml.pre", defect == M_UNKNOWN_PRE ? "no-such-pre" : defect == M_LLAMA3 ? "llama-bpe" : "gpt-2");
    if (defect == M_TOKENS_INTS) sm_gguf_set_arr(w, "tokenizer.ggml.tokens", SM_GGUF_INT32, types, (uint64_t)n);
    else if (defect != M_NO_TOKENS) sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, NULL, (uint64_t)n);
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, (uint64_t)(defect == M_TYPES_LEN ? n - 1 : n));
    if (defect == M_SCORES_TYPE) sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_INT32, types, (uint64_t)n);
    else if (defect == M_SCORES_SCALAR) sm_gguf_set_f32(w, "tokenizer.ggml.scores", 1.0f);
    else sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, scores, (uint64_t)n);
    if (defect != M_NO_MERGES)
        sm_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, defect == M_ONE_MERGE || defect == M_LLAMA3 ? 1 : 2);
    if (defect == M_BAD_BOS) sm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 100000);
    if (defect == M_BOS_TYPE) sm_gguf_set_str(w, "tokenizer.ggml.bos_token_id", "1");
    char path[] = "/tmp/sm_test_tiny_XXXXXX";
    int fd = mkstemp(path);
    sm_tokenizer *t = NULL;
    if (fd >= 0 && !sm_gguf_write(w, path, err)) {
        sm_gguf *g = sm_gguf_open(path, err);
        if (g) t = sm_tokenizer_from_gguf(g, err);
        sm_gguf_close(g);
    }
    if (fd >= 0) close(fd), unlink(path);
    sm_gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(texts[i]);
    return t;
}

static void expect_refused(int defect, int code, const char *needle) {
    sm_error err = {0};
    sm_tokenizer *t = tiny_vocab(defect, &err);
    CHECK(!t && err.code == code && strstr(err.msg, needle), "defect %d: expected code %d and '%s' in the message, got %s (%d: %s)",
          defect, code, needle, t ? "a tokenizer" : "NULL", err.code, err.msg);
    if (!t) printf("  refused as expected: %s\n", err.msg);
    sm_tokenizer_free(t);
}

static void test_malformed(void) {
    sm_error err = {0};
    sm_tokenizer *t = tiny_vocab(M_OK, &err);
    CHECK(t && !sm_tokenizer_warning(t), "tiny vocabulary loads: %s", err.msg);
    if (t) {
        int *ids, n;
        n = tokenize(t, "abc ab", 0, 0, &ids);
        CHECK(n == 3 && ids[0] == 257 && ids[1] == sm_tokenizer_find(t, "\xc4\xa0", 2) && ids[2] == 256,
              "tiny vocabulary merges 'abc ab' into abc, Ġ, ab (n=%d)", n);
        free(ids);
        CHECK(sm_tokenizer_bos(t) == 11 && sm_tokenizer_eos(t) == 11, "BPE default BOS/EOS 11 (llama.cpp)");
    }
    sm_tokenizer_free(t);
    expect_refused(M_NO_TOKENS, SM_EFORMAT, "missing tokenizer.ggml.tokens");
    expect_refused(M_TOKENS_INTS, SM_EFORMAT, "tokenizer.ggml.tokens");
    expect_refused(M_MERGE_UNKNOWN, SM_EFORMAT, "'zz' is not a token");
    expect_refused(M_MERGE_RESULT, SM_EFORMAT, "merged text 'bc' is not a token");
    expect_refused(M_MERGE_NOSPACE, SM_EFORMAT, "separated by a space");
    expect_refused(M_TYPES_LEN, SM_EFORMAT, "tokenizer.ggml.token_type to have 258 entries");
    expect_refused(M_SCORES_TYPE, SM_EFORMAT, "tokenizer.ggml.scores to be an array of float32");
    expect_refused(M_SCORES_SCALAR, SM_EFORMAT, "tokenizer.ggml.scores");
    expect_refused(M_NO_MERGES, SM_EFORMAT, "missing tokenizer.ggml.merges");
    expect_refused(M_NO_MODEL, SM_EFORMAT, "missing tokenizer.ggml.model");
    expect_refused(M_MODEL_INT, SM_EFORMAT, "expected a string for tokenizer.ggml.model");
    expect_refused(M_BAD_MODEL, SM_EUNSUPPORTED, "'bert'");
    expect_refused(M_BOS_TYPE, SM_EFORMAT, "bos_token_id");

    /* "abc" is a token that the merges do not build: gpt-2 merges to ab, c; llama3 takes a word
     * that is a token whole (llama.cpp's ignore_merges). */
    int *ids, n;
    t = tiny_vocab(M_ONE_MERGE, &err);
    n = t ? tokenize(t, "abc", 0, 0, &ids) : -1;
    CHECK(n == 2 && ids[0] == 256, "gpt-2 pre-tokenizer: 'abc' by merges is ab, c (n=%d)", n);
    if (n >= 0) free(ids);
    sm_tokenizer_free(t);
    t = tiny_vocab(M_LLAMA3, &err);
    n = t ? tokenize(t, "abc", 0, 0, &ids) : -1;
    CHECK(n == 1 && ids[0] == 257 && sm_tokenizer_add_bos(t) == 1, "llama3 pre-tokenizer: 'abc' whole, add_bos on by default (n=%d)", n);
    if (n >= 0) free(ids);
    sm_tokenizer_free(t);

    t = tiny_vocab(M_UNKNOWN_PRE, &err);
    CHECK(t && sm_tokenizer_warning(t) && strstr(sm_tokenizer_warning(t), "no-such-pre") &&
          !strcmp(sm_tokenizer_pre(t), "default"), "unknown pre-tokenizer: default with a warning");
    sm_tokenizer_free(t);
    t = tiny_vocab(M_BAD_BOS, &err);
    CHECK(t && sm_tokenizer_bos(t) == 11 && sm_tokenizer_warning(t) && strstr(sm_tokenizer_warning(t), "bos_token_id"),
          "BOS id outside the vocabulary: ignored with a warning");
    sm_tokenizer_free(t);
    t = tiny_vocab(M_EMPTY_TOKEN, &err);
    CHECK(t && sm_tokenizer_find(t, "[EMPTY_257]", 11) == 257, "an empty token text becomes [EMPTY_i]");
    sm_tokenizer_free(t);
    CHECK(sm_tokenizer_from_gguf(NULL, &err) == NULL && err.code == SM_EINVAL, "NULL file refused");
}

/* ---- pre-tokenizers ---- */

static void test_pretok(void) {
    static const char *const known[] = {"default", "gpt-2", "starcoder", "llama-bpe", "llama3", "qwen2",
                                        "deepseek-coder", "deepseek-llm", "deepseek-v3", "falcon", "refact",
                                        "smollm", "bloom", "viking", "tekken", "dbrx", "chatglm-bpe", "command-r"};
    const char *text = "Hello, World! It's 12345 apples\n\n  and   \xe4\xb8\xad\xe6\x96\x87 ok?";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        sm_error err = {0};
        sm_pretok *p = sm_pretok_new(known[i], &err);
        CHECK(p, "pre-tokenizer %s: %s", known[i], err.msg);
        if (!p) continue;
        size_t *ends, n;
        CHECK(sm_pretok_split(p, text, strlen(text), &ends, &n, &err) == 0 && n > 0 && ends[n - 1] == strlen(text),
              "pre-tokenizer %s splits and covers the text", known[i]);
        for (size_t k = 1; k < n; k++) CHECK(ends[k] > ends[k - 1], "%s: pieces are non-empty and in order", known[i]);
        free(ends);
        sm_pretok_free(p);
    }
    sm_error err = {0};
    CHECK(!sm_pretok_new("nonsense", &err) && err.code == SM_EUNSUPPORTED, "unknown pre-tokenizer refused");
    /* llama3 keeps digits in threes and takes a leading space or punctuation with a word. */
    sm_pretok *p = sm_pretok_new("llama-bpe", &err);
    size_t *ends, n;
    const char *s = "1234567 hello";
    if (p && !sm_pretok_split(p, s, strlen(s), &ends, &n, &err)) {
        CHECK(n == 4 && ends[0] == 3 && ends[1] == 6 && ends[2] == 7 && ends[3] == 13, "llama3: 123|456|7| hello (n=%zu)", n);
        free(ends);
    }
    sm_pretok_free(p);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/fixtures/tokenizers/ggml-vocab-gpt-2.gguf", shared);
    if (access(probe, R_OK)) {
        printf("skip: no tokenizer fixtures under %s/fixtures/tokenizers\n", shared);
        return 77;
    }
    sm_tokenizer *toks[N_VOCABS];
    for (int v = 0; v < N_VOCABS; v++)
        if (!(toks[v] = load_vocab(shared, vocab_names[v]))) return 1;
    test_byte_mapping();
    test_bytes_roundtrip(toks);
    test_roundtrips(toks);
    test_specials(toks);
    test_llama2c_equivalence(shared);
    test_malformed();
    test_pretok();
    for (int v = 0; v < N_VOCABS; v++) sm_tokenizer_free(toks[v]);
    if (failures) {
        printf("test_tokenizer: %d failures\n", failures);
        return 1;
    }
    printf("test_tokenizer: all passed\n");
    return 0;
}
