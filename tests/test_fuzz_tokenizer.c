/* test_fuzz_tokenizer.c: hostile input through every fixture vocabulary, with a fixed seed: random
 * bytes, invalid UTF-8, long runs of one character, special-token texts in pieces, and inputs of
 * about 1 MB. Nothing may crash or leak (the suite runs this under ASan and UBSan); every output
 * id must be in the vocabulary; detokenizing must give the input back where the vocabulary can
 * stand for every byte of it. Prints tokenizing speed on the large inputs.
 * argv[1]: the ../shared directory (exit 77 when its fixtures are absent). */
#include "gguf.h"
#include "pretokenize.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const char *name;
    sm_tokenizer *t;
    int spm;
    int byte_ok[256]; /* the byte detokenizes to itself when tokenized alone */
} vocab;

/* Tokenizes, checks the ids, and (when check_back) that detokenizing gives s back; for that it
 * tokenizes without add_special and parse_special, so that only text tokens appear. */
static int run(const vocab *v, const char *s, size_t n, int parse_special, int check_back, double *secs) {
    int *ids, n_ids;
    sm_error err = {0};
    double t0 = now();
    int rc = sm_tokenize(v->t, s, n, check_back ? 0 : rnd() % 2, check_back ? 0 : parse_special, &ids, &n_ids, &err);
    if (secs) *secs = now() - t0;
    CHECK(rc == 0, "%s: tokenize %zu bytes: %s", v->name, n, err.msg);
    if (rc) return -1;
    int n_vocab = sm_tokenizer_n_vocab(v->t);
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            CHECK(0, "%s: id %d out of range", v->name, ids[i]);
            break;
        }
    if (check_back) {
        for (size_t i = 0; i < n && check_back; i++) check_back = v->byte_ok[(unsigned char)s[i]];
        if (v->spm && memmem(s, n, "\xe2\x96\x81", 3)) check_back = 0; /* U+2581 reads back as a space */
    }
    if (check_back) {
        char *back;
        size_t back_n;
        if (!sm_detokenize(v->t, ids, n_ids, 0, &back, &back_n, &err)) {
            size_t k = v->spm && n ? 1 : 0;
            CHECK(back_n == n + k && !memcmp(back + k, s, n), "%s: %zu bytes do not come back (%zu)", v->name, n, back_n);
            free(back);
        } else {
            CHECK(0, "%s: %s", v->name, err.msg);
        }
    }
    free(ids);
    return n_ids;
}

static void fill_random(char *s, size_t n, int kind) {
    static const char *const pieces[] = {"<|endoftext|>", "<s>", "</s>", "<fim_prefix>", "<|", "|>", "<｜",
                                         "\xe2\x96\x81", "'s", "'ll", "  ", "\n\n", "\r\n", "123456", "\xc3\xb5",
                                         "\xf0\x9f\x98\x80", "\xe4\xb8\xad", "\xcc\x81", "[PAD32022]", "\t"};
    for (size_t i = 0; i < n;) {
        if (kind == 0) { /* any bytes */
            s[i++] = (char)rnd();
        } else if (kind == 1) { /* mostly ASCII text with invalid bytes sprinkled in */
            uint32_t r = rnd() % 100;
            s[i++] = r < 2 ? (char)(0x80 + rnd() % 128) : r < 15 ? ' ' : (char)(' ' + rnd() % 95);
        } else { /* pieces that touch special cases */
            const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            if (l > n - i) l = n - i;
            memcpy(s + i, p, l);
            i += l;
        }
    }
}

/* A small byte-level vocabulary file (the 256 byte characters, a few merges, a control and a
 * user-defined token), then mutated: every variant that still opens as GGUF must either build a
 * tokenizer that tokenizes, or be refused with a message. */
static void fuzz_metadata(void) {
    char *texts[262];
    int32_t types[262];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        texts[n] = calloc(1, 8);
        uint32_t cp = b < 33 ? 0x100 + (uint32_t)b : (uint32_t)b; /* close enough for a fuzz seed */
        if (cp < 0x80) texts[n][0] = (char)cp;
        else texts[n][0] = (char)(0xC0 | cp >> 6), texts[n][1] = (char)(0x80 | (cp & 0x3F));
        types[n++] = 1;
    }
    const char *extra[] = {"ab", "abc", "<|end|>", "<user>"};
    for (int i = 0; i < 4; i++) texts[n] = strdup(extra[i]), types[n++] = i == 2 ? 3 : i == 3 ? 4 : 1;
    const char *merges[] = {"a b", "ab c"};
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    sm_gguf_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
    sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, NULL, (uint64_t)n);
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, (uint64_t)n);
    sm_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 2);
    sm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 258);
    sm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    char path[] = "/tmp/sm_fuzz_vocab_XXXXXX";
    int fd = mkstemp(path);
    sm_error err = {0};
    int ok = fd >= 0 && !sm_gguf_write(w, path, &err);
    sm_gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(texts[i]);
    char *file = NULL;
    long size = 0;
    FILE *f = ok ? fopen(path, "rb") : NULL;
    if (f && !fseek(f, 0, SEEK_END) && (size = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET) && (file = malloc((size_t)size)))
        ok = fread(file, 1, (size_t)size, f) == (size_t)size;
    else
        ok = 0;
    if (f) fclose(f);
    if (fd >= 0) close(fd), unlink(path);
    CHECK(ok, "cannot write the fuzz vocabulary: %s", err.msg);
    if (!ok) { free(file); return; }
    char *mut = malloc((size_t)size);
    int opened = 0, built = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(mut, file, (size_t)size);
        int flips = 1 + rnd() % 4;
        for (int j = 0; j < flips; j++) {
            size_t at = rnd() % (size_t)size;
            mut[at] = rnd() % 4 ? (char)(mut[at] ^ (1 << (rnd() % 8))) : (char)rnd();
        }
        sm_error e = {0};
        sm_gguf *g = sm_gguf_open_memory(mut, (size_t)size, "mutated", &e);
        if (!g) continue;
        opened++;
        sm_tokenizer *t = sm_tokenizer_from_gguf(g, &e);
        sm_gguf_close(g);
        if (!t) {
            CHECK(e.code < 0 && e.msg[0], "a refused vocabulary must say why");
            continue;
        }
        built++;
        static const char alphabet[] = "abc <|end|><user>\n\xc3\xa9";
        char text[64];
        for (size_t i = 0; i < sizeof text; i++) text[i] = alphabet[rnd() % (sizeof alphabet - 1)];
        int *ids, n_ids;
        if (!sm_tokenize(t, text, sizeof text, 1, 1, &ids, &n_ids, &e)) {
            for (int i = 0; i < n_ids; i++) {
                char piece[32];
                CHECK(sm_token_to_piece(t, ids[i], piece, sizeof piece, 1) >= 0, "piece of id %d", ids[i]);
            }
            free(ids);
        }
        sm_tokenizer_free(t);
    }
    printf("metadata fuzz: 3000 mutations, %d opened as GGUF, %d built a tokenizer\n", opened, built);
    free(mut);
    free(file);
}

/* The same inputs tokenized on many threads at once give the same ids as one by one. */
static void check_threads(const vocab *v) {
    enum { N = 48 };
    static char texts[N][512];
    static int *serial[N], n_serial[N], *parallel[N], n_parallel[N];
    for (int i = 0; i < N; i++) fill_random(texts[i], sizeof texts[i], i % 3);
    sm_error err = {0};
    for (int i = 0; i < N; i++) sm_tokenize(v->t, texts[i], sizeof texts[i], 0, 1, &serial[i], &n_serial[i], &err);
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < N; i++) {
        sm_error e = {0};
        sm_tokenize(v->t, texts[i], sizeof texts[i], 0, 1, &parallel[i], &n_parallel[i], &e);
    }
    for (int i = 0; i < N; i++) {
        CHECK(n_serial[i] == n_parallel[i] && !memcmp(serial[i], parallel[i], (size_t)n_serial[i] * sizeof(int)),
              "%s: text %d tokenizes differently on threads", v->name, i);
        free(serial[i]);
        free(parallel[i]);
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    static const char *const names[] = {"gpt-2", "starcoder", "deepseek-coder", "llama-spm"};
    vocab v[4];
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/ggml-vocab-gpt-2.gguf", shared);
    if (access(path, R_OK)) {
        printf("skip: no tokenizer fixtures under %s/fixtures/tokenizers\n", shared);
        return 77;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/fixtures/tokenizers/ggml-vocab-%s.gguf", shared, names[i]);
        sm_error err = {0};
        sm_gguf *g = sm_gguf_open(path, &err);
        v[i].name = names[i];
        v[i].t = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
        sm_gguf_close(g);
        if (!v[i].t) {
            fprintf(stderr, "FAIL: %s: %s\n", path, err.msg);
            return 1;
        }
        v[i].spm = !strcmp(sm_tokenizer_model(v[i].t), "llama");
        for (int b = 0; b < 256; b++) {
            char c = (char)b, piece[16];
            int *ids, n, len = 0;
            sm_tokenize(v[i].t, &c, 1, 0, 0, &ids, &n, &err);
            for (int k = 0; k < n && len < 8; k++) len += sm_token_to_piece(v[i].t, ids[k], piece + len, 8, 0);
            v[i].byte_ok[b] = len == 1 + v[i].spm && piece[v[i].spm] == c;
            free(ids);
        }
    }

    enum { SMALL = 2048, BIG = 1 << 20, RUN = 50000 };
    char *buf = malloc(BIG);
    for (int i = 0; i < 4; i++) {
        /* Many small random inputs of each kind. */
        for (int k = 0; k < 150; k++) {
            size_t n = rnd() % SMALL;
            fill_random(buf, n, k % 3);
            run(&v[i], buf, n, rnd() % 2, 1, NULL);
        }
        /* Truncations of a multi-byte character and a special token at every length. */
        const char *edge = "<|endoftext|>\xf0\x9f\x98\x80<s>\xe2\x96\x81";
        for (size_t n = 0; n <= strlen(edge); n++) run(&v[i], edge, n, 1, 0, NULL);
        /* Long runs of one character. */
        static const char *const runs[] = {" ", "a", "\n", "7", "\xe2\x96\x81", "\xf0\x9f\x98\x80", "'", "\xff", "\t "};
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            size_t l = strlen(runs[r]), n = 0;
            while (n + l <= RUN) memcpy(buf + n, runs[r], l), n += l;
            run(&v[i], buf, n, 0, 1, NULL);
        }
        /* About 1 MB of text-like input, then of random bytes. */
        double secs;
        fill_random(buf, BIG, 1);
        int n_tok = run(&v[i], buf, BIG, 0, 1, &secs);
        printf("%-15s 1 MiB of text: %8d tokens in %6.3f s (%.2f M tokens/s, %.1f MB/s)\n", v[i].name, n_tok, secs,
               n_tok / secs / 1e6, BIG / secs / 1e6);
        fill_random(buf, BIG / 4, 0);
        n_tok = run(&v[i], buf, BIG / 4, 1, 0, &secs);
        printf("%-15s 256 KiB random bytes: %8d tokens in %6.3f s\n", v[i].name, n_tok, secs);
    }
    for (int i = 0; i < 4; i++) check_threads(&v[i]);
    fuzz_metadata();
    /* Every pre-tokenizer, including those no fixture uses, over random text and long runs: the
     * pieces must tile the input. */
    static const char *const pres[] = {"default", "gpt-2", "starcoder", "llama3", "qwen2", "deepseek-coder",
                                       "deepseek-llm", "deepseek-v3", "falcon", "bloom", "viking", "tekken", "dbrx"};
    for (size_t k = 0; k < sizeof pres / sizeof pres[0]; k++) {
        sm_error err = {0};
        sm_pretok *p = sm_pretok_new(pres[k], &err);
        CHECK(p, "%s: %s", pres[k], err.msg);
        if (!p) continue;
        for (int r = 0; r < 4; r++) {
            size_t n = BIG / 8;
            if (r < 3) fill_random(buf, n, r);
            else memset(buf, " \n\ta"[rnd() % 4], n);
            size_t *ends, n_pieces;
            int rc = sm_pretok_split(p, buf, n, &ends, &n_pieces, &err);
            CHECK(rc == 0 && n_pieces > 0 && ends[n_pieces - 1] == n, "%s: split of %zu bytes: %s", pres[k], n, err.msg);
            for (size_t i = 1; !rc && i < n_pieces; i++)
                if (ends[i] <= ends[i - 1]) {
                    CHECK(0, "%s: pieces out of order at %zu", pres[k], i);
                    break;
                }
            free(ends);
        }
        sm_pretok_free(p);
    }
    free(buf);
    for (int i = 0; i < 4; i++) sm_tokenizer_free(v[i].t);
    if (failures) {
        printf("test_fuzz_tokenizer: %d failures\n", failures);
        return 1;
    }
    printf("test_fuzz_tokenizer: all passed\n");
    return 0;
}
