/* test_gguf.c: the GGUF reader and writer (src/gguf.c, src/gguf_write.c).
 *
 * A round trip of every metadata type and every tensor type; hand-built files (independent of
 * our writer) truncated at every length, with oversized counts, bad magic and version,
 * misaligned and out-of-file tensors, duplicate names and keys; and llama.cpp's own vocabulary
 * files copied key by key into a byte-identical file. argv[1] is the ../shared folder; the
 * vocabulary part is skipped (with a message) when it is missing.
 */
#include "gguf.h"
#include "tensor.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

static char tmp_dir[] = "/tmp/test_gguf.XXXXXX";

static char *tmp_path(const char *name) {
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", tmp_dir, name);
    return p;
}

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

/* ---- a byte builder for hand-made files ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_le(bytes *b, uint64_t v, int n) {
    uint8_t x[8];
    for (int i = 0; i < n; i++, v >>= 8) x[i] = (uint8_t)v;
    put(b, x, (size_t)n);
}
static void put_str(bytes *b, const char *s) { put_le(b, strlen(s), 8); put(b, s, strlen(s)); }
static void patch_le(bytes *b, size_t at, uint64_t v, int n) {
    for (int i = 0; i < n; i++, v >>= 8) b->p[at + i] = (uint8_t)v;
}

/* Where the fields of the hand-made file sit. */
typedef struct {
    size_t n_tensors, n_kv, key2, str_len, arr_count, t0_dims, t0_ne0, t0_type, t0_offset, t1_name, t1_offset, data, end;
} layout;

/* A small valid v3 file: 3 kvs (string, u32, i16 array), tensors t0 f32 (4,2) and t1 q8_0 (32). */
static void build_mini(bytes *b, layout *L) {
    memset(b, 0, sizeof *b);
    put_le(b, 0x46554747u, 4);
    put_le(b, 3, 4);
    L->n_tensors = b->n; put_le(b, 2, 8);
    L->n_kv = b->n; put_le(b, 3, 8);
    put_str(b, "general.architecture"); put_le(b, SM_GGUF_STRING, 4);
    L->str_len = b->n; put_str(b, "llama");
    put_str(b, "a.u32"); put_le(b, SM_GGUF_UINT32, 4); put_le(b, 7, 4);
    L->key2 = b->n; put_str(b, "a.arr"); put_le(b, SM_GGUF_ARRAY, 4); put_le(b, SM_GGUF_INT16, 4);
    L->arr_count = b->n; put_le(b, 3, 8);
    put_le(b, 1, 2); put_le(b, (uint16_t)-2, 2); put_le(b, 3, 2);
    put_str(b, "t0");
    L->t0_dims = b->n; put_le(b, 2, 4);
    L->t0_ne0 = b->n; put_le(b, 4, 8); put_le(b, 2, 8);
    L->t0_type = b->n; put_le(b, SM_TYPE_F32, 4);
    L->t0_offset = b->n; put_le(b, 0, 8);
    L->t1_name = b->n; put_str(b, "t1"); put_le(b, 1, 4); put_le(b, 32, 8); put_le(b, SM_TYPE_Q8_0, 4);
    L->t1_offset = b->n; put_le(b, 32, 8);
    while (b->n % 32) put_le(b, 0, 1);
    L->data = b->n;
    for (int i = 0; i < 8; i++) { float f = (float)i - 3.5f; put(b, &f, 4); }
    put_le(b, sm_fp32_to_fp16(0.5f), 2);
    for (int i = 0; i < 32; i++) put_le(b, (uint8_t)(i - 16), 1);
    L->end = b->n; /* no padding after the last tensor: every shorter length must fail */
}

/* Opens b from memory; returns 1 when it opened, 0 when it failed with a sensible message. */
static int opens(const bytes *b, size_t size, sm_error *e) {
    memset(e, 0, sizeof *e);
    sm_gguf *g = sm_gguf_open_memory(b->p, size, "mini.gguf", e);
    if (g) { sm_gguf_close(g); return 1; }
    return 0;
}

static void expect_fail(const bytes *b, const char *what, const char *needle) {
    sm_error e;
    int ok = opens(b, b->n, &e);
    CHECK(!ok, "%s: opened", what);
    CHECK(ok || (e.code == SM_EFORMAT && strstr(e.msg, "mini.gguf: at byte ") && strstr(e.msg, needle)),
          "%s: code %d message '%s' (wanted '%s')", what, e.code, e.msg, needle);
    if (!ok) printf("  %-28s -> %s\n", what, e.msg);
}

static void test_hand_made(void) {
    bytes b;
    layout L;
    build_mini(&b, &L);
    sm_error e = {0};
    sm_gguf *g = sm_gguf_open_memory(b.p, b.n, "mini.gguf", &e);
    CHECK(g, "mini: %s", e.msg);
    if (g) {
        CHECK(sm_gguf_version(g) == 3 && sm_gguf_alignment(g) == 32 && sm_gguf_data_offset(g) == L.data, "header");
        CHECK(sm_gguf_n_kv(g) == 3 && sm_gguf_n_tensors(g) == 2, "counts");
        CHECK(!strcmp(sm_gguf_get_str(g, "general.architecture"), "llama"), "arch");
        int64_t i = sm_gguf_find_key(g, "a.arr");
        CHECK(i == 2 && sm_gguf_arr_type(g, i) == SM_GGUF_INT16 && sm_gguf_arr_n(g, i) == 3, "array");
        if (i == 2) {
            const int16_t *v = sm_gguf_arr_data(g, i);
            CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3, "array values");
        }
        const sm_gguf_tensor *t1 = sm_gguf_find_tensor(g, "t1");
        CHECK(t1 && t1->nbytes == 34 && t1->data == b.p + L.data + 32 && t1->ne[0] == 32 && t1->ne[1] == 1, "t1");
        CHECK(!sm_gguf_find_tensor(g, "t2") && sm_gguf_find_key(g, "nope") == -1, "missing names");
        uint32_t u;
        float f;
        int bo;
        CHECK(sm_gguf_get_u32(g, "a.u32", &u, &e) == 0 && u == 7, "get_u32");
        CHECK(sm_gguf_get_f32(g, "a.u32", &f, &e) == 0 && f == 7.0f, "get_f32 of an integer");
        CHECK(sm_gguf_get_u32(g, "missing", &u, &e) == SM_EINVAL, "missing key");
        CHECK(sm_gguf_get_bool(g, "a.u32", &bo, &e) == SM_EFORMAT && strstr(e.msg, "a.u32"), "get_bool of u32: %s", e.msg);
        CHECK(sm_gguf_get_u32(g, "general.architecture", &u, &e) == SM_EFORMAT, "get_u32 of string");
        sm_gguf_close(g);
    }

    /* Every truncation fails cleanly, naming a byte offset. */
    int bad = 0;
    for (size_t n = 0; n < L.end; n++) {
        if (opens(&b, n, &e)) { bad++; fprintf(stderr, "truncated to %zu bytes: opened\n", n); continue; }
        if (e.code != SM_EFORMAT || !strstr(e.msg, "byte")) { bad++; fprintf(stderr, "truncated to %zu: '%s'\n", n, e.msg); }
    }
    CHECK(bad == 0, "%d truncations misbehaved", bad);
    printf("truncations: %zu lengths, all refused\n", L.end);

    /* Each corruption is refused with a message naming what was expected. */
    struct { size_t at; uint64_t v; int n; const char *what, *needle; } cases[] = {
        {0, 0x46554746u, 4, "bad magic", "magic"},
        {4, 1, 4, "version 1", "version"},
        {4, 4, 4, "version 4", "version"},
        {4, 0x03000000u, 4, "big-endian file", "big-endian"},
        {L.n_kv, 1ull << 62, 8, "huge n_kv", "metadata entries"},
        {L.n_kv, 4, 8, "one kv too many", "expected"},
        {L.n_tensors, UINT64_MAX, 8, "huge n_tensors", "tensor infos"},
        {L.n_tensors, 3, 8, "one tensor too many", "expected"},
        {L.str_len, 1ull << 60, 8, "huge string length", "length"},
        {L.str_len, UINT64_MAX, 8, "string length -1", "length"},
        {L.arr_count, 1ull << 61, 8, "huge array count", "array elements"},
        {L.arr_count - 4, 13, 4, "bad array element type", "array element type"},
        {L.arr_count - 8, 99, 4, "bad value type", "value type"},
        {L.t0_dims, 0, 4, "n_dims 0", "n_dims"},
        {L.t0_dims, 5, 4, "n_dims 5", "n_dims"},
        {L.t0_ne0, 1ull << 63, 8, "ne 2^63", "dimension"},
        {L.t0_type, 1000, 4, "unknown type id", "type id"},
        {L.t1_offset, 16, 8, "misaligned offset", "multiple of 32"},
        {L.t1_offset, 64, 8, "tensor past the end", "past the end"},
        {L.t1_offset, UINT64_MAX - 31, 8, "offset near 2^64", "past the end"},
        {L.t1_name + 9, '0', 1, "duplicate tensor name", "second time"},
        {L.key2 + 10, 'u', 1, "duplicate key (1/3)", ""}, /* patched fully below */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes m = b;
        m.p = malloc(b.n);
        memcpy(m.p, b.p, b.n);
        patch_le(&m, cases[c].at, cases[c].v, cases[c].n);
        if (strstr(cases[c].what, "duplicate key")) {
            memcpy(m.p + L.key2 + 8, "a.u32", 5);
            expect_fail(&m, "duplicate key", "second time");
        } else {
            expect_fail(&m, cases[c].what, cases[c].needle);
        }
        free(m.p);
    }

    /* Version 2 has the same layout and is read. */
    bytes m = b;
    m.p = malloc(b.n);
    memcpy(m.p, b.p, b.n);
    patch_le(&m, 4, 2, 4);
    CHECK(opens(&m, m.n, &e), "version 2: %s", e.msg);
    /* An unsupported but plausible ggml type (q4_1 = 3) is listed without data. */
    memcpy(m.p, b.p, b.n);
    patch_le(&m, L.t0_type, 3, 4);
    g = sm_gguf_open_memory(m.p, m.n, "mini.gguf", &e);
    CHECK(g && sm_gguf_tensor_at(g, 0)->data == NULL && sm_gguf_tensor_at(g, 0)->nbytes == 0, "q4_1 listed: %s", e.msg);
    sm_gguf_close(g);
    /* ne[0] that is not whole blocks of a quantized type. */
    memcpy(m.p, b.p, b.n);
    patch_le(&m, L.t0_type, SM_TYPE_Q8_0, 4);
    expect_fail(&m, "ne[0] 4 for q8_0", "multiple of 32");
    free(m.p);
    free(b.p);
}

/* general.alignment of a given type and value, one f32 tensor of 4 elements. */
static void test_alignment_key(void) {
    struct { uint32_t type; uint64_t v; int ok; } cases[] = {
        {SM_GGUF_UINT32, 64, 1}, {SM_GGUF_UINT32, 1, 1}, {SM_GGUF_UINT32, 48, 0}, {SM_GGUF_UINT32, 0, 0}, {SM_GGUF_INT32, 64, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes b = {0};
        put_le(&b, 0x46554747u, 4); put_le(&b, 3, 4); put_le(&b, 1, 8); put_le(&b, 1, 8);
        put_str(&b, "general.alignment"); put_le(&b, cases[c].type, 4); put_le(&b, cases[c].v, 4);
        put_str(&b, "w"); put_le(&b, 1, 4); put_le(&b, 4, 8); put_le(&b, SM_TYPE_F32, 4); put_le(&b, 0, 8);
        size_t a = cases[c].v ? cases[c].v : 1;
        while (b.n % a) put_le(&b, 0, 1);
        size_t data = b.n;
        static const uint8_t zeros[16];
        put(&b, zeros, sizeof zeros);
        sm_error e = {0};
        sm_gguf *g = sm_gguf_open_memory(b.p, b.n, "align.gguf", &e);
        CHECK(!!g == cases[c].ok, "alignment case %zu: %s", c, e.msg);
        if (g) CHECK(sm_gguf_alignment(g) == cases[c].v && sm_gguf_data_offset(g) == data, "alignment %zu", c);
        if (!g) CHECK(strstr(e.msg, "general.alignment") && strstr(e.msg, "byte"), "message: %s", e.msg);
        sm_gguf_close(g);
        free(b.p);
    }
}

/* ---- writer round trip ---- */

static void fill_random(void *p, size_t n, uint32_t *seed) {
    uint8_t *q = p;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        q[i] = (uint8_t)(*seed >> 24);
    }
}

static void test_round_trip(void) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    CHECK(w, "writer");
    const uint8_t u8 = 200; const int8_t i8 = -100; const uint16_t u16 = 60000; const int16_t i16 = -30000;
    const uint32_t u32 = 4000000000u; const int32_t i32 = -2000000000; const float f32 = 1.5f;
    const uint64_t u64 = (1ull << 63) + 5; const int64_t i64 = -(1ll << 62); const double f64 = -3.25;
    const uint8_t bo = 1;
    CHECK(sm_gguf_set_u32(w, "replace.me", 1) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.u8", SM_GGUF_UINT8, &u8) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.i8", SM_GGUF_INT8, &i8) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.u16", SM_GGUF_UINT16, &u16) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.i16", SM_GGUF_INT16, &i16) == 0, "set");
    CHECK(sm_gguf_set_u32(w, "s.u32", u32) == 0, "set");
    CHECK(sm_gguf_set_i32(w, "s.i32", i32) == 0, "set");
    CHECK(sm_gguf_set_f32(w, "s.f32", f32) == 0, "set");
    CHECK(sm_gguf_set_bool(w, "s.bool", 1) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.bool2", SM_GGUF_BOOL, &bo) == 0, "set");
    CHECK(sm_gguf_set_u64(w, "s.u64", u64) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.i64", SM_GGUF_INT64, &i64) == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "s.f64", SM_GGUF_FLOAT64, &f64) == 0, "set");
    CHECK(sm_gguf_set_str(w, "s.str", "hello, gguf") == 0, "set");
    CHECK(sm_gguf_set_str(w, "s.empty", "") == 0, "set");
    CHECK(sm_gguf_set_scalar(w, "bad", SM_GGUF_STRING, "x") == SM_EINVAL, "string via set_scalar");
    CHECK(sm_gguf_set_arr(w, "bad", SM_GGUF_ARRAY, &u8, 1) == SM_EINVAL, "array of arrays via set_arr");

    /* One array per scalar type, with values that use every byte. */
    static const sm_gguf_type arr_types[] = {SM_GGUF_UINT8, SM_GGUF_INT8, SM_GGUF_UINT16, SM_GGUF_INT16, SM_GGUF_UINT32,
                                             SM_GGUF_INT32, SM_GGUF_FLOAT32, SM_GGUF_BOOL, SM_GGUF_UINT64, SM_GGUF_INT64, SM_GGUF_FLOAT64};
    static const size_t arr_sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    uint8_t arr_vals[11][5 * 8];
    uint32_t seed = 42;
    for (int a = 0; a < 11; a++) {
        fill_random(arr_vals[a], sizeof arr_vals[a], &seed);
        if (arr_types[a] == SM_GGUF_BOOL) for (int j = 0; j < 5; j++) arr_vals[a][j] &= 1;
        if (arr_types[a] == SM_GGUF_FLOAT32 || arr_types[a] == SM_GGUF_FLOAT64) /* keep NaNs out of the compare */
            for (int j = 0; j < 5; j++) arr_vals[a][(j + 1) * arr_sizes[a] - 1] &= 0x3f;
        char key[32];
        snprintf(key, sizeof key, "a.%d", (int)arr_types[a]);
        CHECK(sm_gguf_set_arr(w, key, arr_types[a], arr_vals[a], 5) == 0, "set_arr %d", a);
    }
    CHECK(sm_gguf_set_arr(w, "a.empty", SM_GGUF_UINT32, NULL, 0) == 0, "empty array");
    const char *strs[] = {"alpha", "", "with\0nul", "\xe2\x82\xac"};
    const uint64_t lens[] = {5, 0, 8, 3};
    CHECK(sm_gguf_set_arr_str(w, "a.str", strs, lens, 4) == 0, "string array");
    CHECK(sm_gguf_set_arr_str(w, "a.str_nul", strs, NULL, 2) == 0, "string array, NUL-terminated");
    CHECK(sm_gguf_set_arr_str(w, "a.str_empty", NULL, NULL, 0) == 0, "empty string array");
    CHECK(sm_gguf_set_str(w, "replace.me", "now a string") == 0, "replace");
    CHECK(sm_gguf_set_alignment(w, 48) == SM_EINVAL, "alignment 48");
    CHECK(sm_gguf_set_alignment(w, 64) == 0, "alignment 64");

    /* One tensor of each type. */
    struct { const char *name; int type, n_dims; int64_t ne[4]; } ts[] = {
        {"t.f32", SM_TYPE_F32, 2, {5, 3, 1, 1}},
        {"t.f16", SM_TYPE_F16, 1, {7, 1, 1, 1}},
        {"t.bf16", SM_TYPE_BF16, 3, {3, 2, 2, 1}},
        {"t.q8_0", SM_TYPE_Q8_0, 2, {64, 3, 1, 1}},
        {"t.q4_0", SM_TYPE_Q4_0, 4, {32, 2, 1, 2}},
    };
    enum { NT = sizeof ts / sizeof ts[0] };
    void *data[NT];
    size_t nbytes[NT];
    for (int t = 0; t < NT; t++) {
        int64_t n = ts[t].ne[0] * ts[t].ne[1] * ts[t].ne[2] * ts[t].ne[3];
        CHECK(sm_type_row_bytes(ts[t].type, n, &nbytes[t]) == 0, "row bytes");
        data[t] = malloc(nbytes[t]);
        fill_random(data[t], nbytes[t], &seed);
        CHECK(sm_gguf_add_tensor(w, ts[t].name, ts[t].type, ts[t].n_dims, ts[t].ne, data[t]) == 0, "add %s", ts[t].name);
    }
    CHECK(sm_gguf_add_tensor(w, "t.f32", SM_TYPE_F32, 1, ts[0].ne, data[0]) == SM_EINVAL, "duplicate tensor");
    int64_t ne31[] = {31};
    CHECK(sm_gguf_add_tensor(w, "t.q", SM_TYPE_Q8_0, 1, ne31, data[3]) == SM_EINVAL, "q8_0 of 31");
    CHECK(sm_gguf_add_tensor(w, "t.q41", 3, 1, ts[3].ne, data[3]) == SM_EINVAL, "unsupported type");
    CHECK(sm_gguf_add_tensor(w, "t.5d", SM_TYPE_F32, 5, ts[0].ne, data[0]) == SM_EINVAL, "5 dims");
    char long_name[80];
    memset(long_name, 'x', 64), long_name[64] = '\0';
    CHECK(sm_gguf_add_tensor(w, long_name, SM_TYPE_F32, 1, ts[0].ne, data[0]) == SM_EINVAL, "64-byte name");

    sm_error e = {0};
    CHECK(sm_gguf_write(w, "/nonexistent-dir/x.gguf", &e) == SM_EIO && strstr(e.msg, "/nonexistent-dir/x.gguf"), "write error: %s", e.msg);
    const char *path = tmp_path("round.gguf");
    CHECK(sm_gguf_write(w, path, &e) == 0, "write: %s", e.msg);
    sm_gguf_writer_free(w);

    sm_gguf *g = sm_gguf_open(path, &e);
    CHECK(g, "open: %s", e.msg);
    if (!g) return;
    CHECK(sm_gguf_alignment(g) == 64 && sm_gguf_data_offset(g) % 64 == 0, "alignment read back");
    CHECK(!strcmp(sm_gguf_key(g, 0), "replace.me") && sm_gguf_kv_type(g, 0) == SM_GGUF_STRING &&
          !strcmp(sm_gguf_kv_str(g, 0, NULL), "now a string"), "replaced key keeps its place");
    int64_t k;
    CHECK((k = sm_gguf_find_key(g, "s.u8")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_UINT8 && sm_gguf_kv_u64(g, k) == u8, "u8");
    CHECK((k = sm_gguf_find_key(g, "s.i8")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_INT8 && sm_gguf_kv_i64(g, k) == i8, "i8");
    CHECK((k = sm_gguf_find_key(g, "s.u16")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_UINT16 && sm_gguf_kv_u64(g, k) == u16, "u16");
    CHECK((k = sm_gguf_find_key(g, "s.i16")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_INT16 && sm_gguf_kv_i64(g, k) == i16, "i16");
    CHECK((k = sm_gguf_find_key(g, "s.u32")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_UINT32 && sm_gguf_kv_u64(g, k) == u32, "u32");
    CHECK((k = sm_gguf_find_key(g, "s.i32")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_INT32 && sm_gguf_kv_i64(g, k) == i32, "i32");
    CHECK((k = sm_gguf_find_key(g, "s.f32")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_FLOAT32 && sm_gguf_kv_f64(g, k) == f32, "f32");
    CHECK((k = sm_gguf_find_key(g, "s.bool")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_BOOL && sm_gguf_kv_u64(g, k) == 1, "bool");
    CHECK((k = sm_gguf_find_key(g, "s.u64")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_UINT64 && sm_gguf_kv_u64(g, k) == u64, "u64");
    CHECK((k = sm_gguf_find_key(g, "s.i64")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_INT64 && sm_gguf_kv_i64(g, k) == i64, "i64");
    CHECK((k = sm_gguf_find_key(g, "s.f64")) >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_FLOAT64 && sm_gguf_kv_f64(g, k) == f64, "f64");
    uint64_t len = 99;
    CHECK((k = sm_gguf_find_key(g, "s.str")) >= 0 && !strcmp(sm_gguf_kv_str(g, k, &len), "hello, gguf") && len == 11, "str");
    CHECK((k = sm_gguf_find_key(g, "s.empty")) >= 0 && !strcmp(sm_gguf_kv_str(g, k, &len), "") && len == 0, "empty str");
    int b;
    uint32_t u;
    float f;
    CHECK(sm_gguf_get_bool(g, "s.bool2", &b, &e) == 0 && b == 1, "get_bool");
    CHECK(sm_gguf_get_u32(g, "s.u16", &u, &e) == 0 && u == u16, "get_u32 widens");
    CHECK(sm_gguf_get_u32(g, "s.i8", &u, &e) == SM_EFORMAT, "get_u32 of a negative");
    CHECK(sm_gguf_get_u32(g, "s.u64", &u, &e) == SM_EFORMAT, "get_u32 of 2^63");
    CHECK(sm_gguf_get_f32(g, "s.f64", &f, &e) == 0 && f == -3.25f, "get_f32 of f64");
    for (int a = 0; a < 11; a++) {
        char key[32];
        snprintf(key, sizeof key, "a.%d", (int)arr_types[a]);
        k = sm_gguf_find_key(g, key);
        CHECK(k >= 0 && sm_gguf_kv_type(g, k) == SM_GGUF_ARRAY && sm_gguf_arr_type(g, k) == arr_types[a] &&
              sm_gguf_arr_n(g, k) == 5 && !memcmp(sm_gguf_arr_data(g, k), arr_vals[a], 5 * arr_sizes[a]), "array %s", key);
    }
    CHECK((k = sm_gguf_find_key(g, "a.empty")) >= 0 && sm_gguf_arr_n(g, k) == 0, "empty array");
    k = sm_gguf_find_key(g, "a.str");
    CHECK(k >= 0 && sm_gguf_arr_type(g, k) == SM_GGUF_STRING && sm_gguf_arr_n(g, k) == 4, "string array");
    for (uint64_t j = 0; k >= 0 && j < 4; j++) {
        const char *s = sm_gguf_arr_str(g, k, j, &len);
        CHECK(len == lens[j] && !memcmp(s, strs[j], len) && s[len] == '\0', "string %llu", (unsigned long long)j);
    }
    CHECK((k = sm_gguf_find_key(g, "a.str_nul")) >= 0 && sm_gguf_arr_n(g, k) == 2 && !strcmp(sm_gguf_arr_str(g, k, 0, NULL), "alpha"), "str_nul");
    CHECK((k = sm_gguf_find_key(g, "a.str_empty")) >= 0 && sm_gguf_arr_n(g, k) == 0, "str_empty");
    CHECK(sm_gguf_n_tensors(g) == NT, "tensor count");
    for (int t = 0; t < NT && t < sm_gguf_n_tensors(g); t++) {
        const sm_gguf_tensor *x = sm_gguf_tensor_at(g, t);
        CHECK(!strcmp(x->name, ts[t].name) && x->type == ts[t].type && x->n_dims == ts[t].n_dims &&
              !memcmp(x->ne, ts[t].ne, sizeof x->ne), "tensor %s info", ts[t].name);
        CHECK(x->offset % 64 == 0 && x->nbytes == nbytes[t] && x->data && !memcmp(x->data, data[t], nbytes[t]),
              "tensor %s data", ts[t].name);
        CHECK(sm_gguf_find_tensor(g, ts[t].name) == x, "find %s", ts[t].name);
    }

    /* A copy through a fresh writer is byte-identical, from the mapping and from memory. */
    size_t size;
    uint8_t *orig = read_file(path, &size);
    CHECK(orig && size == sm_gguf_file_size(g), "file size");
    sm_gguf *gm = orig ? sm_gguf_open_memory(orig, size, "round.gguf", &e) : NULL;
    CHECK(gm, "open_memory: %s", e.msg);
    const sm_gguf *srcs[2] = {g, gm};
    for (int s = 0; s < 2 && gm; s++) {
        sm_gguf_writer *c = sm_gguf_writer_new();
        for (int64_t i = 0; i < sm_gguf_n_kv(srcs[s]); i++) CHECK(sm_gguf_copy_kv(c, srcs[s], i) == 0, "copy_kv");
        for (int64_t i = 0; i < sm_gguf_n_tensors(srcs[s]); i++) {
            const sm_gguf_tensor *x = sm_gguf_tensor_at(srcs[s], i);
            CHECK(sm_gguf_add_tensor(c, x->name, x->type, x->n_dims, x->ne, x->data) == 0, "copy tensor");
        }
        const char *copy = tmp_path("copy.gguf");
        CHECK(sm_gguf_write(c, copy, &e) == 0, "write copy: %s", e.msg);
        sm_gguf_writer_free(c);
        size_t csize;
        uint8_t *cbytes = read_file(copy, &csize);
        CHECK(cbytes && csize == size && !memcmp(cbytes, orig, size), "copy %d is byte-identical", s);
        free(cbytes);
        unlink(copy);
    }
    sm_gguf_close(gm);
    free(orig);
    sm_gguf_close(g);
    for (int t = 0; t < NT; t++) free(data[t]);
    unlink(path);
    printf("round trip: 13 scalar kvs, 15 arrays, 5 tensor types, alignment 64: ok\n");
}

/* Arrays of arrays are kept as bytes and copied exactly. */
static void test_nested_arrays(void) {
    bytes b = {0};
    put_le(&b, 0x46554747u, 4); put_le(&b, 3, 4); put_le(&b, 0, 8); put_le(&b, 2, 8);
    put_str(&b, "nested"); put_le(&b, SM_GGUF_ARRAY, 4); put_le(&b, SM_GGUF_ARRAY, 4); put_le(&b, 2, 8);
    put_le(&b, SM_GGUF_UINT16, 4); put_le(&b, 2, 8); put_le(&b, 7, 2); put_le(&b, 8, 2);
    put_le(&b, SM_GGUF_STRING, 4); put_le(&b, 1, 8); put_str(&b, "deep");
    put_str(&b, "after"); put_le(&b, SM_GGUF_INT8, 4); put_le(&b, 0xff, 1);
    sm_error e = {0};
    sm_gguf *g = sm_gguf_open_memory(b.p, b.n, "nested.gguf", &e);
    CHECK(g, "nested: %s", e.msg);
    if (g) {
        CHECK(sm_gguf_arr_type(g, 0) == SM_GGUF_ARRAY && sm_gguf_arr_n(g, 0) == 2 && sm_gguf_kv_i64(g, 1) == -1, "nested values");
        sm_gguf_writer *w = sm_gguf_writer_new();
        for (int64_t i = 0; i < 2; i++) sm_gguf_copy_kv(w, g, i);
        const char *path = tmp_path("nested.gguf");
        CHECK(sm_gguf_write(w, path, &e) == 0, "write: %s", e.msg);
        size_t size;
        uint8_t *p = read_file(path, &size);
        CHECK(p && size == b.n && !memcmp(p, b.p, size), "nested copy byte-identical");
        free(p);
        unlink(path);
        sm_gguf_writer_free(w);
        sm_gguf_close(g);
    }
    /* Nested beyond the limit is refused. */
    bytes d = {0};
    put_le(&d, 0x46554747u, 4); put_le(&d, 3, 4); put_le(&d, 0, 8); put_le(&d, 1, 8);
    put_str(&d, "deep"); put_le(&d, SM_GGUF_ARRAY, 4);
    for (int i = 0; i < 40; i++) { put_le(&d, SM_GGUF_ARRAY, 4); put_le(&d, 1, 8); }
    put_le(&d, SM_GGUF_UINT8, 4); put_le(&d, 0, 8);
    expect_fail(&d, "arrays nested 40 deep", "nested");
    (void)d;
    free(b.p);
    free(d.p);
}

static void test_files(void) {
    sm_error e = {0};
    CHECK(!sm_gguf_open(tmp_path("missing.gguf"), &e) && e.code == SM_EIO && strstr(e.msg, "missing.gguf"), "missing: %s", e.msg);
    CHECK(!sm_gguf_open(tmp_dir, &e) && e.code == SM_EIO, "directory: %s", e.msg);
    const char *empty = tmp_path("empty.gguf");
    FILE *f = fopen(empty, "wb");
    if (f) fclose(f);
    CHECK(!sm_gguf_open(empty, &e) && e.code == SM_EFORMAT && strstr(e.msg, "at byte 0"), "empty: %s", e.msg);
    unlink(empty);
    CHECK(!sm_gguf_open_memory(NULL, 0, NULL, &e) && e.code == SM_EFORMAT, "empty memory: %s", e.msg);
    CHECK(!sm_gguf_open_memory("GGUF", 4, NULL, NULL), "NULL sm_error");
    sm_gguf_close(NULL);
    sm_gguf_writer_free(NULL);
}

/* llama.cpp's vocabulary files, copied key by key, come out byte-identical. */
static void test_vocab_files(const char *shared) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/tokenizers", shared ? shared : "../shared");
    DIR *d = opendir(dir);
    if (!d) { printf("SKIP vocab cross-check: %s not found\n", dir); return; }
    int n = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        size_t len = strlen(ent->d_name);
        if (strncmp(ent->d_name, "ggml-vocab-", 11) || len < 5 || strcmp(ent->d_name + len - 5, ".gguf")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        sm_error e = {0};
        sm_gguf *g = sm_gguf_open(path, &e);
        CHECK(g, "%s", e.msg);
        if (!g) continue;
        int64_t k = sm_gguf_find_key(g, "tokenizer.ggml.tokens");
        CHECK(k >= 0 && sm_gguf_arr_type(g, k) == SM_GGUF_STRING && sm_gguf_arr_n(g, k) > 1000, "%s tokens", ent->d_name);
        CHECK(sm_gguf_get_str(g, "tokenizer.ggml.model") != NULL, "%s model", ent->d_name);
        sm_gguf_writer *w = sm_gguf_writer_new();
        for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) CHECK(sm_gguf_copy_kv(w, g, i) == 0, "copy");
        for (int64_t i = 0; i < sm_gguf_n_tensors(g); i++) {
            const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
            CHECK(sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == 0, "tensor");
        }
        const char *out = tmp_path("vocab.gguf");
        CHECK(sm_gguf_write(w, out, &e) == 0, "write: %s", e.msg);
        sm_gguf_writer_free(w);
        size_t a_size, b_size;
        uint8_t *a = read_file(path, &a_size), *b = read_file(out, &b_size);
        CHECK(a && b && a_size == b_size && !memcmp(a, b, a_size), "%s: copy differs (%zu vs %zu bytes)", ent->d_name, a_size, b_size);
        printf("vocab %-34s %lld kvs, %llu tokens: byte-identical copy\n", ent->d_name, (long long)sm_gguf_n_kv(g),
               (unsigned long long)(k >= 0 ? sm_gguf_arr_n(g, k) : 0));
        free(a), free(b);
        unlink(out);
        sm_gguf_close(g);
        n++;
    }
    closedir(d);
    CHECK(n >= 1, "no vocab files in %s", dir);
}

int main(int argc, char **argv) {
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    test_hand_made();
    test_alignment_key();
    test_round_trip();
    test_nested_arrays();
    test_files();
    test_vocab_files(argc > 1 ? argv[1] : NULL);
    rmdir(tmp_dir);
    if (failures) { fprintf(stderr, "test_gguf: %d failures\n", failures); return 1; }
    printf("test_gguf: ok\n");
    return 0;
}
