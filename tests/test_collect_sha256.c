/* test_collect_sha256.c: SHA-256 against the FIPS 180-4 example vectors (one-shot and fed in
 * odd-sized pieces), and the snippet id against every id in ../shared/data/labels.jsonl.
 * argv[1] is the ../shared folder; without labels.jsonl the id check is skipped (the vectors
 * still run). */
#include "sha256.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check_vector(const char *msg, size_t repeat, const char *want) {
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    size_t len = strlen(msg);
    for (size_t r = 0; r < repeat; r++) {
        /* feed in pieces of 1, 2, 3, ... bytes to exercise the partial-block path */
        size_t off = 0, step = 1;
        while (off < len) {
            size_t n = off + step > len ? len - off : step;
            sm_sha256_update(&h, msg + off, n);
            off += n;
            step = step % 70 + 1;
        }
    }
    uint8_t d[32];
    char hex[65];
    sm_sha256_final(&h, d);
    sm_sha256_hex(hex, d);
    if (strcmp(hex, want)) {
        fprintf(stderr, "FAIL sha256(\"%.20s\" x%zu) = %s, want %s\n", msg, repeat, hex, want);
        failures++;
    }
    if (repeat == 1) {
        sm_sha256(d, msg, len);
        sm_sha256_hex(hex, d);
        if (strcmp(hex, want)) { fprintf(stderr, "FAIL one-shot sha256(\"%.20s\")\n", msg); failures++; }
    }
}

static void check_ids(const char *shared) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/labels.jsonl", shared);
    FILE *f = fopen(path, "r");
    if (!f) { printf("skip id check: %s not found\n", path); return; }
    char *line = NULL;
    size_t cap = 0;
    long n = 0, bad = 0, lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        const char *code = json_string_value(json_object_get(o, "code"));
        const char *want = json_string_value(json_object_get(o, "id"));
        if (!code || !want) { fprintf(stderr, "FAIL %s:%ld: no code or id\n", path, lineno); failures++; json_decref(o); continue; }
        char id[17];
        sm_snippet_id(id, code, json_string_length(json_object_get(o, "code")));
        if (strcmp(id, want)) {
            if (bad++ < 5) fprintf(stderr, "FAIL %s:%ld: id %s, want %s\n", path, lineno, id, want);
            failures++;
        }
        n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    printf("snippet ids: %ld of %ld match\n", n - bad, n);
}

int main(int argc, char **argv) {
    check_vector("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_vector("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check_vector("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    char id[17];
    const char *spaced = "  int  f()\n{\treturn 1; }\n";
    sm_snippet_id(id, spaced, strlen(spaced));
    char id2[17];
    sm_snippet_id(id2, "int f() { return 1; }", strlen("int f() { return 1; }"));
    if (strcmp(id, id2)) { fprintf(stderr, "FAIL whitespace normalisation: %s vs %s\n", id, id2); failures++; }
    if (argc > 1) check_ids(argv[1]);
    if (failures) { fprintf(stderr, "%d failures\n", failures); return 1; }
    printf("sha256: all vectors pass\n");
    return 0;
}
