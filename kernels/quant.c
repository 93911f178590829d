#include "kernels/quant.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "model/safetensors.h"

typedef struct {
    int type;
    const char *name;
    int block_size, block_bytes;
} GgmlTypeInfo;

// Sizes from ggml's type traits, so that a file holding other types can still be walked.
static const GgmlTypeInfo kTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},        {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
};
#define NUM_TYPES ((int)(sizeof kTypes / sizeof kTypes[0]))

static const GgmlTypeInfo *type_info(int type) {
    for (int i = 0; i < NUM_TYPES; i++)
        if (kTypes[i].type == type) return &kTypes[i];
    return NULL;
}

int ggml_type_layout(int type, int *block_size, int *block_bytes) {
    const GgmlTypeInfo *t = type_info(type);
    if (!t) return -1;
    if (block_size) *block_size = t->block_size;
    if (block_bytes) *block_bytes = t->block_bytes;
    return 0;
}

const char *ggml_type_name(int type) {
    const GgmlTypeInfo *t = type_info(type);
    return t ? t->name : "unknown";
}

int ggml_type_from_name(const char *name) {
    for (int i = 0; i < NUM_TYPES; i++)
        if (strcasecmp(kTypes[i].name, name) == 0) return kTypes[i].type;
    return -1;
}

size_t ggml_type_nbytes(int type, int64_t n) {
    const GgmlTypeInfo *t = type_info(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    return (size_t)(n / t->block_size) * (size_t)t->block_bytes;
}

static void put_f16(uint8_t *p, float f) {
    uint16_t h = st_f32_to_f16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *p) { return st_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

void quantize_q4_0(const float *x, uint8_t *out, int64_t n) {
    int64_t nb = n / QK4_0;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * QK4_0;
        uint8_t *ob = out + b * Q4_0_BLOCK_BYTES;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(xb[j])) {  // strict: the first of equal magnitudes wins
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(ob, d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            // x * id lies in [-8, 8], so v is in [0.5, 16.5] and truncation is floor; clamping
            // before the cast keeps non-finite input defined.
            float v0 = xb[j] * id + 8.5f, v1 = xb[j + QK4_0 / 2] * id + 8.5f;
            if (!(v0 >= 0.0f)) v0 = 0.0f;
            if (!(v1 >= 0.0f)) v1 = 0.0f;
            int q0 = v0 > 15.0f ? 15 : (int)v0, q1 = v1 > 15.0f ? 15 : (int)v1;
            ob[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dequantize_q4_0(const uint8_t *in, float *y, int64_t n) {
    int64_t nb = n / QK4_0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *ib = in + b * Q4_0_BLOCK_BYTES;
        float *yb = y + b * QK4_0;
        const float d = get_f16(ib);
        for (int j = 0; j < QK4_0 / 2; j++) {
            yb[j] = (float)((ib[2 + j] & 0x0f) - 8) * d;
            yb[j + QK4_0 / 2] = (float)((ib[2 + j] >> 4) - 8) * d;
        }
    }
}

void quantize_q8_0(const float *x, uint8_t *out, int64_t n) {
    int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * QK8_0;
        uint8_t *ob = out + b * Q8_0_BLOCK_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(ob, d);
        for (int j = 0; j < QK8_0; j++) {
            float q = roundf(xb[j] * id);  // |q| <= 127 for finite input
            if (!(q >= -128.0f)) q = -128.0f;
            if (q > 127.0f) q = 127.0f;
            ob[2 + j] = (uint8_t)(int8_t)q;
        }
    }
}

void dequantize_q8_0(const uint8_t *in, float *y, int64_t n) {
    int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *ib = in + b * Q8_0_BLOCK_BYTES;
        float *yb = y + b * QK8_0;
        const float d = get_f16(ib);
        for (int j = 0; j < QK8_0; j++) yb[j] = (float)(int8_t)ib[2 + j] * d;
    }
}

void q4_0_to_q8(const uint8_t *in, int8_t *q, float *d, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const uint8_t *ib = in + b * Q4_0_BLOCK_BYTES;
        int8_t *qb = q + b * QK4_0;
        d[b] = get_f16(ib);
        for (int j = 0; j < QK4_0 / 2; j++) {
            qb[j] = (int8_t)((ib[2 + j] & 0x0f) - 8);
            qb[j + QK4_0 / 2] = (int8_t)((ib[2 + j] >> 4) - 8);
        }
    }
}

void q8_0_to_q8(const uint8_t *in, int8_t *q, float *d, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const uint8_t *ib = in + b * Q8_0_BLOCK_BYTES;
        d[b] = get_f16(ib);
        memcpy(q + b * QK8_0, ib + 2, QK8_0);
    }
}

void f32_to_f16_array(const float *x, uint16_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = st_f32_to_f16(x[i]);
}

void f16_to_f32_array(const uint16_t *in, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = st_f16_to_f32(in[i]);
}
