/* test_llama2c_encode.c: the GGUF vocabulary that `convert llama2c` writes, tokenized by the
 * library (sm_tokenize), against llama2.c's own encode() over tok512.bin (tests/ref), for
 * stories text, punctuation, digits, whitespace, unicode with byte fallback, and the empty
 * string; and the converter's token table (U+2581, BOS/EOS texts, token types). */
#include "gguf.h"
#include "llama2c.h"
#include "tokenizer.h"

#include "ref/llama2c_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
            failures++;                                           \
        }                                                         \
    } while (0)

static const char *const texts[] = {
    "",
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.",
    "One day, a big dog saw a red ball. The dog was happy! He ran and ran...",
    "Tom and Sue went to the store to buy some milk and eggs for their mom.",
    "The end.",
    "hello",
    " hello",
    "  two leading spaces",
    "trailing space ",
    "a  b   c    d",
    " ",
    "   ",
    "\n",
    "line one\nline two\n\nline four",
    "tab\there",
    "1234567890 42 3.14159 -7 +8 1,000,000",
    "!@#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9",              /* é ï: byte fallback or codepoints */
    "\xe4\xb8\xad\xe6\x96\x87 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", /* CJK */
    "emoji \xf0\x9f\x98\x80 and \xe2\x84\xa2 trade mark",
    "\xe2\x80\x8a hair space",
    "UPPER lower MiXeD CaSe",
    "Why? Because! Yes: no; maybe...",
    "She said \"hi\" and he said 'bye'.",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "theretherethere the the the",
};

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char ckpt[512], tokbin[512], dir[256], gguf[400];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tokbin, sizeof tokbin, "%s/fixtures/stories260K/tok512.bin", shared);
    if (access(ckpt, R_OK) || access(tokbin, R_OK)) { fprintf(stderr, "skip: %s not found\n", ckpt); return 77; }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sm_test_l2c_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(gguf, sizeof gguf, "%s/stories260K.gguf", dir);

    sm_error err = {0};
    sm_llama2c_config cfg;
    if (sm_llama2c_convert(ckpt, tokbin, gguf, &cfg, &err)) { fprintf(stderr, "FAIL: convert: %s\n", err.msg); return 1; }
    sm_gguf *g = sm_gguf_open(gguf, &err);
    sm_tokenizer *tok = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
    if (!tok) { fprintf(stderr, "FAIL: %s\n", err.msg); return 1; }
    ref_tokenizer ref = {0};
    if (ref_tokenizer_load(&ref, tokbin, cfg.vocab_size)) { fprintf(stderr, "FAIL: reading %s\n", tokbin); return 1; }

    /* the token table */
    int64_t k_tok = sm_gguf_find_key(g, "tokenizer.ggml.tokens"), k_type = sm_gguf_find_key(g, "tokenizer.ggml.token_type");
    CHECK(k_tok >= 0 && sm_gguf_arr_n(g, k_tok) == 512, "tokenizer.ggml.tokens should hold 512 tokens");
    if (k_tok >= 0 && k_type >= 0) {
        const int32_t *types = sm_gguf_arr_data(g, k_type);
        uint64_t len;
        CHECK(!strcmp(sm_gguf_arr_str(g, k_tok, 1, &len), "<s>") && types[1] == 3, "token 1 should be <s>, CONTROL");
        CHECK(!strcmp(sm_gguf_arr_str(g, k_tok, 2, &len), "</s>") && types[2] == 3, "token 2 should be </s>, CONTROL");
        CHECK(!strcmp(sm_gguf_arr_str(g, k_tok, 0, &len), "<unk>") && types[0] == 2, "token 0 should be <unk>, UNKNOWN");
        CHECK(!strcmp(sm_gguf_arr_str(g, k_tok, 3 + 0x41, &len), "<0x41>") && types[3 + 0x41] == 6, "token 68 should be <0x41>, BYTE");
        int spaces = 0;
        for (int i = 0; i < 512; i++) {
            const char *s = sm_gguf_arr_str(g, k_tok, (uint64_t)i, &len);
            spaces += memchr(s, ' ', len) != NULL;
            if (strchr(ref.text[i], ' ')) CHECK(strstr(s, "\xe2\x96\x81"), "token %d '%s' lost its U+2581", i, ref.text[i]);
        }
        CHECK(spaces == 0, "%d tokens still hold a plain space", spaces);
    }

    /* encode against llama2.c's */
    int n_texts = (int)(sizeof texts / sizeof texts[0]), matched = 0;
    for (int i = 0; i < n_texts; i++) {
        const char *text = texts[i];
        int *want = malloc((strlen(text) + 3) * sizeof *want), *got = NULL, n_got = 0;
        int n_want = ref_encode(&ref, text, want);
        err = (sm_error){0};
        int rc = sm_tokenize(tok, text, strlen(text), 1, 0, &got, &n_got, &err);
        int same = !rc && n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want);
        matched += same;
        if (!same) {
            fprintf(stderr, "FAIL: \"%s\": rc %d %s\n  llama2.c:", text, rc, err.msg);
            for (int j = 0; j < n_want; j++) fprintf(stderr, " %d", want[j]);
            fprintf(stderr, "\n  snipmeta:");
            for (int j = 0; j < n_got; j++) fprintf(stderr, " %d", got[j]);
            fprintf(stderr, "\n");
            failures++;
        }
        free(want);
        free(got);
    }
    printf("encode: %d of %d texts tokenized exactly as llama2.c does\n", matched, n_texts);

    ref_tokenizer_free(&ref);
    sm_tokenizer_free(tok);
    sm_gguf_close(g);
    unlink(gguf);
    rmdir(dir);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_llama2c_encode: ok\n");
    return 0;
}
