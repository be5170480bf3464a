/* test_fuzz_gguf.c: deterministic fuzzing of the GGUF reader.
 *
 * Starts from small valid files that our writer makes: two fixed ones (every metadata kind, a
 * string array, tensors of several types, two alignments) and random ones (random kvs of every
 * type, arrays of numbers and strings, tensors, alignment), each first checked to read back as
 * written against an encoding made here and to copy byte for byte. It then feeds thousands of mutations of them
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

/* ---- random valid files: the writer against an independent encoding, and more seeds ---- */

#define N_RANDOM_SEEDS 48

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        if (!(b->p = realloc(b->p, b->cap))) abort();
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(bytes *b, uint64_t v, int n) {
    uint8_t x[8];
    for (int i = 0; i < n; i++, v >>= 8) x[i] = (uint8_t)v;
    put(b, x, (size_t)n);
}

static size_t value_size(int t) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sizes[t];
}

static int random_scalar_type(void) {
    static const int types[] = {0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12};
    return types[below(11)];
}

/* Random string bytes (with NULs when allow_nul), NUL-terminated in buf. */
static size_t random_string(char *buf, size_t max, int allow_nul) {
    size_t len = below(max);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (char)(uint8_t)rng();
        if (!allow_nul && !buf[i]) buf[i] = 'x';
    }
    buf[len] = '\0';
    return len;
}

/* Writes a random valid file (every value type, arrays of numbers and strings, empty ones,
 * tensors of the five types, a random alignment) and checks that it reads back as written: each
 * kv's type and stored bytes against an encoding made here, each tensor's shape and bytes; and
 * that a copy through a fresh writer is byte-identical. Returns the file's bytes. */
static uint8_t *make_random_seed(int k, size_t *size) {
    enum { MAX_KV = 24, MAX_T = 5 };
    sm_gguf_writer *w = sm_gguf_writer_new();
    char keys[MAX_KV][32];
    int types[MAX_KV];
    bytes raws[MAX_KV] = {{0}};
    struct { int type, n_dims; int64_t ne[4]; uint8_t *data; size_t nbytes; } ts[MAX_T];
    int n_t = 0; /* tensors made so far (freed at the end) */
    uint8_t *p = NULL;
    int n_kv = (int)below(MAX_KV - 1);
    uint32_t alignment = 32;
    for (int i = 0; i < n_kv; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d.%llx", i, (unsigned long long)(rng() & 0xffff));
        int t = (int)below(13);
        types[i] = t;
        char str[64];
        if (t == SM_GGUF_STRING) {
            size_t len = random_string(str, 40, 0);
            put_le(&raws[i], len, 8), put(&raws[i], str, len);
            if (sm_gguf_set_str(w, keys[i], str)) goto bad;
        } else if (t == SM_GGUF_ARRAY) {
            const int et = below(4) ? random_scalar_type() : SM_GGUF_STRING;
            const uint64_t n = below(4) ? below(20) : 0;
            put_le(&raws[i], (uint64_t)et, 4), put_le(&raws[i], n, 8);
            if (et == SM_GGUF_STRING) {
                char pool[20][32];
                const char *strs[20];
                uint64_t lens[20];
                for (uint64_t j = 0; j < n; j++) {
                    lens[j] = random_string(pool[j], 30, 1), strs[j] = pool[j];
                    put_le(&raws[i], lens[j], 8), put(&raws[i], pool[j], lens[j]);
                }
                if (sm_gguf_set_arr_str(w, keys[i], strs, lens, n)) goto bad;
            } else {
                uint8_t data[20 * 8];
                const size_t es = value_size(et);
                for (size_t j = 0; j < n * es; j++) data[j] = et == SM_GGUF_BOOL ? (uint8_t)below(2) : (uint8_t)rng();
                put(&raws[i], data, n * es); /* this host is little-endian, as the writer's test assumes */
                if (sm_gguf_set_arr(w, keys[i], (sm_gguf_type)et, data, n)) goto bad;
            }
        } else {
            uint8_t v[8];
            for (int j = 0; j < 8; j++) v[j] = t == SM_GGUF_BOOL ? (uint8_t)below(2) : (uint8_t)rng();
            put(&raws[i], v, value_size(t));
            if (sm_gguf_set_scalar(w, keys[i], (sm_gguf_type)t, v)) goto bad;
        }
    }
    if (below(4)) { /* general.alignment as the last key */
        alignment = 1u << below(9);
        snprintf(keys[n_kv], sizeof keys[n_kv], "general.alignment");
        types[n_kv] = SM_GGUF_UINT32;
        put_le(&raws[n_kv], alignment, 4);
        if (sm_gguf_set_alignment(w, alignment)) goto bad;
        n_kv++;
    }
    static const int ttypes[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
    const int want_t = (int)below(MAX_T + 1);
    for (int i = 0; i < want_t; i++) {
        ts[i].type = ttypes[below(5)];
        ts[i].n_dims = 1 + (int)below(4);
        int64_t n = 1;
        for (int d = 0; d < 4; d++) {
            ts[i].ne[d] = d >= ts[i].n_dims ? 1 : d ? 1 + (int64_t)below(3) : sm_type_block_elems(ts[i].type) * (1 + (int64_t)below(3));
            n *= ts[i].ne[d];
        }
        sm_type_row_bytes(ts[i].type, n, &ts[i].nbytes);
        if (!(ts[i].data = malloc(ts[i].nbytes))) abort();
        n_t = i + 1;
        for (size_t j = 0; j < ts[i].nbytes; j++) ts[i].data[j] = (uint8_t)rng();
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        if (sm_gguf_add_tensor(w, name, ts[i].type, ts[i].n_dims, ts[i].ne, ts[i].data)) goto bad;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/random.gguf", tmp_dir);
    sm_error e = {0};
    if (sm_gguf_write(w, path, &e)) { fprintf(stderr, "random seed %d: %s\n", k, e.msg); goto bad; }
    sm_gguf_writer_free(w);
    w = NULL;
    p = read_file(path, size);
    unlink(path);
    sm_gguf *g = p ? sm_gguf_open_memory(p, *size, "random.gguf", &e) : NULL;
    if (!g) { fprintf(stderr, "FAIL: random seed %d does not read back: %s\n", k, e.msg); failures++; free(p); p = NULL; goto out; }
    int bad = sm_gguf_n_kv(g) != n_kv || sm_gguf_n_tensors(g) != n_t || sm_gguf_alignment(g) != alignment;
    for (int i = 0; !bad && i < n_kv; i++) {
        size_t len;
        const void *raw = sm_gguf_kv_raw(g, i, &len);
        bad |= strcmp(sm_gguf_key(g, i), keys[i]) || (int)sm_gguf_kv_type(g, i) != types[i] || len != raws[i].n ||
               (len && memcmp(raw, raws[i].p, len));
        if (bad) fprintf(stderr, "random seed %d: key %d (%s) differs\n", k, i, keys[i]);
    }
    for (int i = 0; !bad && i < n_t; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        bad |= t->type != ts[i].type || t->n_dims != ts[i].n_dims || memcmp(t->ne, ts[i].ne, sizeof t->ne) ||
               t->nbytes != ts[i].nbytes || t->offset % alignment || memcmp(t->data, ts[i].data, t->nbytes);
        if (bad) fprintf(stderr, "random seed %d: tensor %d differs\n", k, i);
    }
    /* A copy is byte-identical. */
    sm_gguf_writer *c = sm_gguf_writer_new();
    for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) bad |= sm_gguf_copy_kv(c, g, i) != 0;
    for (int64_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        bad |= sm_gguf_add_tensor(c, t->name, t->type, t->n_dims, t->ne, t->data) != 0;
    }
    bad |= sm_gguf_write(c, path, &e) != 0;
    sm_gguf_writer_free(c);
    size_t csize = 0;
    uint8_t *copy = read_file(path, &csize);
    unlink(path);
    bad |= !copy || csize != *size || memcmp(copy, p, csize);
    free(copy);
    sm_gguf_close(g);
    if (bad) { fprintf(stderr, "FAIL: random seed %d does not round-trip\n", k); failures++; }
    goto out;
bad:
    fprintf(stderr, "FAIL: random seed %d: the writer refused a valid value\n", k);
    failures++;
    free(p);
    p = NULL;
out:
    sm_gguf_writer_free(w);
    for (int i = 0; i < MAX_KV; i++) free(raws[i].p);
    for (int i = 0; i < n_t; i++) free(ts[i].data);
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
    enum { N_SEEDS = 2 + N_RANDOM_SEEDS };
    size_t seed_size[N_SEEDS], seed_meta[N_SEEDS]; /* seed_meta: where the data section starts */
    uint8_t *seeds[N_SEEDS] = {make_seed(32, &seed_size[0]), make_seed(8, &seed_size[1])};
    for (int s = 2; s < N_SEEDS; s++) seeds[s] = make_random_seed(s - 2, &seed_size[s]);
    for (int s = 0; s < N_SEEDS; s++) {
        sm_error e = {0};
        sm_gguf *g = seeds[s] ? sm_gguf_open_memory(seeds[s], seed_size[s], "seed.gguf", &e) : NULL;
        if (!g) { fprintf(stderr, "FAIL: seed %d does not open: %s\n", s, e.msg); return 1; }
        seed_meta[s] = sm_gguf_data_offset(g) < seed_size[s] ? sm_gguf_data_offset(g) : seed_size[s];
        sm_gguf_close(g);
    }
    printf("random valid files: %d written, read back and copied byte for byte\n", N_RANDOM_SEEDS);
    char path[256];
    snprintf(path, sizeof path, "%s/mutant.gguf", tmp_dir);
    int opened = 0, refused = 0, via_file = 0;
    uint64_t checksum = 0;
    for (int iter = 0; iter < n_mutations; iter++) {
        const int s = iter % 4 ? 2 + iter % N_RANDOM_SEEDS : (iter / 4) & 1; /* a quarter from the fixed seeds */
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
    for (int s = 0; s < N_SEEDS; s++) free(seeds[s]);
    rmdir(tmp_dir);
    printf("fuzz: %d mutations, %d opened, %d refused, %d also through a file (checksum %llx)\n", n_mutations, opened,
           refused, via_file, (unsigned long long)checksum);
    if (failures) { fprintf(stderr, "test_fuzz_gguf: %d failures\n", failures); return 1; }
    printf("test_fuzz_gguf: ok\n");
    return 0;
}
