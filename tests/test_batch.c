/* test_batch: examples and packed batches (batch.h) over a byte-level vocabulary made here
 * (SentencePiece kind, only <unk>, <s>, </s> and the 256 byte tokens, so that every byte of text
 * is one token, id 3 + byte): prompt masked, completion and EOS in the loss, segment ids and
 * padding, rows that do not split an example, truncation (student-format cut and head keeping),
 * text chunks, deterministic shuffles and cursors, bad input. */
#include "batch.h"

#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...) do { \
    if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } \
} while (0)

enum { BOS = 1, EOS = 2 };
#define TOK(c) (3 + (unsigned char)(c))

static char dir[] = "/tmp/test_batch_XXXXXX";

static sm_tokenizer *byte_vocab(void) {
    const char *tokens[259];
    char names[256][8];
    float scores[259];
    int32_t types[259];
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int i = 0; i < 256; i++) {
        snprintf(names[i], sizeof names[i], "<0x%02X>", i);
        tokens[3 + i] = names[i];
        types[3 + i] = 6;
    }
    for (int i = 0; i < 259; i++) scores[i] = 0;
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_gguf_set_str(w, "general.architecture", "llama");
    sm_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 259);
    sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, scores, 259);
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, 259);
    sm_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", 0);
    char path[64];
    snprintf(path, sizeof path, "%s/vocab.gguf", dir);
    sm_error err = {0};
    if (sm_gguf_write(w, path, &err)) { printf("write vocab: %s\n", err.msg); exit(1); }
    sm_gguf_writer_free(w);
    sm_gguf *g = sm_gguf_open(path, &err);
    sm_tokenizer *t = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
    if (!t) { printf("vocab: %s\n", err.msg); exit(1); }
    sm_gguf_close(g);
    return t;
}

static const char *write_file(const char *name, const char *text) {
    static char path[8][96];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 96, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
    return p;
}

static int ex_len(const sm_examples *ex, int i) { return (int)(ex->off[i + 1] - ex->off[i]); }

static void test_masks_and_packing(const sm_tokenizer *tok) {
    const char *path = write_file("a.jsonl",
                                  "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n"
                                  "\n"
                                  "{\"prompt\": \"x\", \"completion\": \"y\"}\n"
                                  "{\"prompt\": \"pqrs\", \"completion\": \"\"}\n");
    sm_examples *ex = NULL;
    sm_error err = {0};
    int rc = sm_examples_from_jsonl(&ex, path, tok, 16, &err);
    CHECK(rc == 0, "from_jsonl: %s", err.msg);
    if (rc) return;
    CHECK(ex->n == 3, "3 examples, got %d", ex->n);
    /* [BOS a b c d EOS], the prompt BOS a b */
    int want0[] = {BOS, TOK('a'), TOK('b'), TOK('c'), TOK('d'), EOS};
    CHECK(ex_len(ex, 0) == 6 && !memcmp(ex->tokens + ex->off[0], want0, sizeof want0), "example 0 tokens");
    CHECK(ex->n_prompt[0] == 3, "example 0 n_prompt 3, got %d", ex->n_prompt[0]);
    CHECK(ex_len(ex, 2) == 6 && ex->n_prompt[2] == 5, "empty completion: only EOS is a target");
    CHECK(ex->n_targets == 3 + 2 + 1, "targets 6, got %zu", ex->n_targets);

    /* rows of 8: row 0 = example 0 (5 positions) + padding, as example 1 (3 positions) fits:
     * 5 + 3 = 8 fills it; row 1 = example 2 (5) + padding */
    sm_batcher *b = sm_batcher_new(ex, 2, 8, 0, 0, &err);
    CHECK(b, "batcher: %s", err.msg);
    const sm_batch *bt;
    CHECK(sm_batcher_next(b, &bt) == 1, "a batch");
    int tok0[] = {BOS, TOK('a'), TOK('b'), TOK('c'), TOK('d'), BOS, TOK('x'), TOK('y')};
    int tgt0[] = {-1, -1, TOK('c'), TOK('d'), EOS, -1, TOK('y'), EOS};
    int seg0[] = {0, 0, 0, 0, 0, 1, 1, 1};
    CHECK(!memcmp(bt->tokens, tok0, sizeof tok0), "row 0 tokens");
    CHECK(!memcmp(bt->targets, tgt0, sizeof tgt0), "row 0 targets: prompt masked, EOS a target");
    CHECK(!memcmp(bt->seg, seg0, sizeof seg0), "row 0 segments");
    int tok1[] = {BOS, TOK('p'), TOK('q'), TOK('r'), TOK('s')};
    int tgt1[] = {-1, -1, -1, -1, EOS, -1, -1, -1};
    int seg1[] = {0, 0, 0, 0, 0, 1, 1, 1};
    CHECK(!memcmp(bt->tokens + 8, tok1, sizeof tok1), "row 1 tokens");
    CHECK(!memcmp(bt->targets + 8, tgt1, sizeof tgt1), "row 1 targets and padding");
    CHECK(!memcmp(bt->seg + 8, seg1, sizeof seg1), "row 1: padding has its own segment");
    CHECK(bt->n_targets == 6 && bt->n_tokens == 13 && bt->n_examples == 3, "counts %d %d %d", bt->n_targets,
          bt->n_tokens, bt->n_examples);
    CHECK(sm_batcher_next(b, &bt) == 0, "one pass without shuffling");
    sm_batcher_rewind(b);
    CHECK(sm_batcher_next(b, &bt) == 1 && bt->tokens[0] == BOS, "rewind");
    sm_batcher_free(b);

    /* an example that does not fit a row is refused */
    b = sm_batcher_new(ex, 1, 4, 0, 0, &err);
    CHECK(!b && err.code == SM_EINVAL, "too long for T: %s", err.msg);
    sm_examples_free(ex);
}

static void test_truncation(const sm_tokenizer *tok) {
    /* a student-format prompt: the code loses lines, the marker line stays, the cut is marked */
    char code[2048] = "";
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof line, "line %02d of the code\\n", i);
        strcat(code, line);
    }
    char rec[4096];
    snprintf(rec, sizeof rec, "{\"prompt\": \"Language: c\\nCode:\\n%s\\n### Title:\\n\", \"completion\": \"Parse it\"}\n", code);
    const char *path = write_file("long.jsonl", rec);
    sm_examples *ex = NULL;
    sm_error err = {0};
    int rc = sm_examples_from_jsonl(&ex, path, tok, 200, &err);
    CHECK(rc == 0, "long: %s", err.msg);
    if (rc) return;
    CHECK(ex->n_cut == 1 && ex_len(ex, 0) <= 200 && ex_len(ex, 0) > 150, "cut to fit: %d tokens, %d cut", ex_len(ex, 0), ex->n_cut);
    char *text = NULL;
    size_t len = 0;
    sm_detokenize(tok, ex->tokens + ex->off[0], ex_len(ex, 0), 0, &text, &len, &err);
    /* this vocabulary has no U+2581 token: SentencePiece's space marker comes back as such */
    for (char *s = text ? strstr(text, "\xe2\x96\x81") : NULL; s; s = strstr(s, "\xe2\x96\x81")) {
        *s = ' ';
        memmove(s + 1, s + 3, strlen(s + 3) + 1);
        len -= 2;
    }
    const char *tail = "\n### Title:\nParse it";
    CHECK(text && strstr(text, "Language: c\nCode:\nline 00 of the code\n"), "the head of the code is kept: %s", text);
    CHECK(text && strstr(text, "more lines cut ...]\n### Title:\nParse it"), "cut line and marker: %s", text);
    CHECK(text && len >= strlen(tail) && !strcmp(text + len - strlen(tail), tail), "ends with the completion");
    int np = ex->n_prompt[0];
    CHECK(ex->tokens[ex->off[0] + np] == TOK('P') && ex->tokens[ex->off[1] - 1] == EOS, "completion and EOS after the prompt");
    free(text);
    sm_examples_free(ex);

    /* any other prompt keeps its head, the completion whole */
    char big[1024];
    memset(big, 'z', 300);
    memcpy(big, "HEAD", 4);
    big[300] = 0;
    snprintf(rec, sizeof rec, "{\"prompt\": \"%s\", \"completion\": \"tail\"}\n", big);
    path = write_file("long2.jsonl", rec);
    rc = sm_examples_from_jsonl(&ex, path, tok, 64, &err);
    CHECK(rc == 0 && ex->n == 1 && ex_len(ex, 0) == 64, "head kept: %s", err.msg);
    if (rc) return;
    const int *x = ex->tokens;
    CHECK(x[0] == BOS && x[1] == TOK('H') && x[4] == TOK('D'), "prompt head");
    CHECK(x[59] == TOK('t') && x[62] == TOK('l') && x[63] == EOS, "completion and EOS kept");
    CHECK(ex->n_prompt[0] == 59, "n_prompt %d", ex->n_prompt[0]);
    sm_examples_free(ex);
}

static void test_text(const sm_tokenizer *tok) {
    const char *a = write_file("doc1.txt", "0123456789abcd"); /* 1 + 14 + 1 = 16 tokens */
    const char *b = write_file("doc2.txt", "xy");             /* 4 tokens */
    const char *paths[] = {a, b};
    sm_examples *tr = NULL, *va = NULL;
    sm_error err = {0};
    int rc = sm_examples_from_text(&tr, &va, paths, 2, tok, 8, 3, &err);
    CHECK(rc == 0, "text: %s", err.msg);
    if (rc) return;
    /* chunks of 8 overlapping by one: [0,8) [7,15) [14,16); then doc2; every 3rd to validation */
    CHECK(tr->n == 3 && va->n == 1, "chunks %d + %d", tr->n, va->n);
    CHECK(ex_len(tr, 0) == 8 && tr->tokens[0] == BOS && tr->tokens[7] == TOK('6'), "chunk 0");
    CHECK(ex_len(tr, 1) == 8 && tr->tokens[tr->off[1]] == TOK('6'), "chunk 1 starts at chunk 0's last token");
    CHECK(ex_len(va, 0) == 2 && va->tokens[1] == EOS, "chunk 2 (validation) ends with EOS");
    CHECK(ex_len(tr, 2) == 4 && tr->n_prompt[2] == 0, "doc2 whole");
    CHECK(tr->n_targets == 7 + 7 + 3, "every token but the first is a target: %zu", tr->n_targets);
    sm_examples_free(tr);
    sm_examples_free(va);
}

static void test_shuffle(const sm_tokenizer *tok) {
    enum { N = 1000 };
    uint32_t p[N], q[N];
    sm_shuffle_order(p, N, 7, 0);
    sm_shuffle_order(q, N, 7, 0);
    CHECK(!memcmp(p, q, sizeof p), "same seed and epoch, same order");
    int seen[N] = {0}, moved = 0;
    for (int i = 0; i < N; i++) { seen[p[i]]++; moved += p[i] != (uint32_t)i; }
    int perm = 1;
    for (int i = 0; i < N; i++) perm &= seen[i] == 1;
    CHECK(perm && moved > N / 2, "a permutation that moves most (%d)", moved);
    sm_shuffle_order(q, N, 7, 1);
    CHECK(memcmp(p, q, sizeof p), "another epoch, another order");
    sm_shuffle_order(q, N, 8, 0);
    CHECK(memcmp(p, q, sizeof p), "another seed, another order");
    /* the first elements of (seed 7, epoch 0), pinned so that a change of the shuffle shows */
    printf("shuffle(seed 7, epoch 0)[0..4] = %u %u %u %u %u\n", p[0], p[1], p[2], p[3], p[4]);
    CHECK(p[0] == 135 && p[1] == 619 && p[2] == 42 && p[3] == 542 && p[4] == 122, "the pinned order");

    /* batches from a cursor are the batches that followed it */
    char recs[8192] = "";
    for (int i = 0; i < 50; i++) {
        char r[96];
        snprintf(r, sizeof r, "{\"prompt\": \"p%d\", \"completion\": \"%*d\"}\n", i, 1 + i % 7, i);
        strcat(recs, r);
    }
    const char *path = write_file("many.jsonl", recs);
    sm_examples *ex = NULL;
    sm_error err = {0};
    if (sm_examples_from_jsonl(&ex, path, tok, 32, &err)) { CHECK(0, "many: %s", err.msg); return; }
    sm_batcher *a = sm_batcher_new(ex, 3, 32, 1, 42, &err), *b = sm_batcher_new(ex, 3, 32, 1, 42, &err);
    const sm_batch *ba, *bb;
    sm_batch_cursor mid = {0};
    int same = 1;
    for (int k = 0; k < 40; k++) { /* several epochs */
        sm_batcher_next(a, &ba);
        if (k == 17) mid = sm_batcher_cursor(a);
    }
    CHECK(sm_batcher_cursor(a).epoch >= 2, "ran into epoch %llu", (unsigned long long)sm_batcher_cursor(a).epoch);
    sm_batcher_free(a);
    a = sm_batcher_new(ex, 3, 32, 1, 42, &err);
    for (int k = 0; k < 18; k++) sm_batcher_next(a, &ba);
    CHECK(sm_batcher_seek(b, mid, &err) == 0, "seek");
    for (int k = 0; k < 20; k++) {
        sm_batcher_next(a, &ba);
        int tok_a[96], tgt_a[96], seg_a[96];
        memcpy(tok_a, ba->tokens, sizeof tok_a);
        memcpy(tgt_a, ba->targets, sizeof tgt_a);
        memcpy(seg_a, ba->seg, sizeof seg_a);
        sm_batcher_next(b, &bb);
        same &= !memcmp(tok_a, bb->tokens, sizeof tok_a) && !memcmp(tgt_a, bb->targets, sizeof tgt_a) &&
                !memcmp(seg_a, bb->seg, sizeof seg_a);
    }
    CHECK(same, "batches after a seek equal those of the uninterrupted batcher");
    sm_batch_cursor bad = {0, 51};
    CHECK(sm_batcher_seek(b, bad, &err) == SM_EINVAL, "a cursor past the end is refused");
    sm_batcher_free(a);
    sm_batcher_free(b);
    sm_examples_free(ex);
}

static void test_bad_input(const sm_tokenizer *tok) {
    sm_examples *ex = NULL;
    sm_error err = {0};
    const char *path = write_file("bad.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n");
    int rc = sm_examples_from_jsonl(&ex, path, tok, 16, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "bad.jsonl:2:") && strstr(err.msg, "completion"), "missing field: %s", err.msg);
    path = write_file("bad2.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n");
    rc = sm_examples_from_jsonl(&ex, path, tok, 16, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, ":2"), "not JSON: %s", err.msg);
    path = write_file("empty.jsonl", "\n");
    rc = sm_examples_from_jsonl(&ex, path, tok, 16, &err);
    CHECK(rc == SM_EFORMAT, "no examples: %s", err.msg);
    rc = sm_examples_from_jsonl(&ex, "/nonexistent/x.jsonl", tok, 16, &err);
    CHECK(rc == SM_EIO, "missing file: %s", err.msg);
    CHECK(ex == NULL, "no result on error");
}

int main(void) {
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    sm_tokenizer *tok = byte_vocab();
    test_masks_and_packing(tok);
    test_truncation(tok);
    test_text(tok);
    test_shuffle(tok);
    test_bad_input(tok);
    sm_tokenizer_free(tok);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (failures) {
        printf("test_batch: %d FAILED\n", failures);
        return 1;
    }
    printf("test_batch: all ok\n");
    return 0;
}
