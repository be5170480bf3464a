/* tensor.h: element types of stored tensors, with ggml's type ids and llama.cpp's exact block
 * layouts, and conversion between them and f32.
 *
 * Layouts (little-endian, as in ggml):
 *   F32   4 bytes per element
 *   F16   2 bytes, IEEE half
 *   BF16  2 bytes, the top half of an f32
 *   Q8_0  blocks of 32: f16 scale d, then 32 int8 q;            x = d * q
 *   Q4_0  blocks of 32: f16 scale d, then 16 bytes of nibbles;  byte j holds element j in its low
 *         nibble and element j+16 in its high nibble;           x = d * (nibble - 8)
 */
#ifndef SM_TENSOR_H
#define SM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SM_TYPE_F32 = 0,
    SM_TYPE_F16 = 1,
    SM_TYPE_Q4_0 = 2,
    SM_TYPE_Q8_0 = 8,
    SM_TYPE_BF16 = 30,
} sm_type;

#define SM_QK 32 /* elements per Q8_0 / Q4_0 block */

typedef struct {
    uint16_t d; /* f16 scale */
    int8_t qs[SM_QK];
} sm_block_q8_0; /* 34 bytes */

typedef struct {
    uint16_t d; /* f16 scale */
    uint8_t qs[SM_QK / 2];
} sm_block_q4_0; /* 18 bytes */

/* 1 when this build reads and writes tensors of ggml type id `type`. */
int sm_type_supported(int type);
/* "f32", "f16", "bf16", "q8_0", "q4_0"; "?" for an unsupported id. */
const char *sm_type_name(int type);
/* The type with that name (case-insensitive), or -1. */
int sm_type_from_name(const char *name);
/* Elements per block (1 for float types) and bytes per block. 0 for an unsupported type. */
int sm_type_block_elems(int type);
size_t sm_type_block_bytes(int type);
/* Bytes of n elements of `type` into *out; returns 0, or -1 when n is not a whole number of
 * blocks, the type is unsupported, or the size overflows. */
int sm_type_row_bytes(int type, int64_t n, size_t *out);

float sm_fp16_to_fp32(uint16_t h);
uint16_t sm_fp32_to_fp16(float f); /* round to nearest even, as F16C does */
float sm_bf16_to_fp32(uint16_t h);
uint16_t sm_fp32_to_bf16(float f); /* round to nearest even, NaN kept quiet, as ggml does */

/* Converts n f32 values into `type` (n a multiple of the block size), exactly as llama.cpp's
 * reference quantizers do, so that our files and llama.cpp's are byte-identical. */
void sm_quantize_row(int type, void *dst, const float *src, int64_t n);
/* Converts n elements of `type` back to f32. */
void sm_dequantize_row(int type, float *dst, const void *src, int64_t n);

#endif
