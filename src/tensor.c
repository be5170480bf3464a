/* tensor.c: element types, f16/bf16 conversion, and the reference Q8_0/Q4_0 quantizers
 * (see tensor.h for the layouts). */
#include "tensor.h"

#include <assert.h>
#include <math.h>
#include <string.h>
#include <strings.h>

int sm_type_supported(int type) {
    return type == SM_TYPE_F32 || type == SM_TYPE_F16 || type == SM_TYPE_BF16 ||
           type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0;
}

const char *sm_type_name(int type) {
    switch (type) {
    case SM_TYPE_F32: return "f32";
    case SM_TYPE_F16: return "f16";
    case SM_TYPE_BF16: return "bf16";
    case SM_TYPE_Q8_0: return "q8_0";
    case SM_TYPE_Q4_0: return "q4_0";
    default: return "?";
    }
}

int sm_type_from_name(const char *name) {
    static const int types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(name, sm_type_name(types[i])) == 0) return types[i];
    return -1;
}

int sm_type_block_elems(int type) {
    switch (type) {
    case SM_TYPE_F32: case SM_TYPE_F16: case SM_TYPE_BF16: return 1;
    case SM_TYPE_Q8_0: case SM_TYPE_Q4_0: return SM_QK;
    default: return 0;
    }
}

size_t sm_type_block_bytes(int type) {
    switch (type) {
    case SM_TYPE_F32: return 4;
    case SM_TYPE_F16: case SM_TYPE_BF16: return 2;
    case SM_TYPE_Q8_0: return sizeof(sm_block_q8_0);
    case SM_TYPE_Q4_0: return sizeof(sm_block_q4_0);
    default: return 0;
    }
}

int sm_type_row_bytes(int type, int64_t n, size_t *out) {
    int be = sm_type_block_elems(type);
    if (be == 0 || n < 0 || n % be != 0) return -1;
    uint64_t blocks = (uint64_t)n / (uint64_t)be, bytes = sm_type_block_bytes(type);
    if (blocks > SIZE_MAX / bytes) return -1;
    *out = (size_t)(blocks * bytes);
    return 0;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float sm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf, nan */
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        float v = (float)mant * 0x1p-24f; /* subnormal */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t sm_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* nan */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float v = bits_f32(a) * 0x1p24f; /* in units of the smallest subnormal */
        return (uint16_t)(sign | (uint32_t)nearbyintf(v)); /* current mode: nearest even */
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float sm_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t sm_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet nan */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

static void quantize_q8_0(sm_block_q8_0 *y, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / SM_QK; b++, x += SM_QK) {
        float amax = 0.0f;
        for (int j = 0; j < SM_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[b].d = sm_fp32_to_fp16(d);
        for (int j = 0; j < SM_QK; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quantize_q4_0(sm_block_q4_0 *y, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / SM_QK; b++, x += SM_QK) {
        float amax = 0.0f, max = 0.0f; /* the element of largest magnitude, with its sign */
        for (int j = 0; j < SM_QK; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        y[b].d = sm_fp32_to_fp16(d);
        for (int j = 0; j < SM_QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[SM_QK / 2 + j] * id;
            const uint8_t q0 = (uint8_t)((int8_t)(x0 + 8.5f) < 15 ? (int8_t)(x0 + 8.5f) : 15);
            const uint8_t q1 = (uint8_t)((int8_t)(x1 + 8.5f) < 15 ? (int8_t)(x1 + 8.5f) : 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void sm_quantize_row(int type, void *dst, const float *src, int64_t n) {
    assert(sm_type_block_elems(type) > 0 && n % sm_type_block_elems(type) == 0);
    switch (type) {
    case SM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SM_TYPE_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sm_fp32_to_fp16(src[i]); break;
    case SM_TYPE_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sm_fp32_to_bf16(src[i]); break;
    case SM_TYPE_Q8_0: quantize_q8_0(dst, src, n); break;
    case SM_TYPE_Q4_0: quantize_q4_0(dst, src, n); break;
    }
}

void sm_dequantize_row(int type, float *dst, const void *src, int64_t n) {
    assert(sm_type_block_elems(type) > 0 && n % sm_type_block_elems(type) == 0);
    switch (type) {
    case SM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SM_TYPE_F16: for (int64_t i = 0; i < n; i++) dst[i] = sm_fp16_to_fp32(((const uint16_t *)src)[i]); break;
    case SM_TYPE_BF16: for (int64_t i = 0; i < n; i++) dst[i] = sm_bf16_to_fp32(((const uint16_t *)src)[i]); break;
    case SM_TYPE_Q8_0: {
        const sm_block_q8_0 *x = src;
        for (int64_t b = 0; b < n / SM_QK; b++) {
            const float d = sm_fp16_to_fp32(x[b].d);
            for (int j = 0; j < SM_QK; j++) dst[b * SM_QK + j] = d * x[b].qs[j];
        }
        break;
    }
    case SM_TYPE_Q4_0: {
        const sm_block_q4_0 *x = src;
        for (int64_t b = 0; b < n / SM_QK; b++) {
            const float d = sm_fp16_to_fp32(x[b].d);
            for (int j = 0; j < SM_QK / 2; j++) {
                dst[b * SM_QK + j] = d * ((x[b].qs[j] & 0x0f) - 8);
                dst[b * SM_QK + j + SM_QK / 2] = d * ((x[b].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    }
}
