#include "kernels/embedding.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/safetensors.h"

void embedding_forward(float *out, const int *ids, const float *table, int N, int C) {
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0) continue;  // the caller provides this row itself
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * (size_t)C);
    }
}

void embedding_forward_bf16(float *out, const int *ids, const uint16_t *table, int N, int C) {
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0) continue;
        const uint16_t *row = table + (size_t)ids[n] * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = st_bf16_to_f32(row[c]);
    }
}

void embedding_forward_q8(float *out, const int *ids, const int8_t *q, const float *d, int N, int C) {
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0) continue;
        size_t row = (size_t)ids[n] * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = d[(row + c) / 32] * (float)q[row + c];
    }
}

void embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C) {
    // Serial over tokens (repeated ids add into one row); vectorised along C.
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0) continue;
        float *d = dtable + (size_t)ids[n] * C;
        const float *g = dout + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}
