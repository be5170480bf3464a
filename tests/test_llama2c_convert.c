/* test_llama2c_convert.c: `convert llama2c` on broken inputs: a header with zero, negative,
 * inconsistent or overflowing sizes, a checkpoint cut short anywhere or with bytes appended, and a
 * tokenizer.bin cut short, with a bad length or with trailing bytes. Each must fail with
 * SM_EFORMAT (or SM_EIO for a missing file), name the file, and leave no output behind. */
#include "llama2c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
static char dir[256], out_path[400];

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fclose(f);
}

static void put_i32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

/* Converts and expects failure with `code` and a message naming `bad` (the broken file). */
static void expect_fail(const char *what, const char *ckpt, const char *tok, const char *bad, int code) {
    sm_error err = {0};
    unlink(out_path);
    int rc = sm_llama2c_convert(ckpt, tok, out_path, NULL, &err);
    printf("%-34s -> %s\n", what, err.msg);
    if (rc != code || !strstr(err.msg, bad)) {
        fprintf(stderr, "FAIL: %s: rc %d (expected %d), message: %s\n", what, rc, code, err.msg);
        failures++;
    }
    if (access(out_path, F_OK) == 0) {
        fprintf(stderr, "FAIL: %s: an output file was left behind\n", what);
        failures++;
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char ckpt[512], tokbin[512], bad_ckpt[400], bad_tok[400];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tokbin, sizeof tokbin, "%s/fixtures/stories260K/tok512.bin", shared);
    if (access(ckpt, R_OK) || access(tokbin, R_OK)) { fprintf(stderr, "skip: %s not found\n", ckpt); return 77; }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sm_test_l2cc_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(out_path, sizeof out_path, "%s/out.gguf", dir);
    snprintf(bad_ckpt, sizeof bad_ckpt, "%s/bad_ckpt.bin", dir);
    snprintf(bad_tok, sizeof bad_tok, "%s/bad_tok.bin", dir);

    size_t n_ck, n_tok;
    unsigned char *ck = read_all(ckpt, &n_ck), *tk = read_all(tokbin, &n_tok);
    if (!ck || !tk) { fprintf(stderr, "FAIL: reading the fixtures\n"); return 1; }
    unsigned char *buf = malloc(n_ck + 64);

    /* the good pair converts */
    sm_error err = {0};
    if (sm_llama2c_convert(ckpt, tokbin, out_path, NULL, &err)) { fprintf(stderr, "FAIL: good input: %s\n", err.msg); failures++; }

    /* header fields: 0, negative, inconsistent, overflowing */
    static const struct { const char *what; int field; int32_t value; } header[] = {
        {"dim 0", 0, 0}, {"hidden_dim negative", 1, -5}, {"n_layers 0", 2, 0}, {"n_heads 7 (dim 64)", 3, 7},
        {"n_kv_heads 16 > n_heads", 4, 16}, {"n_kv_heads 3", 4, 3}, {"vocab_size 0", 5, 0}, {"seq_len negative", 6, -1},
        {"dim huge (overflow)", 0, 0x7ffffff0}, {"n_layers huge", 2, 0x7fffffff}, {"vocab INT32_MIN", 5, INT32_MIN},
        {"vocab 513 (size mismatch)", 5, 513}, {"vocab -512 (no wcls present)", 5, -512}, {"seq_len 1024", 6, 1024},
    };
    for (size_t i = 0; i < sizeof header / sizeof header[0]; i++) {
        memcpy(buf, ck, n_ck);
        put_i32(buf + 4 * header[i].field, header[i].value);
        write_all(bad_ckpt, buf, n_ck);
        expect_fail(header[i].what, bad_ckpt, tokbin, "bad_ckpt.bin", SM_EFORMAT);
    }
    /* cut short anywhere, or one byte too many */
    size_t cuts[] = {0, 3, 27, 28, 29, 1000, n_ck / 2, n_ck - 4 * 512 * 64 - 1, n_ck - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad_ckpt, ck, cuts[i]);
        char what[64];
        snprintf(what, sizeof what, "checkpoint cut at %zu", cuts[i]);
        expect_fail(what, bad_ckpt, tokbin, "bad_ckpt.bin", SM_EFORMAT);
    }
    memcpy(buf, ck, n_ck);
    buf[n_ck] = 0;
    write_all(bad_ckpt, buf, n_ck + 1);
    expect_fail("checkpoint with 1 extra byte", bad_ckpt, tokbin, "bad_ckpt.bin", SM_EFORMAT);
    expect_fail("missing checkpoint", "/nonexistent/ckpt.bin", tokbin, "/nonexistent/ckpt.bin", SM_EIO);

    /* tokenizer.bin */
    size_t tcuts[] = {0, 2, 4, 11, n_tok / 2, n_tok - 1};
    for (size_t i = 0; i < sizeof tcuts / sizeof tcuts[0]; i++) {
        write_all(bad_tok, tk, tcuts[i]);
        char what[64];
        snprintf(what, sizeof what, "tokenizer cut at %zu", tcuts[i]);
        expect_fail(what, ckpt, bad_tok, "bad_tok.bin", SM_EFORMAT);
    }
    unsigned char *tb = malloc(n_tok + 8);
    memcpy(tb, tk, n_tok);
    memcpy(tb + n_tok, "\0\0\0\0\0\0\0\0", 8);
    write_all(bad_tok, tb, n_tok + 8);
    expect_fail("tokenizer with trailing bytes", ckpt, bad_tok, "bad_tok.bin", SM_EFORMAT);
    memcpy(tb, tk, n_tok);
    put_i32(tb + 4 + 4, -1); /* token 0's length */
    write_all(bad_tok, tb, n_tok);
    expect_fail("tokenizer length -1", ckpt, bad_tok, "bad_tok.bin", SM_EFORMAT);
    put_i32(tb + 4 + 4, 1 << 30);
    write_all(bad_tok, tb, n_tok);
    expect_fail("tokenizer length 2^30", ckpt, bad_tok, "bad_tok.bin", SM_EFORMAT);
    memcpy(tb, tk, n_tok);
    put_i32(tb, 0);
    write_all(bad_tok, tb, n_tok);
    expect_fail("max_token_length 0", ckpt, bad_tok, "bad_tok.bin", SM_EFORMAT);

    free(tb), free(buf), free(ck), free(tk);
    unlink(out_path), unlink(bad_ckpt), unlink(bad_tok);
    rmdir(dir);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_llama2c_convert: ok\n");
    return 0;
}
