/* test_bpe_train.c: the BPE trainer (bpe_train.h) against a hand-worked merge sequence and a
 * naive reference trainer (all pair counts recomputed every step), byte-identical files for the
 * same corpus in any order, round trips through the tokenizer it loads into, special and marker
 * tokens, and bad parameters. Exits non-zero on any failure. */
#include "bpe_train.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static sm_bpe_trainer *train(const sm_bpe_params *p, const char *const *texts, int n, sm_error *err) {
    sm_bpe_trainer *t = sm_bpe_trainer_new(p, err);
    if (!t) return NULL;
    for (int i = 0; i < n; i++)
        if (sm_bpe_add_text(t, texts[i], strlen(texts[i]), err)) { sm_bpe_trainer_free(t); return NULL; }
    if (sm_bpe_train(t, NULL, NULL, err)) { sm_bpe_trainer_free(t); return NULL; }
    return t;
}

/* merge i as "left right" in raw bytes */
static void merge_str(const sm_bpe_trainer *t, int i, char *out, size_t cap, uint64_t *count) {
    const char *l, *r;
    size_t ll, rl;
    if (sm_bpe_merge(t, i, &l, &ll, &r, &rl, count)) { snprintf(out, cap, "(none)"); return; }
    snprintf(out, cap, "%.*s|%.*s", (int)ll, l, (int)rl, r);
}

/* 1. A corpus small enough to work by hand (the worked example is in models/README.md's
 * vocabulary section): most frequent pair first, ties to the smaller (left, right) byte ids. */
static void test_hand_example(void) {
    const char *text = "low low low low low lower lower newest newest newest newest newest newest widest widest widest";
    static const char *const want[] = {"e|s", "es|t", "l|o", "lo|w", " |n", " |low", "e|w", " n|ew", " new|est",
                                       " |w", "d|est", "i|dest", " w|idest", "e|r"};
    static const uint64_t want_count[] = {9, 9, 7, 7, 6, 6, 6, 6, 6, 3, 3, 3, 3, 2};
    sm_bpe_params p = {256 + 14, "gpt2", NULL, 0, NULL, 0, 2};
    sm_error err = {0};
    sm_bpe_trainer *t = train(&p, &text, 1, &err);
    CHECK(t, "train: %s", err.msg);
    if (!t) return;
    sm_bpe_stats s;
    sm_bpe_get_stats(t, &s);
    CHECK(s.n_merges == 14 && s.n_vocab == 270 && s.words == 5 && s.pieces == 16, "stats: %d merges, %d tokens, %llu words",
          s.n_merges, s.n_vocab, (unsigned long long)s.words);
    for (int i = 0; i < 14; i++) {
        char got[64];
        uint64_t c;
        merge_str(t, i, got, sizeof got, &c);
        CHECK(!strcmp(got, want[i]) && c == want_count[i], "merge %d: got '%s' x%llu, want '%s' x%llu", i, got,
              (unsigned long long)c, want[i], (unsigned long long)want_count[i]);
    }
    sm_bpe_trainer_free(t);
    /* A larger vocabulary stops when no pair occurs twice: "Ġlow er" occurs twice, then nothing. */
    p.vocab_size = 400;
    t = train(&p, &text, 1, &err);
    sm_bpe_get_stats(t, &s);
    CHECK(s.n_merges == 15 && s.n_vocab == 256 + 15, "min_frequency stop: %d merges", s.n_merges);
    sm_bpe_trainer_free(t);
}

/* 2. The reference: the same algorithm with every pair count recomputed at every step. Words are
 * single pieces (letters only, one text each), so the word list is the texts'. */
typedef struct {
    int32_t *sym;
    int n;
    int64_t count;
} ref_word;

static void test_against_reference(void) {
    enum { N_TEXT = 400, MAX_LEN = 14, N_MERGES = 120 };
    static char store[N_TEXT][MAX_LEN + 1];
    const char *texts[N_TEXT];
    for (int i = 0; i < N_TEXT; i++) {
        int len = 1 + (int)(rnd() % MAX_LEN);
        for (int k = 0; k < len; k++) store[i][k] = "aaabbcd"[rnd() % 7]; /* repeats: aaaa, abab overlap cases */
        store[i][len] = 0;
        texts[i] = store[i];
    }
    sm_bpe_params p = {256 + N_MERGES, "gpt2", NULL, 0, NULL, 0, 1};
    sm_error err = {0};
    sm_bpe_trainer *t = train(&p, texts, N_TEXT, &err);
    CHECK(t, "train: %s", err.msg);
    if (!t) return;

    /* The reference's words: distinct texts with counts. */
    ref_word *w = calloc(N_TEXT, sizeof *w);
    int n_words = 0;
    for (int i = 0; i < N_TEXT; i++) {
        int j = 0;
        for (; j < i; j++) if (!strcmp(texts[i], texts[j])) break;
        if (j < i) {
            for (int k = 0; k < n_words; k++)
                if ((int)strlen(texts[i]) == w[k].n && w[k].count > 0) {
                    int same = 1;
                    for (int c = 0; c < w[k].n && same; c++) same = w[k].sym[c] == (unsigned char)texts[i][c];
                    if (same) { w[k].count++; break; }
                }
            continue;
        }
        w[n_words].n = (int)strlen(texts[i]);
        w[n_words].sym = malloc(sizeof(int32_t) * MAX_LEN);
        for (int c = 0; c < w[n_words].n; c++) w[n_words].sym[c] = (unsigned char)texts[i][c];
        w[n_words++].count = 1;
    }
    char tok_text[256 + N_MERGES][64];
    for (int b = 0; b < 256; b++) { tok_text[b][0] = (char)b; tok_text[b][1] = 0; }
    sm_bpe_stats s;
    sm_bpe_get_stats(t, &s);
    int n_ref = 0;
    int64_t *pair_count = malloc(sizeof(int64_t) * (256 + N_MERGES) * (256 + N_MERGES));
    for (int step = 0; step < N_MERGES; step++) {
        int64_t best = 0;
        int32_t ba = 0, bb = 0, n_tok = 256 + step;
        memset(pair_count, 0, sizeof(int64_t) * (size_t)n_tok * (size_t)n_tok);
        for (int k = 0; k < n_words; k++) /* every adjacent position, counted afresh */
            for (int i = 0; i + 1 < w[k].n; i++) pair_count[w[k].sym[i] * n_tok + w[k].sym[i + 1]] += w[k].count;
        for (int32_t a = 0; a < n_tok; a++) /* the first maximum in (a, b) order */
            for (int32_t b = 0; b < n_tok; b++)
                if (pair_count[a * n_tok + b] > best) best = pair_count[a * n_tok + b], ba = a, bb = b;
        if (best < 1) break;
        int32_t z = 256 + step;
        snprintf(tok_text[z], sizeof tok_text[z], "%s%s", tok_text[ba], tok_text[bb]);
        for (int k = 0; k < n_words; k++) {
            int o = 0;
            for (int i = 0; i < w[k].n;) {
                if (i + 1 < w[k].n && w[k].sym[i] == ba && w[k].sym[i + 1] == bb) { w[k].sym[o++] = z; i += 2; }
                else w[k].sym[o++] = w[k].sym[i++];
            }
            w[k].n = o;
        }
        char got[64], want[160];
        uint64_t c;
        merge_str(t, step, got, sizeof got, &c);
        snprintf(want, sizeof want, "%s|%s", tok_text[ba], tok_text[bb]);
        CHECK(!strcmp(got, want) && c == (uint64_t)best, "reference merge %d: trainer '%s' x%llu, reference '%s' x%lld",
              step, got, (unsigned long long)c, want, (long long)best);
        n_ref++;
    }
    CHECK(n_ref == s.n_merges, "merges: trainer %d, reference %d", s.n_merges, n_ref);
    printf("reference: %d merges agree (counts and order)\n", n_ref);
    for (int k = 0; k < n_words; k++) free(w[k].sym);
    free(w);
    free(pair_count);
    sm_bpe_trainer_free(t);
}

/* Reads a whole file; NULL when it cannot. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static const char *code_sample =
    "def parse_header(line):\n    \"\"\"Split 'Key: value' into a pair.\"\"\"\n    key, _, value = line.partition(':')\n"
    "    return key.strip().lower(), value.strip()\n\n"
    "static int buffer_grow(struct buffer *b, size_t n) {\n    if (b->len + n <= b->cap) return 0;\n"
    "    size_t cap = b->cap ? b->cap * 2 : 64;\n    char *p = realloc(b->data, cap);\n    if (!p) return -1;\n"
    "    b->data = p;\n    b->cap = cap;\n    return 0;\n}\n"
    "func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {\n\tif r.Method != \"GET\" {\n"
    "\t\thttp.Error(w, \"method not allowed\", 405)\n\t\treturn\n\t}\n}\n";

/* 3. Files: the same texts in another order give the same bytes; the file loads into the
 * tokenizer; detokenize(tokenize(x)) == x for code, random UTF-8 and random bytes; special and
 * marker tokens. */
static void test_file_and_round_trip(void) {
    enum { N = 64 };
    static char docs[N][512];
    const char *fwd[N], *rev[N];
    for (int i = 0; i < N; i++) {
        snprintf(docs[i], sizeof docs[i], "%s\n# doc %d: ünïcödé ✓ 12345 0x%04x\n%s", code_sample + (i % 7) * 13, i,
                 i * 37, i % 3 ? "<|endoftext|>" : "Language: c\nCode:\nx\n### Title:\n");
        fwd[i] = docs[i];
        rev[N - 1 - i] = docs[i];
    }
    const char *special[] = {"<|endoftext|>", "<|pad|>"};
    const char *markers[] = {"Language:", "\nCode:\n", "\n### Title:\n"};
    sm_bpe_params p = {600, "starcoder", special, 2, markers, 3, 2};
    sm_error err = {0};
    char path1[] = "/tmp/test_bpe_train_XXXXXX", path2[] = "/tmp/test_bpe_train_XXXXXX";
    int fd1 = mkstemp(path1), fd2 = mkstemp(path2);
    CHECK(fd1 >= 0 && fd2 >= 0, "mkstemp");
    close(fd1);
    close(fd2);
    sm_bpe_trainer *t1 = train(&p, fwd, N, &err), *t2 = train(&p, rev, N, &err);
    CHECK(t1 && t2, "train: %s", err.msg);
    if (!t1 || !t2) return;
    CHECK(!sm_bpe_write_gguf(t1, path1, &err) && !sm_bpe_write_gguf(t2, path2, &err), "write: %s", err.msg);
    size_t n1, n2;
    unsigned char *b1 = slurp(path1, &n1), *b2 = slurp(path2, &n2);
    CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "same corpus, other order: files differ (%zu, %zu bytes)", n1, n2);
    free(b1);
    free(b2);
    sm_bpe_trainer_free(t2);

    sm_gguf *g = sm_gguf_open(path1, &err);
    sm_tokenizer *tok = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
    sm_gguf_close(g);
    CHECK(tok, "load: %s", err.msg);
    if (!tok) { sm_bpe_trainer_free(t1); return; }
    sm_bpe_stats s;
    sm_bpe_get_stats(t1, &s);
    CHECK(sm_tokenizer_n_vocab(tok) == s.n_vocab && s.n_vocab > 400 && s.n_vocab <= 600, "n_vocab %d, trainer %d", sm_tokenizer_n_vocab(tok),
          s.n_vocab);
    CHECK(sm_tokenizer_bos(tok) == 0 && sm_tokenizer_eos(tok) == 0 && !sm_tokenizer_add_bos(tok), "bos/eos");
    CHECK(!strcmp(sm_tokenizer_pre(tok), "starcoder") && !sm_tokenizer_warning(tok), "pre %s", sm_tokenizer_pre(tok));
    CHECK(sm_tokenizer_token_type(tok, 0) == SM_TOKEN_CONTROL && sm_tokenizer_token_type(tok, 2) == SM_TOKEN_USER_DEFINED &&
              sm_tokenizer_token_type(tok, 5) == SM_TOKEN_NORMAL, "token types");

    /* Markers and specials: one token each, and back to their text. */
    const char *prompt = "Language: c\nCode:\nint x;\n### Title:\n";
    int *ids = NULL, n = 0;
    CHECK(!sm_tokenize(tok, prompt, strlen(prompt), 0, 1, &ids, &n, &err), "tokenize: %s", err.msg);
    CHECK(n >= 4 && ids[0] == 2 && ids[1] != 2 && ids[n - 1] == 4, "markers: first id %d, last id %d", n ? ids[0] : -1,
          n ? ids[n - 1] : -1);
    int has_code = 0;
    for (int i = 0; i < n; i++) has_code |= ids[i] == 3;
    CHECK(has_code, "\\nCode:\\n is not one token");
    free(ids);
    CHECK(!sm_tokenize(tok, "a<|endoftext|>", 14, 0, 1, &ids, &n, &err) && n == 2 && ids[1] == 0, "<|endoftext|>");
    free(ids);

    /* Round trips. */
    char *buf = malloc(4096);
    for (int trial = 0; trial < 300; trial++) {
        size_t len;
        if (trial == 0) {
            len = strlen(code_sample);
            memcpy(buf, code_sample, len);
        } else if (trial < 150) { /* random UTF-8 from a mixed alphabet */
            static const char *const alpha[] = {"a", "Z", " ", "  ", "\n", "\t", "_", "(", ")", "{", "}", "0", "7", "é",
                                                "ß", "中", "😀", "'s", "=>", "#", "\r\n", "ـ", "Language:", "\nCode:\n"};
            len = 0;
            int k = 1 + (int)(rnd() % 200);
            for (int i = 0; i < k; i++) {
                const char *a = alpha[rnd() % (sizeof alpha / sizeof alpha[0])];
                memcpy(buf + len, a, strlen(a));
                len += strlen(a);
            }
        } else { /* random bytes, invalid UTF-8 included */
            len = rnd() % 300;
            for (size_t i = 0; i < len; i++) buf[i] = (char)(rnd() & 0xff);
        }
        char *back = NULL;
        size_t back_len = 0;
        int rc = sm_tokenize(tok, buf, len, 0, 0, &ids, &n, &err);
        if (!rc) rc = sm_detokenize(tok, ids, n, 0, &back, &back_len, &err);
        CHECK(!rc && back_len == len && !memcmp(back, buf, len), "round trip %d (%zu bytes): %s", trial, len, err.msg);
        free(ids);
        free(back);
    }
    free(buf);
    sm_tokenizer_free(tok);
    sm_bpe_trainer_free(t1);
    unlink(path1);
    unlink(path2);
}

/* 4. Bad parameters. */
static void test_errors(void) {
    sm_error err = {0};
    const char *dup[] = {"<|a|>", "<|a|>"}, *empty[] = {""};
    sm_bpe_params p = {255, "gpt2", NULL, 0, NULL, 0, 2};
    CHECK(!sm_bpe_trainer_new(&p, &err) && err.code == SM_EINVAL, "vocab 255 accepted");
    p = (sm_bpe_params){300, "no-such-pre", NULL, 0, NULL, 0, 2};
    CHECK(!sm_bpe_trainer_new(&p, &err) && err.code == SM_EUNSUPPORTED, "unknown pre accepted");
    p = (sm_bpe_params){300, "gpt2", dup, 2, NULL, 0, 2};
    CHECK(!sm_bpe_trainer_new(&p, &err) && err.code == SM_EINVAL, "duplicate special accepted");
    p = (sm_bpe_params){300, "gpt2", NULL, 0, empty, 1, 2};
    CHECK(!sm_bpe_trainer_new(&p, &err) && err.code == SM_EINVAL, "empty marker accepted");
    p = (sm_bpe_params){300, "gpt2", NULL, 0, NULL, 0, 0};
    CHECK(!sm_bpe_trainer_new(&p, &err) && err.code == SM_EINVAL, "min_frequency 0 accepted");
    p = (sm_bpe_params){300, "gpt2", NULL, 0, NULL, 0, 2};
    sm_bpe_trainer *t = sm_bpe_trainer_new(&p, &err);
    CHECK(t && sm_bpe_write_gguf(t, "/tmp/never.gguf", &err) == SM_EINVAL, "write before training");
    CHECK(t && !sm_bpe_train(t, NULL, NULL, &err), "train on nothing");
    CHECK(t && sm_bpe_add_text(t, "x", 1, &err) == SM_EINVAL, "text after training");
    sm_bpe_stats s;
    sm_bpe_get_stats(t, &s);
    CHECK(s.n_vocab == 256 && s.n_merges == 0, "empty corpus: %d tokens", s.n_vocab);
    sm_bpe_trainer_free(t);
    sm_bpe_trainer_free(NULL);
}

int main(void) {
    test_hand_example();
    test_against_reference();
    test_file_and_round_trip();
    test_errors();
    if (failures) {
        fprintf(stderr, "test_bpe_train: %d failures\n", failures);
        return 1;
    }
    printf("test_bpe_train: ok\n");
    return 0;
}
