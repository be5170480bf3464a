/* test_constrain.c: constrained decoding over real vocabularies (StarCoder's byte-level BPE and
 * llama's SentencePiece): the token trie's allowed set equals a brute-force scan of the whole
 * vocabulary from many states; random walks through the allowed sets always end in a valid
 * output (items from the set, no duplicates, the required first item, counts within limits,
 * passing the task checks); dead ends never happen; files with bad lines are refused. */
#include "constrain.h"
#include "gguf.h"
#include "sample.h"
#include "tasks.h"

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

static const char *tags[] = {"python", "c", "go", "sorting", "algorithm", "algorithms", "string-parsing", "http",
                             "http-client", "http-server", "file-io", "recursion", "data-structures", "linked-list",
                             "testing", "json", "regex", "concurrency", "cli", "c-api", "a"};
static const char *links[] = {"https://docs.python.org/3/library/functions.html#sorted",
                              "https://docs.python.org/3/library/json.html", "https://docs.python.org/3/library/re.html",
                              "https://go.dev/doc/effective_go", "https://en.cppreference.com/w/c/string/byte/strlen",
                              "https://en.cppreference.com/w/c/string/byte/strlen2", "http://example.com/"};

/* The tokens whose text advances s without leaving the language, by scanning every token. */
static int brute_allowed(const sm_tokenizer *tok, const sm_constraint *c, const char *first,
                         const sm_constraint_state *s, unsigned char *mark) {
    int n_vocab = sm_tokenizer_n_vocab(tok), n = 0;
    char piece[256];
    for (int id = 0; id < n_vocab; id++) {
        mark[id] = 0;
        int len = sm_token_to_piece(tok, id, piece, sizeof piece, 0);
        if (len <= 0 || len > (int)sizeof piece) continue;
        sm_constraint_state t = *s;
        if (sm_constraint_advance(c, first, &t, piece, len) == 0) mark[id] = 1, n++;
    }
    return n;
}

/* Random walks: from the start, choose uniformly among the allowed tokens and the end; the
 * finished text must pass the task's check and hold only set items. Every few steps the trie's
 * allowed set is compared with the brute-force one. */
static void walks(const char *vocab_name, const sm_tokenizer *tok, const sm_constraint *c, const char *first,
                  sm_task task, const char *sep, int n_walks, uint64_t seed) {
    int n_vocab = sm_tokenizer_n_vocab(tok);
    int *allowed = malloc((size_t)n_vocab * sizeof *allowed);
    unsigned char *mark = malloc((size_t)n_vocab);
    uint64_t rng = seed;
    int compared = 0, total_steps = 0, ended_empty = 0;
    char text[4096], piece[256];
    for (int w = 0; w < n_walks; w++) {
        sm_constraint_state s;
        sm_constraint_start(c, first, &s);
        size_t len = 0;
        text[0] = 0;
        for (int step = 0;; step++) {
            int can_end = 0;
            int n = sm_constraint_allowed(c, first, &s, allowed, &can_end);
            if (step % 3 == 0 && compared < 400) {
                int nb = brute_allowed(tok, c, first, &s, mark);
                int same = nb == n;
                for (int i = 0; i < n && same; i++) same = mark[allowed[i]];
                CHECK(same, "%s: walk %d step %d after '%s': trie allows %d tokens, the vocabulary scan %d", vocab_name, w,
                      step, text, n, nb);
                compared++;
            }
            CHECK(n > 0 || can_end, "%s: dead end after '%s'", vocab_name, text);
            if (n == 0 || (can_end && sm_rng_next(&rng) % 4 == 0)) break;
            int id = allowed[sm_rng_next(&rng) % (uint64_t)n];
            int plen = sm_token_to_piece(tok, id, piece, sizeof piece, 0);
            CHECK(sm_constraint_advance(c, first, &s, piece, plen) == 0, "%s: allowed token %d does not advance", vocab_name, id);
            if (len + (size_t)plen >= sizeof text) break;
            memcpy(text + len, piece, (size_t)plen);
            len += (size_t)plen;
            text[len] = 0;
            total_steps++;
            CHECK(step < 1000, "%s: walk does not end", vocab_name);
            if (step >= 1000) break;
        }
        CHECK(sm_constraint_accepts(c, first, &s), "%s: walk ended in a state that does not accept: '%s'", vocab_name, text);
        char reason[SM_REASON_MAX] = "";
        CHECK(sm_check_completion(task, text, first, reason) == 0, "%s: '%s' fails the %s check: %s", vocab_name, text,
              sm_task_name(task), reason);
        /* every item is a set member (or the first item) */
        char *copy = strdup(text), *save = NULL;
        int k = 0;
        for (char *item = copy; *item;) {
            char *e = strstr(item, sep);
            if (e) *e = 0;
            int known = k == 0 && first && !strcmp(item, first);
            for (int i = 0; !known && i < sm_constraint_size(c); i++) known = !strcmp(item, sm_constraint_item(c, i));
            CHECK(known, "%s: item '%s' of '%s' is not in the set", vocab_name, item, text);
            k++;
            if (!e) break;
            item = e + strlen(sep);
        }
        (void)save;
        ended_empty += len == 0;
        free(copy);
    }
    printf("%-10s %-6s %d walks, %d tokens, %d allowed sets compared with a vocabulary scan, %d empty\n", vocab_name,
           sm_task_name(task), n_walks, total_steps, compared, ended_empty);
    free(allowed);
    free(mark);
}

static void check_vocab(const char *shared, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s", shared, file);
    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(path, &err);
    if (!g) { fprintf(stderr, "FAIL: %s\n", err.msg); failures++; return; }
    sm_tokenizer *tok = sm_tokenizer_from_gguf(g, &err);
    sm_gguf_close(g);
    if (!tok) { fprintf(stderr, "FAIL: %s\n", err.msg); failures++; return; }
    int n_tags = sizeof tags / sizeof tags[0], n_links = sizeof links / sizeof links[0];
    sm_constraint *ct = sm_constraint_new(tok, tags, n_tags, ", ", 1, 6, &err);
    sm_constraint *cl = sm_constraint_new(tok, links, n_links, "\n", 0, 3, &err);
    CHECK(ct && cl, "constraints: %s", err.msg);
    if (ct && cl) {
        CHECK(sm_constraint_size(ct) == n_tags, "tags: %d items, expected %d", sm_constraint_size(ct), n_tags);
        printf("%-10s token tries: tags %zu bytes, links %zu bytes\n", file, sm_constraint_bytes(ct), sm_constraint_bytes(cl));
        walks(file, tok, ct, "python", SM_TASK_TAGS, ", ", 300, 1);
        walks(file, tok, ct, "rust", SM_TASK_TAGS, ", ", 100, 2); /* a language outside the set */
        walks(file, tok, cl, NULL, SM_TASK_LINKS, "\n", 200, 3);

        /* hand-checked states */
        sm_constraint_state s;
        sm_constraint_start(ct, "go", &s);
        CHECK(!sm_constraint_accepts(ct, "go", &s), "tags: the empty output is accepted");
        CHECK(sm_constraint_advance(ct, "go", &s, "py", 2) != 0, "tags: 'py' accepted where the first tag must be go");
        sm_constraint_start(ct, "go", &s);
        CHECK(sm_constraint_advance(ct, "go", &s, "go, go", 6) != 0, "tags: a duplicate of the language accepted");
        sm_constraint_start(ct, "go", &s);
        CHECK(sm_constraint_advance(ct, "go", &s, "go, http", 8) == 0 && sm_constraint_accepts(ct, "go", &s), "tags: 'go, http' refused");
        CHECK(sm_constraint_advance(ct, "go", &s, "-", 1) == 0 && !sm_constraint_accepts(ct, "go", &s), "tags: 'go, http-' wrong");
        CHECK(sm_constraint_advance(ct, "go", &s, ", http", 6) != 0, "tags: 'http' twice accepted");
        sm_constraint_start(ct, "go", &s);
        CHECK(sm_constraint_advance(ct, "go", &s, "go, a, c, cli, json, regex", 26) == 0 && sm_constraint_accepts(ct, "go", &s), "tags: six tags refused");
        CHECK(sm_constraint_advance(ct, "go", &s, ", ", 2) != 0, "tags: a seventh tag allowed");
        sm_constraint_start(cl, NULL, &s);
        CHECK(sm_constraint_accepts(cl, NULL, &s), "links: no links refused");
        CHECK(sm_constraint_advance(cl, NULL, &s, "https://evil.example/", 21) != 0, "links: an invented URL accepted");
    }
    sm_constraint_free(ct);
    sm_constraint_free(cl);

    /* only the language, an empty set: "go" then end */
    sm_constraint *empty = sm_constraint_new(tok, NULL, 0, ", ", 1, 6, &err);
    CHECK(empty != NULL, "empty set: %s", err.msg);
    if (empty) {
        sm_constraint_state s;
        sm_constraint_start(empty, "go", &s);
        CHECK(sm_constraint_advance(empty, "go", &s, "go", 2) == 0 && sm_constraint_accepts(empty, "go", &s), "empty set: the language refused");
        CHECK(sm_constraint_advance(empty, "go", &s, ",", 1) != 0, "empty set: a separator allowed with nothing to follow");
        walks(file, tok, empty, "go", SM_TASK_TAGS, ", ", 20, 4);
    }
    sm_constraint_free(empty);
    /* bad items */
    const char *bad[] = {"ok", "has, comma"};
    CHECK(sm_constraint_new(tok, bad, 2, ", ", 1, 6, &err) == NULL && err.code == SM_EINVAL, "an item with the separator accepted");
    CHECK(sm_constraint_new(tok, bad, 1, ", ", 2, 1, &err) == NULL, "min > max accepted");
    sm_tokenizer_free(tok);
}

static void check_files(const char *shared) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(path, &err);
    sm_tokenizer *tok = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
    sm_gguf_close(g);
    if (!tok) { fprintf(stderr, "FAIL: %s\n", err.msg); failures++; return; }
    char dir[] = "/tmp/test_constrain.XXXXXX";
    if (!mkdtemp(dir)) { fprintf(stderr, "FAIL: mkdtemp\n"); failures++; sm_tokenizer_free(tok); return; }
    char file[4200];
    snprintf(file, sizeof file, "%s/tags.txt", dir);
    FILE *f = fopen(file, "w");
    fprintf(f, "python\n\n  sorting  \r\nhttp\npython\n");
    fclose(f);
    sm_constraint *c = sm_constraint_load(tok, file, ", ", 1, 6, &err);
    CHECK(c && sm_constraint_size(c) == 3, "tags.txt: %d items (expected 3, blank lines, spaces and duplicates dropped): %s",
          c ? sm_constraint_size(c) : -1, err.msg);
    CHECK(c && !strcmp(sm_constraint_item(c, 2), "sorting"), "tags.txt: items not sorted or not trimmed");
    sm_constraint_free(c);
    f = fopen(file, "w");
    fprintf(f, "python\nbad, tag\n");
    fclose(f);
    c = sm_constraint_load(tok, file, ", ", 1, 6, &err);
    CHECK(!c && err.code == SM_EFORMAT && strstr(err.msg, ":2:"), "a line with the separator: %s", err.msg);
    sm_constraint_free(c);
    unlink(file);
    c = sm_constraint_load(tok, file, ", ", 1, 6, &err);
    CHECK(!c && err.code == SM_EIO, "a missing file: %s", err.msg);
    rmdir(dir);
    sm_tokenizer_free(tok);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    if (access(probe, R_OK) != 0) { printf("test_constrain: skipped (no %s)\n", probe); return 77; }
    check_vocab(shared, "ggml-vocab-starcoder.gguf");
    check_vocab(shared, "ggml-vocab-llama-spm.gguf");
    check_files(shared);
    if (failures) { printf("test_constrain: %d FAILED\n", failures); return 1; }
    printf("test_constrain: ok\n");
    return 0;
}
