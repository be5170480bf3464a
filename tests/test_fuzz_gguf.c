/* test_fuzz_gguf.c: deterministic fuzzing of the GGUF reader.
 *
 * Starts from small valid files that our writer makes (every metadata kind, a string array,
 * tensors of several types, two alignments) and feeds thousands of mutations of them
 * (truncation, bit flips, byte overwrites, counts and lengths set to huge values, chunks cut
 * out or repeated, random bytes) to sm_gguf_open_memory, and every 16th also through a file to
 * sm_gguf_open. Each result must be a handle whose every kv and tensor byte can be read (and
 * which can be copied into a writer and read back), or NULL with a message. Meant to run under
 * ASan and UBSan (build with -DSM_SANITIZE=ON): the seed is fixed, so a failure reproduces.
 */
#include "gguf.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_MUTATIONS 10000 /* SM_FUZZ_ITERS and SM_FUZZ_SEED in the environment override */
#define FILE_EVERY 16   /* every 16th mutation is also read through a file */
#define COPY_EVERY 8    /* every 8th that opens is also copied, written and read back */

static int failures;
static char tmp_dir[] = "/tmp/test_fuzz_gguf.XXXXXX";

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static size_t below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static int write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A valid seed file: every kind of kv, a string array, tensors of several types. */
static uint8_t *make_seed(uint32_t alignment, size_t *size) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    const int8_t i8 = -5; const int16_t i16 = -300; const uint16_t u16 = 7; const uint8_t u8 = 9;
    const int64_t i64 = -1; const double f64 = 0.125;
    sm_gguf_set_str(w, "general.architecture", "llama");
    sm_gguf_set_u32(w, "llama.block_count", 2);
    sm_gguf_set_i32(w, "s.i32", -7);
    sm_gguf_set_f32(w, "s.f32", 1e-5f);
    sm_gguf_set_bool(w, "s.bool", 1);
    sm_gguf_set_u64(w, "s.u64", 1ull << 40);
    sm_gguf_set_scalar(w, "s.i8", SM_GGUF_INT8, &i8);
    sm_gguf_set_scalar(w, "s.u8", SM_GGUF_UINT8, &u8);
    sm_gguf_set_scalar(w, "s.i16", SM_GGUF_INT16, &i16);
    sm_gguf_set_scalar(w, "s.u16", SM_GGUF_UINT16, &u16);
    sm_gguf_set_scalar(w, "s.i64", SM_GGUF_INT64, &i64);
    sm_gguf_set_scalar(w, "s.f64", SM_GGUF_FLOAT64, &f64);
    sm_gguf_set_str(w, "s.empty", "");
    const char *tokens[] = {"<s>", "", "a", "bc", "\xe2\x96\x81the"};
    sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 5);
    const float scores[] = {0.0f, -1.0f, -2.5f};
    sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, scores, 3);
    const int32_t types[] = {3, 1, 1, 1};
    sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, 4);
    sm_gguf_set_alignment(w, alignment);
    static float f32[8], q_src[64];
    static uint16_t f16[6];
    static sm_block_q8_0 q8[2];
    static sm_block_q4_0 q4[1];
    for (int i = 0; i < 64; i++) q_src[i] = (float)(i % 13) - 6.0f;
    for (int i = 0; i < 8; i++) f32[i] = (float)i;
    for (int i = 0; i < 6; i++) f16[i] = sm_fp32_to_fp16((float)i / 3);
    sm_quantize_row(SM_TYPE_Q8_0, q8, q_src, 64);
    sm_quantize_row(SM_TYPE_Q4_0, q4, q_src, 32);
    sm_gguf_add_tensor(w, "output_norm.weight", SM_TYPE_F32, 1, (int64_t[]){8}, f32);
    sm_gguf_add_tensor(w, "blk.0.attn_q.weight", SM_TYPE_F16, 2, (int64_t[]){3, 2}, f16);
    sm_gguf_add_tensor(w, "blk.0.ffn_up.weight", SM_TYPE_Q8_0, 2, (int64_t[]){32, 2}, q8);
    sm_gguf_add_tensor(w, "t4", SM_TYPE_Q4_0, 3, (int64_t[]){32, 1, 1}, q4);
    char path[256];
    snprintf(path, sizeof path, "%s/seed.gguf", tmp_dir);
    sm_error e = {0};
    if (sm_gguf_write(w, path, &e)) { fprintf(stderr, "seed: %s\n", e.msg); exit(1); }
    sm_gguf_writer_free(w);
    uint8_t *p = read_file(path, size);
    unlink(path);
    return p;
}

/* Reads everything a caller could read; returns a checksum so that nothing is optimised away. */
static uint64_t walk(const sm_gguf *g, const uint8_t *buf, size_t size) {
    uint64_t h = sm_gguf_version(g) + sm_gguf_alignment(g) + sm_gguf_data_offset(g);
    for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) {
        const char *key = sm_gguf_key(g, i);
        h += strlen(key) + (uint64_t)sm_gguf_find_key(g, key);
        uint64_t len, n;
        switch (sm_gguf_kv_type(g, i)) {
        case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64: case SM_GGUF_BOOL:
            h += sm_gguf_kv_u64(g, i) + (uint64_t)sm_gguf_kv_i64(g, i); break;
        case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64:
            h += (uint64_t)sm_gguf_kv_i64(g, i) + (sm_gguf_kv_f64(g, i) > 0); break;
        case SM_GGUF_FLOAT32: case SM_GGUF_FLOAT64:
            h += sm_gguf_kv_f64(g, i) > 0; break;
        case SM_GGUF_STRING: {
            const char *s = sm_gguf_kv_str(g, i, &len);
            for (uint64_t j = 0; j <= len; j++) h += (uint8_t)s[j]; /* the NUL too */
            break;
        }
        case SM_GGUF_ARRAY:
            n = sm_gguf_arr_n(g, i);
            if (sm_gguf_arr_type(g, i) == SM_GGUF_STRING) {
                for (uint64_t j = 0; j < n; j++) {
                    const char *s = sm_gguf_arr_str(g, i, j, &len);
                    for (uint64_t k = 0; k <= len; k++) h += (uint8_t)s[k];
                }
            } else if (sm_gguf_arr_type(g, i) != SM_GGUF_ARRAY && n) {
                const uint8_t *d = sm_gguf_arr_data(g, i);
                size_t es = sm_gguf_arr_type(g, i) <= SM_GGUF_INT8 || sm_gguf_arr_type(g, i) == SM_GGUF_BOOL ? 1
                          : sm_gguf_arr_type(g, i) <= SM_GGUF_INT16 ? 2 : sm_gguf_arr_type(g, i) <= SM_GGUF_FLOAT32 ? 4 : 8;
                for (uint64_t j = 0; j < n * es; j++) h += d[j];
            }
            break;
        }
    }
    for (int64_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        h += strlen(t->name) + (uint64_t)t->type + (uint64_t)t->n_dims + (sm_gguf_find_tensor(g, t->name) != NULL);
        if (!t->data) continue;
        if (buf && ((const uint8_t *)t->data < buf || t->nbytes > size - (size_t)((const uint8_t *)t->data - buf))) {
            failures++;
            fprintf(stderr, "FAIL: tensor '%s' data outside the buffer\n", t->name);
        }
        for (size_t j = 0; j < t->nbytes; j++) h += ((const uint8_t *)t->data)[j];
    }
    return h;
}

/* Whatever opens can be copied (kvs and the tensors a writer accepts), written and read back. */
static void copy_and_reread(const sm_gguf *g, int iter) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) sm_gguf_copy_kv(w, g, i);
    for (int64_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        if (t->data) sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data); /* may refuse: fine */
    }
    char path[256];
    snprintf(path, sizeof path, "%s/copy.gguf", tmp_dir);
    sm_error e = {0};
    if (sm_gguf_write(w, path, &e) == 0) {
        sm_gguf *c = sm_gguf_open(path, &e);
        if (!c) { failures++; fprintf(stderr, "FAIL iteration %d: our copy does not read back: %s\n", iter, e.msg); }
        sm_gguf_close(c);
        unlink(path);
    }
    sm_gguf_writer_free(w);
}

static void mutate(uint8_t *p, size_t *n, size_t cap, size_t hot) {
    int kind = (int)below(7);
    size_t at = below(rng() & 1 ? hot : *n); /* mostly the metadata, where the structure is */
    if (at >= *n) at = *n ? *n - 1 : 0;
    switch (kind) {
    case 0: /* truncate */
        *n = below(*n + 1);
        break;
    case 1: /* flip bits */
        for (int k = 1 + (int)below(4); k-- && *n;) {
            size_t bit = below(8); /* one rng call per statement: the order stays fixed */
            p[below(hot < *n ? hot : *n)] ^= (uint8_t)(1u << bit);
        }
        break;
    case 2: /* overwrite bytes */
        for (size_t k = 1 + below(8); k-- && at < *n; at++) p[at] = (uint8_t)rng();
        break;
    case 3: { /* a count, length or offset set to something huge or off by a little */
        static const uint64_t huge[] = {UINT64_MAX, 1ull << 63, 1ull << 62, 1ull << 32, 0xffffffffull, 1ull << 20, 0};
        uint64_t v = rng();
        if (below(3)) v = huge[below(sizeof huge / sizeof huge[0])];
        else v >>= below(64);
        if (below(4) == 0) at = 8 + 8 * below(2); /* n_tensors or n_kv */
        for (int k = 0; k < 8 && at + (size_t)k < *n; k++) p[at + (size_t)k] = (uint8_t)(v >> (8 * k));
        break;
    }
    case 4: { /* cut a chunk out */
        size_t len = 1 + below(16);
        if (at + len > *n) len = *n - at;
        memmove(p + at, p + at + len, *n - at - len);
        *n -= len;
        break;
    }
    case 5: { /* repeat a chunk */
        size_t len = 1 + below(16);
        if (at + len > *n) len = *n - at;
        if (*n + len <= cap) {
            memmove(p + at + len, p + at, *n - at);
            *n += len;
        }
        break;
    }
    default: /* random bytes after a valid header, or anywhere */
        for (size_t k = below(2) ? 24 : 0; k < *n; k++) if (below(4) == 0) p[k] = (uint8_t)rng();
        break;
    }
}

int main(void) {
    int n_mutations = N_MUTATIONS;
    if (getenv("SM_FUZZ_ITERS")) n_mutations = atoi(getenv("SM_FUZZ_ITERS"));
    if (getenv("SM_FUZZ_SEED")) rng_state ^= strtoull(getenv("SM_FUZZ_SEED"), NULL, 0) * 0x2545f4914f6cdd1dull;
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    size_t seed_size[2];
    uint8_t *seeds[2] = {make_seed(32, &seed_size[0]), make_seed(8, &seed_size[1])};
    size_t seed_meta[2]; /* where the data section starts: mutations favour the bytes before it */
    for (int s = 0; s < 2; s++) {
        sm_error e = {0};
        sm_gguf *g = sm_gguf_open_memory(seeds[s], seed_size[s], "seed.gguf", &e);
        if (!g) { fprintf(stderr, "FAIL: seed %d does not open: %s\n", s, e.msg); return 1; }
        seed_meta[s] = sm_gguf_data_offset(g);
        sm_gguf_close(g);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/mutant.gguf", tmp_dir);
    int opened = 0, refused = 0, via_file = 0;
    uint64_t checksum = 0;
    for (int iter = 0; iter < n_mutations; iter++) {
        const int s = iter & 1;
        size_t cap = seed_size[s] + 256, n = seed_size[s];
        uint8_t *p = malloc(cap);
        memcpy(p, seeds[s], n);
        for (int m = 1 + (int)below(3); m--;) mutate(p, &n, cap, seed_meta[s]);
        /* Copy into an allocation of exactly n bytes so that ASan catches any read past the end. */
        uint8_t *buf = malloc(n ? n : 1);
        memcpy(buf, p, n);
        free(p);
        sm_error e = {0};
        sm_gguf *g = sm_gguf_open_memory(buf, n, "mutant.gguf", &e);
        if (g) {
            opened++;
            checksum += walk(g, buf, n);
            if (opened % COPY_EVERY == 0) copy_and_reread(g, iter);
        } else {
            refused++;
            if (!e.msg[0] || e.code >= 0) { failures++; fprintf(stderr, "FAIL iteration %d: refused without a message\n", iter); }
        }
        if (iter % FILE_EVERY == 0 && write_file(path, buf, n) == 0) {
            via_file++;
            sm_error fe = {0};
            sm_gguf *gf = sm_gguf_open(path, &fe);
            if (!!gf != !!g) {
                failures++;
                fprintf(stderr, "FAIL iteration %d: memory %s but file %s (%s)\n", iter, g ? "opened" : "refused",
                        gf ? "opened" : "refused", fe.msg);
            }
            if (gf) checksum += walk(gf, NULL, 0);
            else if (!fe.msg[0]) { failures++; fprintf(stderr, "FAIL iteration %d: file refused without a message\n", iter); }
            sm_gguf_close(gf);
        }
        sm_gguf_close(g);
        free(buf);
    }
    unlink(path);
    free(seeds[0]);
    free(seeds[1]);
    rmdir(tmp_dir);
    printf("fuzz: %d mutations, %d opened, %d refused, %d also through a file (checksum %llx)\n", n_mutations, opened,
           refused, via_file, (unsigned long long)checksum);
    if (failures) { fprintf(stderr, "test_fuzz_gguf: %d failures\n", failures); return 1; }
    printf("test_fuzz_gguf: ok\n");
    return 0;
}
