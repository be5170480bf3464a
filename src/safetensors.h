/* safetensors.h: reading and writing safetensors files (Hugging Face's format of PEFT adapters).
 *
 * Byte layout:
 *   u64 N (little-endian)   the header's length in bytes
 *   N bytes                 a UTF-8 JSON object (may end in spaces, padding to 8 bytes):
 *                             "NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 *                             "__metadata__": {"key": "string value", ...}   (optional)
 *   data                    tensor bytes, row-major, little-endian; begin/end are relative to the
 *                           start of this section
 * The reader reads the whole file (adapters are small), then checks every size, offset, shape and
 * dtype against it before anything is used: offsets inside the data section, end - begin equal to
 * the element count times the element size, no two tensors overlapping, no duplicate names.
 */
#ifndef SM_SAFETENSORS_H
#define SM_SAFETENSORS_H

#include "snipmeta.h"

#include <stdint.h>

#define SM_ST_MAX_DIMS 8

typedef struct {
    const char *name;
    int type;                       /* ggml type id (tensor.h) for F32, F16, BF16; -1 for any other dtype */
    char dtype[8];                  /* as in the file: "F32", "BF16", "I64", ... */
    int n_dims;
    int64_t shape[SM_ST_MAX_DIMS];
    const void *data;               /* inside the handle's copy of the file */
    size_t nbytes;
} sm_st_tensor;

typedef struct sm_safetensors sm_safetensors;

/* Reads and validates a safetensors file. Returns a handle the caller frees with
 * sm_safetensors_close, or NULL with *err naming the file, the offset or tensor and what was
 * expected (SM_EIO, SM_EFORMAT, SM_ENOMEM). */
sm_safetensors *sm_safetensors_open(const char *path, sm_error *err);
/* Same over a buffer of size bytes, copied (tests, fuzzing); name is used in errors. */
sm_safetensors *sm_safetensors_open_memory(const void *buf, size_t size, const char *name, sm_error *err);
void sm_safetensors_close(sm_safetensors *st);

int sm_safetensors_n_tensors(const sm_safetensors *st);
const sm_st_tensor *sm_safetensors_tensor_at(const sm_safetensors *st, int i);  /* in data order */
const sm_st_tensor *sm_safetensors_find(const sm_safetensors *st, const char *name); /* or NULL */
/* The string value of __metadata__[key], or NULL. */
const char *sm_safetensors_metadata(const sm_safetensors *st, const char *key);

/* Writes n tensors (type F32, F16 or BF16; name, type, n_dims, shape and data set; nbytes is
 * computed) and the metadata pairs meta[0..2*n_meta) (key, value, key, value, ...) to path,
 * atomically (a temporary beside it, fsync, rename). Returns SM_OK or SM_EIO / SM_EINVAL /
 * SM_ENOMEM with *err set. */
int sm_safetensors_write(const char *path, const sm_st_tensor *tensors, int n, const char *const *meta, int n_meta, sm_error *err);

#endif
