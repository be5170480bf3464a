/* gguf.c: the GGUF reader (gguf.h holds the byte layout and the contract; gguf_write.c the writer).
 *
 * Opening walks the file once, field by field, and checks every count, length and offset against
 * the bytes that remain before using it, so a corrupt count fails with a message instead of a
 * huge allocation. What callers read as metadata (keys, strings, arrays) is decoded into an
 * arena that the handle owns; each value's stored bytes are remembered too, so that
 * sm_gguf_copy_kv reproduces a file's metadata byte for byte. Tensor data stays in the read-only
 * mapping (or the caller's buffer).
 */
#include "gguf.h"
#include "tensor.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u    /* "GGUF" read as a little-endian u32 */
#define MAX_NESTING 8             /* arrays of arrays deeper than this are refused */
#define MAX_TYPE_ID 64            /* ggml type ids at or above this are refused */
#define MIN_KV_BYTES 13           /* u64 key length, u32 type, a 1-byte value */
#define MIN_TENSOR_INFO_BYTES 32  /* u64 name length, u32 n_dims, one u64 ne, u32 type, u64 offset */

/* ---- the arena: every decoded key, string and array of one handle, freed in one go ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

typedef struct {
    arena_block *head;
} arena;

/* n bytes aligned to 16, or NULL when out of memory. */
static void *arena_alloc(arena *a, size_t n) {
    if (n > SIZE_MAX - 15) return NULL;
    n = (n + 15) & ~(size_t)15;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        if (cap > SIZE_MAX - sizeof *b) return NULL;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head, b->used = 0, b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_free(arena *a) {
    for (arena_block *b = a->head, *next; b; b = next) next = b->next, free(b);
    a->head = NULL;
}

/* A NUL-terminated copy of n bytes. */
static char *arena_strndup(arena *a, const void *s, size_t n) {
    char *p = n < SIZE_MAX ? arena_alloc(a, n + 1) : NULL;
    if (p) memcpy(p, s, n), p[n] = '\0';
    return p;
}

/* ---- a name → index table (keys, tensor names), open addressing ---- */

typedef struct {
    const char *name; /* NULL: empty slot */
    uint64_t len;
    int64_t index;
} name_slot;

typedef struct {
    name_slot *slots;
    uint64_t mask;
} name_index;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int index_init(name_index *ix, arena *a, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap *= 2; /* n is bounded by the file size, so this ends */
    if (cap > SIZE_MAX / sizeof(name_slot)) return -1;
    ix->slots = arena_alloc(a, cap * sizeof(name_slot));
    if (!ix->slots) return -1;
    memset(ix->slots, 0, cap * sizeof(name_slot));
    ix->mask = cap - 1;
    return 0;
}

/* The slot holding `name`, or the empty slot where it would go. */
static name_slot *index_slot(const name_index *ix, const char *name, uint64_t len) {
    for (uint64_t h = hash_bytes(name, len);; h++) {
        name_slot *s = &ix->slots[h & ix->mask];
        if (!s->name || (s->len == len && memcmp(s->name, name, len) == 0)) return s;
    }
}

/* ---- the handle ---- */

typedef struct {
    const char *key;        /* NUL-terminated copy */
    uint64_t key_len;
    sm_gguf_type type;
    size_t offset;          /* byte offset of the key in the file */
    const uint8_t *raw;     /* the value as stored (after its u32 type), inside the file */
    size_t raw_len;
    union { uint64_t u; int64_t i; double f; } num; /* numbers and bools, widened */
    const char *str;        /* strings: NUL-terminated copy */
    uint64_t str_len;
    sm_gguf_type arr_type;
    uint64_t arr_n;
    void *arr_data;         /* arrays of numbers and bools: packed, native order */
    const char **arr_strs;  /* arrays of strings: NUL-terminated copies */
    uint64_t *arr_lens;
} gguf_kv;

struct sm_gguf {
    const char *path;
    const uint8_t *base;
    size_t size;
    int mapped; /* base is our mmap */
    uint32_t version, alignment;
    size_t data_offset;
    int64_t n_kv, n_tensors;
    gguf_kv *kvs;
    sm_gguf_tensor *tensors;
    name_index key_index, tensor_index;
    arena arena;
};

/* ---- the field reader ---- */

typedef struct {
    const uint8_t *buf;
    size_t size, pos;
    const char *name;
    sm_error *err;
} reader;

static size_t remaining(const reader *r) { return r->size - r->pos; }

/* Fails unless n more bytes are there, naming what was expected. */
static int need(reader *r, size_t n, const char *what) {
    if (remaining(r) >= n) return 0;
    return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected %s (%zu bytes), got end of file (%zu bytes left)",
                  r->name, r->pos, what, n, remaining(r));
}

static uint64_t le_load(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int read_u32(reader *r, uint32_t *v, const char *what) {
    if (need(r, 4, what)) return SM_EFORMAT;
    *v = (uint32_t)le_load(r->buf + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int read_u64(reader *r, uint64_t *v, const char *what) {
    if (need(r, 8, what)) return SM_EFORMAT;
    *v = le_load(r->buf + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string: u64 length, then that many bytes, which must all be in the file. */
static int read_str(reader *r, const char **s, uint64_t *len, const char *what) {
    size_t at = r->pos;
    if (read_u64(r, len, what)) return SM_EFORMAT;
    if (*len > remaining(r))
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected the length of %s (at most the %zu bytes left), got %llu",
                      r->name, at, what, remaining(r), (unsigned long long)*len);
    *s = (const char *)r->buf + r->pos;
    r->pos += (size_t)*len;
    return 0;
}

/* A count of items of at least min_bytes each, which must fit in the bytes that remain. */
static int check_count(reader *r, size_t at, uint64_t n, size_t min_bytes, const char *what) {
    if (n <= remaining(r) / min_bytes) return 0;
    return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected a count of %s that fits in the %zu bytes left (%zu bytes each at least), got %llu",
                  r->name, at, what, remaining(r), min_bytes, (unsigned long long)n);
}

static int oom(reader *r) {
    return sm_err(r->err, SM_ENOMEM, "%s: out of memory at byte %zu", r->name, r->pos);
}

/* Bytes of one scalar of type t; 0 for strings, arrays and unknown types. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case SM_GGUF_UINT8: case SM_GGUF_INT8: case SM_GGUF_BOOL: return 1;
    case SM_GGUF_UINT16: case SM_GGUF_INT16: return 2;
    case SM_GGUF_UINT32: case SM_GGUF_INT32: case SM_GGUF_FLOAT32: return 4;
    case SM_GGUF_UINT64: case SM_GGUF_INT64: case SM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static int valid_value_type(uint32_t t) { return t <= SM_GGUF_FLOAT64; }

/* Smallest number of bytes one value of type t takes in a file. */
static size_t min_value_bytes(uint32_t t) {
    return t == SM_GGUF_STRING ? 8 : t == SM_GGUF_ARRAY ? 12 : scalar_size(t);
}

static int read_value_type(reader *r, uint32_t *t, const char *what) {
    size_t at = r->pos;
    if (read_u32(r, t, what)) return SM_EFORMAT;
    if (valid_value_type(*t)) return 0;
    return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected %s (0..12), got %u", r->name, at, what, *t);
}

/* Skips an array's elements (used for arrays of arrays, which are kept only as bytes). */
static int skip_array(reader *r, int depth) {
    size_t at = r->pos;
    uint32_t t;
    uint64_t n;
    if (depth > MAX_NESTING)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected arrays nested at most %d deep, got deeper",
                      r->name, at, MAX_NESTING);
    if (read_value_type(r, &t, "an array element type") || read_u64(r, &n, "an array length")) return SM_EFORMAT;
    if (check_count(r, at + 4, n, min_value_bytes(t), "array elements")) return SM_EFORMAT;
    if (scalar_size(t)) { r->pos += (size_t)n * scalar_size(t); return 0; }
    for (uint64_t j = 0; j < n; j++) {
        const char *s;
        uint64_t len;
        if (t == SM_GGUF_STRING ? read_str(r, &s, &len, "an array string") : skip_array(r, depth + 1)) return SM_EFORMAT;
    }
    return 0;
}

/* Decodes one little-endian scalar of type t at p into kv->num. */
static void decode_scalar(gguf_kv *kv, uint32_t t, const uint8_t *p) {
    uint64_t v = le_load(p, (int)scalar_size(t));
    switch (t) {
    case SM_GGUF_INT8: kv->num.i = (int8_t)v; break;
    case SM_GGUF_INT16: kv->num.i = (int16_t)v; break;
    case SM_GGUF_INT32: kv->num.i = (int32_t)v; break;
    case SM_GGUF_INT64: kv->num.i = (int64_t)v; break;
    case SM_GGUF_FLOAT32: { uint32_t b = (uint32_t)v; float f; memcpy(&f, &b, 4); kv->num.f = f; break; }
    case SM_GGUF_FLOAT64: memcpy(&kv->num.f, &v, 8); break;
    default: kv->num.u = v; break;
    }
}

static int read_array(reader *r, arena *a, gguf_kv *kv) {
    uint32_t t;
    uint64_t n;
    if (read_value_type(r, &t, "an array element type")) return SM_EFORMAT;
    size_t at = r->pos;
    if (read_u64(r, &n, "an array length")) return SM_EFORMAT;
    if (check_count(r, at, n, min_value_bytes(t), "array elements")) return SM_EFORMAT;
    kv->arr_type = (sm_gguf_type)t;
    kv->arr_n = n;
    const size_t es = scalar_size(t);
    if (es) { /* n * es fits in the bytes left, so it fits in size_t */
        uint8_t *dst = arena_alloc(a, (size_t)n * es);
        if (!dst) return oom(r);
        const uint8_t *src = r->buf + r->pos;
        for (uint64_t j = 0; j < n; j++) { /* little-endian to native, element by element */
            uint64_t v = le_load(src + j * es, (int)es);
            switch (es) {
            case 1: dst[j] = (uint8_t)v; break;
            case 2: { uint16_t x = (uint16_t)v; memcpy(dst + j * 2, &x, 2); break; }
            case 4: { uint32_t x = (uint32_t)v; memcpy(dst + j * 4, &x, 4); break; }
            default: memcpy(dst + j * 8, &v, 8); break;
            }
        }
        kv->arr_data = dst;
        r->pos += (size_t)n * es;
        return 0;
    }
    if (t == SM_GGUF_STRING) { /* n <= bytes left / 8, so these tables are bounded by the file size */
        kv->arr_strs = arena_alloc(a, (size_t)n * sizeof *kv->arr_strs);
        kv->arr_lens = arena_alloc(a, (size_t)n * sizeof *kv->arr_lens);
        if (!kv->arr_strs || !kv->arr_lens) return oom(r);
        for (uint64_t j = 0; j < n; j++) {
            const char *s;
            if (read_str(r, &s, &kv->arr_lens[j], "an array string")) return SM_EFORMAT;
            if (!(kv->arr_strs[j] = arena_strndup(a, s, (size_t)kv->arr_lens[j]))) return oom(r);
        }
        return 0;
    }
    for (uint64_t j = 0; j < n; j++) /* arrays of arrays: kept as bytes only */
        if (skip_array(r, 2)) return SM_EFORMAT;
    return 0;
}

static int read_kv(reader *r, sm_gguf *g, gguf_kv *kv) {
    const char *key;
    uint32_t t;
    kv->offset = r->pos;
    if (read_str(r, &key, &kv->key_len, "a metadata key")) return SM_EFORMAT;
    if (!(kv->key = arena_strndup(&g->arena, key, (size_t)kv->key_len))) return oom(r);
    name_slot *slot = index_slot(&g->key_index, kv->key, kv->key_len);
    if (slot->name)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected a new metadata key, got '%s' a second time",
                      r->name, kv->offset, kv->key);
    *slot = (name_slot){kv->key, kv->key_len, kv - g->kvs};
    if (read_value_type(r, &t, "a metadata value type")) return SM_EFORMAT;
    kv->type = (sm_gguf_type)t;
    kv->raw = r->buf + r->pos;
    const size_t start = r->pos;
    if (scalar_size(t)) {
        if (need(r, scalar_size(t), "a metadata value")) return SM_EFORMAT;
        decode_scalar(kv, t, r->buf + r->pos);
        r->pos += scalar_size(t);
    } else if (t == SM_GGUF_STRING) {
        const char *s;
        if (read_str(r, &s, &kv->str_len, "a metadata string")) return SM_EFORMAT;
        if (!(kv->str = arena_strndup(&g->arena, s, (size_t)kv->str_len))) return oom(r);
    } else if (read_array(r, &g->arena, kv)) {
        return r->err ? r->err->code : SM_EFORMAT;
    }
    kv->raw_len = r->pos - start;
    return 0;
}

/* general.alignment, when present, must be a u32 power of two. */
static int read_alignment(reader *r, sm_gguf *g) {
    g->alignment = SM_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = sm_gguf_find_key(g, "general.alignment");
    if (i < 0) return 0;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != SM_GGUF_UINT32)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected general.alignment to be a u32, got value type %d",
                      r->name, kv->offset, (int)kv->type);
    if (kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)))
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected general.alignment to be a power of two, got %llu",
                      r->name, kv->offset, (unsigned long long)kv->num.u);
    g->alignment = (uint32_t)kv->num.u;
    return 0;
}

/* One tensor info. Its offset is checked later, once the data section's start is known. */
static int read_tensor_info(reader *r, sm_gguf *g, sm_gguf_tensor *t, size_t *offset_at) {
    const char *name;
    uint64_t len;
    uint32_t n_dims, type;
    const size_t at = r->pos;
    if (read_str(r, &name, &len, "a tensor name")) return SM_EFORMAT;
    if (!(t->name = arena_strndup(&g->arena, name, (size_t)len))) return oom(r);
    name_slot *slot = index_slot(&g->tensor_index, t->name, len);
    if (slot->name)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected a new tensor name, got '%s' a second time",
                      r->name, at, t->name);
    *slot = (name_slot){t->name, len, t - g->tensors};
    size_t dims_at = r->pos;
    if (read_u32(r, &n_dims, "a tensor's n_dims")) return SM_EFORMAT;
    if (n_dims < 1 || n_dims > SM_GGUF_MAX_DIMS)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected n_dims 1..%d for tensor '%s', got %u",
                      r->name, dims_at, SM_GGUF_MAX_DIMS, t->name, n_dims);
    t->n_dims = (int)n_dims;
    uint64_t n_elems = 1; /* the product of the nonzero dimensions */
    for (int d = 0; d < SM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        size_t ne_at = r->pos;
        if (read_u64(r, &ne, "a tensor dimension")) return SM_EFORMAT;
        if (ne > (uint64_t)INT64_MAX || (ne && n_elems > (uint64_t)INT64_MAX / ne))
            return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected dimensions of tensor '%s' with at most 2^63-1 elements in all, got ne[%d] = %llu",
                          r->name, ne_at, t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (ne) n_elems *= ne;
    }
    size_t type_at = r->pos;
    if (read_u32(r, &type, "a tensor type")) return SM_EFORMAT;
    if (type >= MAX_TYPE_ID)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected a ggml type id below %d for tensor '%s', got %u",
                      r->name, type_at, MAX_TYPE_ID, t->name, type);
    t->type = (int)type;
    *offset_at = r->pos;
    if (read_u64(r, &t->offset, "a tensor data offset")) return SM_EFORMAT;
    t->nbytes = 0;
    if (!sm_type_supported(t->type)) return 0; /* listed, size unknown */
    size_t row;
    if (sm_type_row_bytes(t->type, t->ne[0], &row))
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected ne[0] of tensor '%s' to be a multiple of %d for type %s, got %lld",
                      r->name, dims_at + 4, t->name, sm_type_block_elems(t->type), sm_type_name(t->type), (long long)t->ne[0]);
    uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3]; /* <= n_elems or 0 */
    if (rows && row > SIZE_MAX / rows)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected tensor '%s' to fit in memory, got %llu rows of %zu bytes",
                      r->name, dims_at, t->name, (unsigned long long)rows, row);
    t->nbytes = row * (size_t)rows;
    return 0;
}

/* Checks each tensor's offset and points it into the data section. */
static int place_tensors(reader *r, sm_gguf *g, const size_t *offset_at) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        sm_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected the data offset of tensor '%s' to be a multiple of %u, got %llu",
                          r->name, offset_at[i], t->name, g->alignment, (unsigned long long)t->offset);
        if (!sm_type_supported(t->type)) continue;
        const size_t room = g->data_offset <= g->size ? g->size - g->data_offset : 0;
        if (g->data_offset > g->size || t->offset > room || t->nbytes > room - t->offset)
            return sm_err(r->err, SM_EFORMAT, "%s: at byte %zu: expected tensor '%s' (%zu bytes at data offset %llu) inside the file (%zu bytes, data from byte %zu), got it past the end",
                          r->name, offset_at[i], t->name, t->nbytes, (unsigned long long)t->offset, g->size, g->data_offset);
        t->data = g->base + g->data_offset + t->offset;
    }
    return 0;
}

static int parse(reader *r, sm_gguf *g) {
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    if (read_u32(r, &magic, "the GGUF magic")) return SM_EFORMAT;
    if (magic != GGUF_MAGIC)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte 0: expected the GGUF magic \"GGUF\", got 0x%08x", r->name, magic);
    if (read_u32(r, &g->version, "the GGUF version")) return SM_EFORMAT;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte 4: expected a little-endian GGUF file, got a big-endian one", r->name);
    if (g->version != 2 && g->version != 3)
        return sm_err(r->err, SM_EFORMAT, "%s: at byte 4: expected GGUF version 3 (or 2), got %u", r->name, g->version);
    if (read_u64(r, &n_tensors, "the tensor count") || read_u64(r, &n_kv, "the metadata count")) return SM_EFORMAT;
    if (check_count(r, 16, n_kv, MIN_KV_BYTES, "metadata entries") ||
        check_count(r, 8, n_tensors, MIN_TENSOR_INFO_BYTES, "tensor infos"))
        return SM_EFORMAT;
    if (n_kv > (SIZE_MAX - 1) / sizeof *g->kvs || n_tensors > (SIZE_MAX - 1) / sizeof *g->tensors) return oom(r);
    g->n_kv = (int64_t)n_kv;
    g->kvs = arena_alloc(&g->arena, (size_t)n_kv * sizeof *g->kvs + 1);
    if (!g->kvs || index_init(&g->key_index, &g->arena, g->n_kv)) return oom(r);
    memset(g->kvs, 0, (size_t)n_kv * sizeof *g->kvs);
    for (int64_t i = 0; i < g->n_kv; i++)
        if (read_kv(r, g, &g->kvs[i])) return r->err ? r->err->code : SM_EFORMAT;
    if (read_alignment(r, g)) return SM_EFORMAT;

    if (check_count(r, 8, n_tensors, MIN_TENSOR_INFO_BYTES, "tensor infos")) return SM_EFORMAT;
    g->n_tensors = (int64_t)n_tensors;
    g->tensors = arena_alloc(&g->arena, (size_t)n_tensors * sizeof *g->tensors + 1);
    size_t *offset_at = malloc((size_t)n_tensors * sizeof *offset_at + 1);
    if (!g->tensors || !offset_at || index_init(&g->tensor_index, &g->arena, g->n_tensors)) {
        free(offset_at);
        return oom(r);
    }
    memset(g->tensors, 0, (size_t)n_tensors * sizeof *g->tensors);
    int rc = 0;
    for (int64_t i = 0; i < g->n_tensors && !rc; i++)
        if (read_tensor_info(r, g, &g->tensors[i], &offset_at[i])) rc = r->err ? r->err->code : SM_EFORMAT;
    if (!rc) {
        /* The data section starts at the next multiple of the alignment (past the end of a file
         * without tensors is fine: writers do not pad those). */
        size_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
        g->data_offset = r->pos + pad; /* r->pos <= size, so no overflow for any u32 alignment */
        rc = place_tensors(r, g, offset_at);
    }
    free(offset_at);
    return rc;
}

/* Builds a handle over buf (owned by the caller unless `mapped`). */
static sm_gguf *open_buffer(const void *buf, size_t size, const char *name, int mapped, sm_error *err) {
    arena a = {0};
    sm_gguf *g = arena_alloc(&a, sizeof *g);
    char *path = g ? arena_strndup(&a, name, strlen(name)) : NULL;
    if (!path) {
        arena_free(&a);
        if (mapped) munmap((void *)buf, size);
        sm_err(err, SM_ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    memset(g, 0, sizeof *g);
    g->arena = a;
    g->path = path;
    g->base = buf;
    g->size = size;
    g->mapped = mapped;
    reader r = {buf, size, 0, path, err};
    sm_error local = {0};
    if (!err) r.err = &local; /* the parser reads the code back from the report */
    if (parse(&r, g)) {
        sm_gguf_close(g);
        return NULL;
    }
    return g;
}

sm_gguf *sm_gguf_open_memory(const void *buf, size_t size, const char *name, sm_error *err) {
    if (!buf && size) { sm_err(err, SM_EINVAL, "sm_gguf_open_memory: NULL buffer"); return NULL; }
    return open_buffer(size ? buf : "", size, name ? name : "<memory>", 0, err);
}

sm_gguf *sm_gguf_open(const char *path, sm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { sm_err(err, SM_EIO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        sm_err(err, SM_EIO, "%s: cannot read: %s", path, strerror(e));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        sm_err(err, SM_EIO, "%s: cannot map: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        sm_err(err, SM_EIO, "%s: cannot map: file too large", path);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) { close(fd); return open_buffer("", 0, path, 0, err); }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) { sm_err(err, SM_EIO, "%s: cannot map: %s", path, strerror(e)); return NULL; }
    return open_buffer(map, size, path, 1, err);
}

void sm_gguf_close(sm_gguf *g) {
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, g->size);
    arena a = g->arena; /* g itself lives in the arena */
    arena_free(&a);
}

/* ---- accessors ---- */

const char *sm_gguf_path(const sm_gguf *g) { return g->path; }
uint32_t sm_gguf_version(const sm_gguf *g) { return g->version; }
uint32_t sm_gguf_alignment(const sm_gguf *g) { return g->alignment; }
size_t sm_gguf_file_size(const sm_gguf *g) { return g->size; }
size_t sm_gguf_data_offset(const sm_gguf *g) { return g->data_offset; }
int64_t sm_gguf_n_kv(const sm_gguf *g) { return g->n_kv; }

int64_t sm_gguf_find_key(const sm_gguf *g, const char *key) {
    const name_slot *s = index_slot(&g->key_index, key, strlen(key));
    return s->name ? s->index : -1;
}

static const gguf_kv *kv_at(const sm_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return &g->kvs[i];
}

const char *sm_gguf_key(const sm_gguf *g, int64_t i) { return kv_at(g, i)->key; }
sm_gguf_type sm_gguf_kv_type(const sm_gguf *g, int64_t i) { return kv_at(g, i)->type; }

static int is_unsigned(sm_gguf_type t) {
    return t == SM_GGUF_UINT8 || t == SM_GGUF_UINT16 || t == SM_GGUF_UINT32 || t == SM_GGUF_UINT64 || t == SM_GGUF_BOOL;
}
static int is_signed(sm_gguf_type t) {
    return t == SM_GGUF_INT8 || t == SM_GGUF_INT16 || t == SM_GGUF_INT32 || t == SM_GGUF_INT64;
}
static int is_float(sm_gguf_type t) { return t == SM_GGUF_FLOAT32 || t == SM_GGUF_FLOAT64; }

uint64_t sm_gguf_kv_u64(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    assert(is_unsigned(kv->type));
    return is_unsigned(kv->type) ? kv->num.u : 0;
}

int64_t sm_gguf_kv_i64(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    assert(is_unsigned(kv->type) || is_signed(kv->type));
    return is_signed(kv->type) ? kv->num.i : is_unsigned(kv->type) ? (int64_t)kv->num.u : 0;
}

double sm_gguf_kv_f64(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (is_float(kv->type)) return kv->num.f;
    if (is_signed(kv->type)) return (double)kv->num.i;
    assert(is_unsigned(kv->type));
    return (double)kv->num.u;
}

const char *sm_gguf_kv_str(const sm_gguf *g, int64_t i, uint64_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    assert(kv->type == SM_GGUF_STRING);
    if (len) *len = kv->str_len;
    return kv->str;
}

const void *sm_gguf_kv_raw(const sm_gguf *g, int64_t i, size_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    *len = kv->raw_len;
    return kv->raw;
}

sm_gguf_type sm_gguf_arr_type(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    assert(kv->type == SM_GGUF_ARRAY);
    return kv->arr_type;
}

uint64_t sm_gguf_arr_n(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    assert(kv->type == SM_GGUF_ARRAY);
    return kv->arr_n;
}

const void *sm_gguf_arr_data(const sm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    assert(kv->type == SM_GGUF_ARRAY);
    return kv->arr_data;
}

const char *sm_gguf_arr_str(const sm_gguf *g, int64_t i, uint64_t j, uint64_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    assert(kv->type == SM_GGUF_ARRAY && kv->arr_type == SM_GGUF_STRING && j < kv->arr_n);
    if (len) *len = kv->arr_lens[j];
    return kv->arr_strs[j];
}

/* ---- getters by key ---- */

static int64_t find_for_get(const sm_gguf *g, const char *key) { return g ? sm_gguf_find_key(g, key) : -1; }

static int wrong(const sm_gguf *g, int64_t i, const char *expected, sm_error *err) {
    return sm_err(err, SM_EFORMAT, "%s: at byte %zu: expected %s to be %s", g->path, g->kvs[i].offset, g->kvs[i].key, expected);
}

int sm_gguf_get_u32(const sm_gguf *g, const char *key, uint32_t *out, sm_error *err) {
    int64_t i = find_for_get(g, key);
    if (i < 0) return SM_EINVAL;
    const gguf_kv *kv = &g->kvs[i];
    if (is_unsigned(kv->type) && kv->type != SM_GGUF_BOOL && kv->num.u <= UINT32_MAX) { *out = (uint32_t)kv->num.u; return 0; }
    if (is_signed(kv->type) && kv->num.i >= 0 && kv->num.i <= (int64_t)UINT32_MAX) { *out = (uint32_t)kv->num.i; return 0; }
    return wrong(g, i, "an integer in 0..4294967295", err);
}

int sm_gguf_get_f32(const sm_gguf *g, const char *key, float *out, sm_error *err) {
    int64_t i = find_for_get(g, key);
    if (i < 0) return SM_EINVAL;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type == SM_GGUF_BOOL || kv->type == SM_GGUF_STRING || kv->type == SM_GGUF_ARRAY)
        return wrong(g, i, "a number", err);
    *out = (float)sm_gguf_kv_f64(g, i);
    return 0;
}

int sm_gguf_get_bool(const sm_gguf *g, const char *key, int *out, sm_error *err) {
    int64_t i = find_for_get(g, key);
    if (i < 0) return SM_EINVAL;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != SM_GGUF_BOOL) return wrong(g, i, "a bool", err);
    *out = kv->num.u != 0;
    return 0;
}

const char *sm_gguf_get_str(const sm_gguf *g, const char *key) {
    int64_t i = find_for_get(g, key);
    return i >= 0 && g->kvs[i].type == SM_GGUF_STRING ? g->kvs[i].str : NULL;
}

/* ---- tensors ---- */

int64_t sm_gguf_n_tensors(const sm_gguf *g) { return g->n_tensors; }

const sm_gguf_tensor *sm_gguf_tensor_at(const sm_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_tensors);
    return &g->tensors[i];
}

const sm_gguf_tensor *sm_gguf_find_tensor(const sm_gguf *g, const char *name) {
    const name_slot *s = index_slot(&g->tensor_index, name, strlen(name));
    return s->name ? &g->tensors[s->index] : NULL;
}
