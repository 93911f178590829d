// Token embedding lookup and its gradient (a scatter-add into the table, which is also where
// the LM head's gradient lands when the embeddings are tied).
#ifndef PAW_KERNELS_EMBEDDING_H
#define PAW_KERNELS_EMBEDDING_H

#include <stdint.h>

void embedding_forward(float *out, const int *ids, const float *table, int N, int C);
// The lookup from a bf16 table (inference weights), widened exactly to fp32.
void embedding_forward_bf16(float *out, const int *ids, const uint16_t *table, int N, int C);
// The lookup from a Q8 table (int8 values q, one scale d per 32 along each row; C a multiple of
// 32): d * q, exact in fp32.
void embedding_forward_q8(float *out, const int *ids, const int8_t *q, const float *d, int N, int C);
// dtable[ids[n]] += dout[n]; rows with ids[n] < 0 are skipped (positions fed by embeddings).
void embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C);

#endif
