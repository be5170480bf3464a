/* gguf_write.c: the GGUF writer (gguf.h holds the byte layout and the contract).
 *
 * The writer keeps each metadata value already encoded (its u32 type and little-endian bytes),
 * in insertion order, so that copying a key from a file reproduces it byte for byte. Tensors are
 * referenced, not copied, and laid out at write time: each at the next multiple of the alignment,
 * zero-padded after, the way llama.cpp and gguf-py lay them out. Like gguf-py, a file without
 * tensors ends right after its metadata (llama.cpp's vocabulary files are written that way).
 */
#include "gguf.h"
#include "tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TENSOR_NAME 63 /* llama.cpp refuses names of GGML_MAX_NAME (64) bytes or more */

typedef struct {
    char *key;
    sm_gguf_type type;
    uint8_t *value; /* encoded, little-endian */
    size_t value_len;
} writer_kv;

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[SM_GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
} writer_tensor;

struct sm_gguf_writer {
    writer_kv *kvs;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* Grows an array of elements of size `elem` to hold one more; returns 0 or -1. */
static int grow(void **items, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t new_cap = *cap ? *cap * 2 : 16;
    if (new_cap > SIZE_MAX / elem) return -1;
    void *p = realloc(*items, new_cap * elem);
    if (!p) return -1;
    *items = p, *cap = new_cap;
    return 0;
}

sm_gguf_writer *sm_gguf_writer_new(void) { return calloc(1, sizeof(sm_gguf_writer)); }

void sm_gguf_writer_free(sm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) free(w->kvs[i].key), free(w->kvs[i].value);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* ---- encoding values ---- */

static void le_store(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++, v >>= 8) p[i] = (uint8_t)v;
}

static size_t scalar_size(sm_gguf_type t) {
    switch (t) {
    case SM_GGUF_UINT8: case SM_GGUF_INT8: case SM_GGUF_BOOL: return 1;
    case SM_GGUF_UINT16: case SM_GGUF_INT16: return 2;
    case SM_GGUF_UINT32: case SM_GGUF_INT32: case SM_GGUF_FLOAT32: return 4;
    case SM_GGUF_UINT64: case SM_GGUF_INT64: case SM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Encodes n native scalars of size es at src as little-endian at dst. */
static void encode_scalars(uint8_t *dst, const void *src, uint64_t n, size_t es) {
    const uint8_t *s = src;
    for (uint64_t j = 0; j < n; j++, s += es, dst += es) {
        uint64_t v;
        switch (es) {
        case 1: v = *s; break;
        case 2: { uint16_t x; memcpy(&x, s, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, s, 4); v = x; break; }
        default: memcpy(&v, s, 8); break;
        }
        le_store(dst, v, es);
    }
}

/* Takes ownership of value (freed on failure too). Replaces the value of an existing key in place. */
static int set_kv(sm_gguf_writer *w, const char *key, sm_gguf_type type, uint8_t *value, size_t value_len) {
    if (!w || !key) { free(value); return SM_EINVAL; }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].value);
            w->kvs[i].type = type, w->kvs[i].value = value, w->kvs[i].value_len = value_len;
            return SM_OK;
        }
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs)) { free(k); free(value); return SM_ENOMEM; }
    w->kvs[w->n_kv++] = (writer_kv){k, type, value, value_len};
    return SM_OK;
}

int sm_gguf_set_scalar(sm_gguf_writer *w, const char *key, sm_gguf_type type, const void *v) {
    size_t es = scalar_size(type);
    if (!es || !v) return SM_EINVAL;
    uint8_t *value = malloc(es);
    if (!value) return SM_ENOMEM;
    memcpy(value, v, es); /* the caller's bytes are already little-endian */
    return set_kv(w, key, type, value, es);
}

static int set_number(sm_gguf_writer *w, const char *key, sm_gguf_type type, uint64_t bits) {
    uint8_t le[8];
    le_store(le, bits, scalar_size(type));
    return sm_gguf_set_scalar(w, key, type, le);
}

int sm_gguf_set_u32(sm_gguf_writer *w, const char *key, uint32_t v) { return set_number(w, key, SM_GGUF_UINT32, v); }
int sm_gguf_set_i32(sm_gguf_writer *w, const char *key, int32_t v) { return set_number(w, key, SM_GGUF_INT32, (uint32_t)v); }
int sm_gguf_set_u64(sm_gguf_writer *w, const char *key, uint64_t v) { return set_number(w, key, SM_GGUF_UINT64, v); }
int sm_gguf_set_bool(sm_gguf_writer *w, const char *key, int v) { return set_number(w, key, SM_GGUF_BOOL, v != 0); }

int sm_gguf_set_f32(sm_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return set_number(w, key, SM_GGUF_FLOAT32, bits);
}

/* u64 length then the bytes. */
static uint8_t *put_str(uint8_t *p, const char *s, uint64_t len) {
    le_store(p, len, 8);
    if (len) memcpy(p + 8, s, (size_t)len);
    return p + 8 + len;
}

int sm_gguf_set_str(sm_gguf_writer *w, const char *key, const char *v) {
    if (!v) return SM_EINVAL;
    size_t len = strlen(v);
    uint8_t *value = malloc(8 + len);
    if (!value) return SM_ENOMEM;
    put_str(value, v, len);
    return set_kv(w, key, SM_GGUF_STRING, value, 8 + len);
}

int sm_gguf_set_arr(sm_gguf_writer *w, const char *key, sm_gguf_type type, const void *data, uint64_t n) {
    size_t es = scalar_size(type);
    if (!es || (n && !data)) return SM_EINVAL;
    if (n > (SIZE_MAX - 12) / es) return SM_ENOMEM;
    uint8_t *value = malloc(12 + (size_t)n * es);
    if (!value) return SM_ENOMEM;
    le_store(value, type, 4);
    le_store(value + 4, n, 8);
    encode_scalars(value + 12, data, n, es);
    return set_kv(w, key, SM_GGUF_ARRAY, value, 12 + (size_t)n * es);
}

int sm_gguf_set_arr_str(sm_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n) {
    if (n && !strs) return SM_EINVAL;
    size_t total = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (!strs[j]) return SM_EINVAL;
        uint64_t len = lens ? lens[j] : strlen(strs[j]);
        if (len > SIZE_MAX - 8 || total > SIZE_MAX - 8 - len) return SM_ENOMEM;
        total += 8 + (size_t)len;
    }
    uint8_t *value = malloc(total), *p = value + 12;
    if (!value) return SM_ENOMEM;
    le_store(value, SM_GGUF_STRING, 4);
    le_store(value + 4, n, 8);
    for (uint64_t j = 0; j < n; j++) p = put_str(p, strs[j], lens ? lens[j] : strlen(strs[j]));
    return set_kv(w, key, SM_GGUF_ARRAY, value, total);
}

int sm_gguf_copy_kv(sm_gguf_writer *w, const sm_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= sm_gguf_n_kv(g)) return SM_EINVAL;
    size_t len;
    const void *raw = sm_gguf_kv_raw(g, i, &len);
    uint8_t *value = malloc(len ? len : 1);
    if (!value) return SM_ENOMEM;
    memcpy(value, raw, len);
    return set_kv(w, sm_gguf_key(g, i), sm_gguf_kv_type(g, i), value, len);
}

int sm_gguf_set_alignment(sm_gguf_writer *w, uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1))) return SM_EINVAL;
    return sm_gguf_set_u32(w, "general.alignment", alignment);
}

int sm_gguf_add_tensor(sm_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data) {
    if (!w || !name || !ne || !*name || strlen(name) > MAX_TENSOR_NAME) return SM_EINVAL;
    if (!sm_type_supported(type) || n_dims < 1 || n_dims > SM_GGUF_MAX_DIMS) return SM_EINVAL;
    writer_tensor t = {.type = type, .n_dims = n_dims, .data = data};
    uint64_t rows = 1;
    for (int d = 0; d < SM_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0) return SM_EINVAL;
        if (d > 0) {
            if (t.ne[d] && rows > (uint64_t)INT64_MAX / (uint64_t)t.ne[d]) return SM_ENOMEM;
            rows *= (uint64_t)t.ne[d];
        }
    }
    size_t row;
    if (sm_type_row_bytes(type, t.ne[0], &row)) return SM_EINVAL; /* ne[0] not whole blocks */
    if (rows && row > SIZE_MAX / rows) return SM_ENOMEM;
    t.nbytes = row * (size_t)rows;
    if (t.nbytes && !data) return SM_EINVAL;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return SM_EINVAL;
    if (!(t.name = strdup(name)) || grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors)) {
        free(t.name);
        return SM_ENOMEM;
    }
    w->tensors[w->n_tensors++] = t;
    return SM_OK;
}

/* ---- writing ---- */

/* The alignment the file declares (general.alignment), or the default. */
static int writer_alignment(const sm_gguf_writer *w, uint32_t *alignment, sm_error *err, const char *path) {
    *alignment = SM_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        uint32_t a = w->kvs[i].type == SM_GGUF_UINT32 ? (uint32_t)(w->kvs[i].value[0] | w->kvs[i].value[1] << 8 |
                                                                   w->kvs[i].value[2] << 16 | (uint32_t)w->kvs[i].value[3] << 24) : 0;
        if (a == 0 || (a & (a - 1)))
            return sm_err(err, SM_EINVAL, "%s: general.alignment must be a u32 power of two", path);
        *alignment = a;
    }
    return 0;
}

typedef struct {
    FILE *f;
    int failed;
} out_stream;

static void out_bytes(out_stream *o, const void *p, size_t n) {
    if (!o->failed && n && fwrite(p, 1, n, o->f) != n) o->failed = 1;
}

static void out_le(out_stream *o, uint64_t v, size_t n) {
    uint8_t b[8];
    le_store(b, v, n);
    out_bytes(o, b, n);
}

static void out_zeros(out_stream *o, size_t n) {
    static const uint8_t zeros[256];
    for (size_t k; n; n -= k) out_bytes(o, zeros, k = n < sizeof zeros ? n : sizeof zeros);
}

static size_t padding(uint64_t pos, uint32_t alignment) { return (size_t)((alignment - pos % alignment) % alignment); }

static void write_all(out_stream *o, const sm_gguf_writer *w, uint32_t alignment) {
    out_le(o, 0x46554747u, 4); /* "GGUF" */
    out_le(o, 3, 4);
    out_le(o, w->n_tensors, 8);
    out_le(o, w->n_kv, 8);
    uint64_t pos = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kvs[i];
        size_t len = strlen(kv->key);
        out_le(o, len, 8);
        out_bytes(o, kv->key, len);
        out_le(o, (uint64_t)kv->type, 4);
        out_bytes(o, kv->value, kv->value_len);
        pos += 8 + len + 4 + kv->value_len;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        out_le(o, len, 8);
        out_bytes(o, t->name, len);
        out_le(o, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) out_le(o, (uint64_t)t->ne[d], 8);
        out_le(o, (uint64_t)t->type, 4);
        out_le(o, offset, 8);
        pos += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        offset += t->nbytes + padding(t->nbytes, alignment);
    }
    if (w->n_tensors == 0) return;
    out_zeros(o, padding(pos, alignment));
    for (size_t i = 0; i < w->n_tensors; i++) {
        out_bytes(o, w->tensors[i].data, w->tensors[i].nbytes);
        out_zeros(o, padding(w->tensors[i].nbytes, alignment));
    }
}

/* fsyncs the directory holding path so that a rename into it is durable. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fsync(fd), close(fd);
    free(copy);
}

int sm_gguf_write(sm_gguf_writer *w, const char *path, sm_error *err) {
    if (!w || !path) return sm_err(err, SM_EINVAL, "sm_gguf_write: no writer or path");
    uint32_t alignment;
    if (writer_alignment(w, &alignment, err, path)) return SM_EINVAL;
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = sm_err(err, SM_EIO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    fchmod(fd, 0644);
    out_stream o = {fdopen(fd, "wb"), 0};
    if (!o.f) { close(fd); o.failed = 1; }
    if (o.f) {
        setvbuf(o.f, NULL, _IOFBF, 1 << 20);
        write_all(&o, w, alignment);
        if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0) o.failed = 1;
        if (fclose(o.f) != 0) o.failed = 1;
    }
    int e = errno;
    if (!o.failed && rename(tmp, path) != 0) o.failed = 1, e = errno;
    if (o.failed) {
        unlink(tmp);
        free(tmp);
        return sm_err(err, SM_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    sync_dir(path);
    return SM_OK;
}
