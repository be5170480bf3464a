/* gguf.h: reading and writing GGUF v3 files, the format of llama.cpp's models and adapters.
 *
 * Byte layout (all little-endian):
 *   header   u32 magic "GGUF" (0x46554747), u32 version (3; 2 is read too), u64 n_tensors, u64 n_kv
 *   n_kv     key: string; u32 value type; value
 *            string = u64 length + bytes (no NUL); bool = 1 byte;
 *            array = u32 element type, u64 count, elements (arrays of arrays are read, nested at
 *            most 8 deep, and kept as bytes only)
 *   n_tensors name: string; u32 n_dims (1..4); u64 ne[n_dims] (ne[0] is the contiguous axis);
 *            u32 ggml type; u64 offset relative to the data section (a multiple of alignment)
 *   padding  zeros to a multiple of `general.alignment` (u32, a power of two, default 32)
 *   data     each tensor's bytes, then zeros to the next multiple of the alignment
 * A file without tensors ends right after its metadata (gguf-py writes llama.cpp's vocabulary
 * files that way; llama.cpp reads both).
 *
 * The reader maps the file read-only and checks every count, length and offset against the bytes
 * that remain before use, so corrupt counts fail with a message instead of a large allocation:
 * magic and version, value and element types, n_dims, ne (each 0..2^63-1, product too), ne[0] in
 * whole blocks, offsets aligned and inside the file, no key or tensor name twice. Metadata is
 * decoded into the handle; tensor data stays in the mapping. Errors are SM_EIO (open, map) or
 * SM_EFORMAT with "FILE: at byte OFFSET: expected ..., got ...".
 */
#ifndef SM_GGUF_H
#define SM_GGUF_H

#include "snipmeta.h"

#include <stdint.h>
#include <stdio.h>

typedef enum {
    SM_GGUF_UINT8 = 0, SM_GGUF_INT8 = 1, SM_GGUF_UINT16 = 2, SM_GGUF_INT16 = 3,
    SM_GGUF_UINT32 = 4, SM_GGUF_INT32 = 5, SM_GGUF_FLOAT32 = 6, SM_GGUF_BOOL = 7,
    SM_GGUF_STRING = 8, SM_GGUF_ARRAY = 9, SM_GGUF_UINT64 = 10, SM_GGUF_INT64 = 11,
    SM_GGUF_FLOAT64 = 12,
} sm_gguf_type;

#define SM_GGUF_MAX_DIMS 4
#define SM_GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *name;              /* NUL-terminated */
    int type;                      /* ggml type id (tensor.h) */
    int n_dims;
    int64_t ne[SM_GGUF_MAX_DIMS];  /* unused dims are 1 */
    uint64_t offset;               /* from the start of the data section */
    size_t nbytes;
    const void *data;              /* inside the read-only mapping */
} sm_gguf_tensor;

typedef struct sm_gguf sm_gguf;

/* Opens and validates a GGUF file. Returns a handle the caller frees with sm_gguf_close, or
 * NULL with *err naming the file, the byte offset and what was expected. Tensors of ggml types
 * this build does not support (tensor.h; ids below 64) are listed with nbytes 0 and data NULL
 * (their offsets are checked for alignment only); higher type ids are refused. */
sm_gguf *sm_gguf_open(const char *path, sm_error *err);
/* Same, over a caller-owned buffer that must outlive the handle (tests, fuzzing). */
sm_gguf *sm_gguf_open_memory(const void *buf, size_t size, const char *name, sm_error *err);
void sm_gguf_close(sm_gguf *g);

const char *sm_gguf_path(const sm_gguf *g);
uint32_t sm_gguf_version(const sm_gguf *g);
uint32_t sm_gguf_alignment(const sm_gguf *g);
size_t sm_gguf_file_size(const sm_gguf *g);
size_t sm_gguf_data_offset(const sm_gguf *g); /* byte offset of the data section (past the end when no tensors) */

/* Metadata: keys by index 0..n_kv-1, in file order. Asking for a value as a type it does not
 * have, or for an index out of range, is a bug (assert): check sm_gguf_kv_type first. */
int64_t sm_gguf_n_kv(const sm_gguf *g);
int64_t sm_gguf_find_key(const sm_gguf *g, const char *key); /* index, or -1 */
const char *sm_gguf_key(const sm_gguf *g, int64_t i);
sm_gguf_type sm_gguf_kv_type(const sm_gguf *g, int64_t i);
/* Scalar values, widened. */
uint64_t sm_gguf_kv_u64(const sm_gguf *g, int64_t i);   /* an unsigned integer or bool (0/1 as stored) */
int64_t sm_gguf_kv_i64(const sm_gguf *g, int64_t i);    /* any integer or bool (u64 above 2^63-1 wraps) */
double sm_gguf_kv_f64(const sm_gguf *g, int64_t i);     /* any number or bool */
const char *sm_gguf_kv_str(const sm_gguf *g, int64_t i, uint64_t *len); /* NUL-terminated copy */
/* The value's bytes exactly as stored in the file (after its u32 type), valid while g is open. */
const void *sm_gguf_kv_raw(const sm_gguf *g, int64_t i, size_t *len);
/* Arrays (kv type SM_GGUF_ARRAY). Elements of an array of arrays are not readable one by one. */
sm_gguf_type sm_gguf_arr_type(const sm_gguf *g, int64_t i);
uint64_t sm_gguf_arr_n(const sm_gguf *g, int64_t i);
const void *sm_gguf_arr_data(const sm_gguf *g, int64_t i); /* numbers and bools: packed, native order, aligned */
const char *sm_gguf_arr_str(const sm_gguf *g, int64_t i, uint64_t j, uint64_t *len); /* NUL-terminated copy */

/* Convenience getters by key. Each returns SM_OK, or SM_EINVAL when the key is missing, or
 * SM_EFORMAT (with *err set) when its type or value does not fit. */
int sm_gguf_get_u32(const sm_gguf *g, const char *key, uint32_t *out, sm_error *err);
int sm_gguf_get_f32(const sm_gguf *g, const char *key, float *out, sm_error *err);
int sm_gguf_get_bool(const sm_gguf *g, const char *key, int *out, sm_error *err);
const char *sm_gguf_get_str(const sm_gguf *g, const char *key); /* NULL if missing or not a string */

/* Tensors. */
int64_t sm_gguf_n_tensors(const sm_gguf *g);
const sm_gguf_tensor *sm_gguf_tensor_at(const sm_gguf *g, int64_t i);
const sm_gguf_tensor *sm_gguf_find_tensor(const sm_gguf *g, const char *name); /* or NULL */

/* Writing. Build the metadata and the tensor list, then write once. Keys keep insertion order;
 * setting a key again replaces its value (and type) in place. The alignment is general.alignment
 * when set (sm_gguf_set_alignment), else 32. Tensor data is referenced, not copied: it must stay
 * valid until sm_gguf_write returns. The set/add functions return SM_OK, SM_EINVAL for a bad
 * argument or SM_ENOMEM. */
typedef struct sm_gguf_writer sm_gguf_writer;

sm_gguf_writer *sm_gguf_writer_new(void); /* NULL when out of memory; free with sm_gguf_writer_free */
void sm_gguf_writer_free(sm_gguf_writer *w);
int sm_gguf_set_u32(sm_gguf_writer *w, const char *key, uint32_t v);
int sm_gguf_set_i32(sm_gguf_writer *w, const char *key, int32_t v);
int sm_gguf_set_u64(sm_gguf_writer *w, const char *key, uint64_t v);
int sm_gguf_set_f32(sm_gguf_writer *w, const char *key, float v);
int sm_gguf_set_bool(sm_gguf_writer *w, const char *key, int v);
int sm_gguf_set_str(sm_gguf_writer *w, const char *key, const char *v);
/* A scalar of any type from a raw little-endian value (tests use it to cover every type). */
int sm_gguf_set_scalar(sm_gguf_writer *w, const char *key, sm_gguf_type type, const void *v);
/* An array of numbers or bools, n elements of `type`, copied. */
int sm_gguf_set_arr(sm_gguf_writer *w, const char *key, sm_gguf_type type, const void *data, uint64_t n);
/* An array of n strings (lens NULL: NUL-terminated), copied. */
int sm_gguf_set_arr_str(sm_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n);
/* Copies key i of an open file, any type, arrays included. */
int sm_gguf_copy_kv(sm_gguf_writer *w, const sm_gguf *g, int64_t i);
int sm_gguf_set_alignment(sm_gguf_writer *w, uint32_t alignment); /* a power of two */
/* Adds a tensor of shape ne[0..n_dims) (ne[0] contiguous, in whole blocks of its type); data
 * holds its bytes. SM_EINVAL for a name that is empty, 64 bytes or longer (llama.cpp's
 * GGML_MAX_NAME) or already added, an unsupported type, or a bad shape. */
int sm_gguf_add_tensor(sm_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data);
/* Writes the file atomically (a temporary beside it, fsync, rename): a reader sees the old file
 * or the whole new one. SM_EIO with *err set when it cannot; SM_EINVAL for a general.alignment
 * that is not a u32 power of two. The writer can be written again or freed afterwards. */
int sm_gguf_write(sm_gguf_writer *w, const char *path, sm_error *err);

#endif
