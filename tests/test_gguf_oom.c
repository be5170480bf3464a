/* test_gguf_oom.c: the GGUF reader and writer when allocations fail (SQLite-style fault simulation).
 *
 * This program replaces malloc, calloc, realloc and free (glibc allows it; they forward to
 * __libc_malloc and friends) to make the k-th allocation fail, for every k until an operation
 * succeeds untouched. Each run must either succeed or fail with an error code (never crash),
 * and must free everything it allocated: the count of live blocks returns to where it was.
 * Sanitizer builds (which own malloc) skip it with exit 77.
 */
#include "gguf.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
int main(void) {
    printf("skip: the allocator is the sanitizer's in this build\n");
    return 77;
}
#else

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static long fail_at = -1; /* the allocation (counted from 0 once armed) that fails; -1: none */
static long n_allocs;     /* allocations since armed */
static long live;         /* blocks allocated and not yet freed while armed */
static int armed;

static int should_fail(void) {
    if (!armed) return 0;
    return n_allocs++ == fail_at;
}

void *malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = __libc_malloc(n);
    if (p && armed) live++;
    return p;
}

void *calloc(size_t n, size_t m) {
    if (should_fail()) return NULL;
    void *p = __libc_calloc(n, m);
    if (p && armed) live++;
    return p;
}

void *realloc(void *old, size_t n) {
    if (should_fail()) return NULL;
    void *p = __libc_realloc(old, n);
    if (p && !old && armed) live++;
    return p;
}

void free(void *p) {
    if (p && armed) live--;
    __libc_free(p);
}

static int failures;
static char tmp_dir[] = "/tmp/test_gguf_oom.XXXXXX";

static void arm(long k) { n_allocs = 0, live = 0, fail_at = k, armed = 1; }
static void disarm(void) { armed = 0; }

/* A small file with arrays of numbers and strings and two tensors. */
static sm_gguf_writer *make_writer(const float *w32, const sm_block_q8_0 *q8) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (!w) return NULL;
    const char *tokens[] = {"<s>", "</s>", "", "hello"};
    const int32_t types[] = {3, 3, 1, 1};
    int rc = sm_gguf_set_str(w, "general.architecture", "llama");
    if (!rc) rc = sm_gguf_set_u32(w, "llama.block_count", 1);
    if (!rc) rc = sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 4);
    if (!rc) rc = sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, 4);
    if (!rc) rc = sm_gguf_set_alignment(w, 64);
    if (!rc) rc = sm_gguf_add_tensor(w, "output_norm.weight", SM_TYPE_F32, 1, (int64_t[]){8}, w32);
    if (!rc) rc = sm_gguf_add_tensor(w, "output.weight", SM_TYPE_Q8_0, 2, (int64_t[]){32, 1}, q8);
    if (rc) {
        if (rc != SM_ENOMEM) { failures++; fprintf(stderr, "FAIL: building the writer gave %d, not SM_ENOMEM\n", rc); }
        sm_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

int main(void) {
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/oom.gguf", tmp_dir);
    snprintf(out, sizeof out, "%s/out.gguf", tmp_dir);
    float w32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    sm_block_q8_0 q8[1];
    float src[32];
    for (int i = 0; i < 32; i++) src[i] = (float)i / 7;
    sm_quantize_row(SM_TYPE_Q8_0, q8, src, 32);

    /* Building and writing. */
    long k, runs = 0;
    for (k = 0;; k++, runs++) {
        arm(k);
        sm_gguf_writer *w = make_writer(w32, q8);
        sm_error e = {0};
        int rc = w ? sm_gguf_write(w, path, &e) : SM_ENOMEM;
        sm_gguf_writer_free(w);
        const int untouched = n_allocs <= k;
        disarm();
        if (live) { failures++; fprintf(stderr, "FAIL: writing with allocation %ld failing leaks %ld blocks\n", k, live); }
        if (rc && !(rc == SM_ENOMEM || rc == SM_EIO)) { failures++; fprintf(stderr, "FAIL: write gave %d\n", rc); }
        if (untouched) {
            if (rc) { failures++; fprintf(stderr, "FAIL: write failed without a failing allocation: %s\n", e.msg); }
            break;
        }
    }
    printf("writer: failed each of %ld allocations in turn, no leaks\n", k);

    /* Reading from a file and from memory, and copying into a writer. */
    FILE *f = fopen(path, "rb");
    static uint8_t buf[4096];
    size_t size = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    if (size == 0) { fprintf(stderr, "FAIL: no test file\n"); return 1; }
    for (int via_file = 0; via_file < 2; via_file++) {
        for (k = 0;; k++, runs++) {
            arm(k);
            sm_error e = {0};
            sm_gguf *g = via_file ? sm_gguf_open(path, &e) : sm_gguf_open_memory(buf, size, "oom.gguf", &e);
            int copied = -1;
            if (g) {
                sm_gguf_writer *w = sm_gguf_writer_new();
                copied = w ? 0 : SM_ENOMEM;
                for (int64_t i = 0; w && !copied && i < sm_gguf_n_kv(g); i++) copied = sm_gguf_copy_kv(w, g, i);
                for (int64_t i = 0; w && !copied && i < sm_gguf_n_tensors(g); i++) {
                    const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
                    copied = sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
                }
                if (!copied) copied = sm_gguf_write(w, out, &e);
                sm_gguf_writer_free(w);
                sm_gguf_close(g);
            } else if (e.code != SM_ENOMEM || !e.msg[0]) {
                failures++;
                fprintf(stderr, "FAIL: open with allocation %ld failing: code %d '%s'\n", k, e.code, e.msg);
            }
            const int untouched = n_allocs <= k;
            disarm();
            if (live) { failures++; fprintf(stderr, "FAIL: reading with allocation %ld failing leaks %ld blocks\n", k, live); }
            if (untouched) {
                if (!g || copied) { failures++; fprintf(stderr, "FAIL: open/copy failed without a failing allocation\n"); }
                break;
            }
        }
        printf("reader (%s) and copy: failed each of %ld allocations in turn, no leaks\n", via_file ? "file" : "memory", k);
    }
    unlink(path);
    unlink(out);
    rmdir(tmp_dir);
    if (failures) { fprintf(stderr, "test_gguf_oom: %d failures\n", failures); return 1; }
    printf("test_gguf_oom: ok (%ld runs)\n", runs);
    return 0;
}
#endif
