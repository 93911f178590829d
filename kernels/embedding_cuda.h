// Token embedding lookup and its gradient on the GPU (see kernels/embedding.h).
#ifndef PAW_KERNELS_EMBEDDING_CUDA_H
#define PAW_KERNELS_EMBEDDING_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[n] = table[ids[n]] (bf16); rows with ids[n] < 0 are left as they are (caller-supplied
// embeddings). ids: device [N].
void embedding_cuda_forward(paw_bf16 *out, const int *ids, const paw_bf16 *table, int N, int C);
// dtable[ids[n]] += dout[n] (fp32, atomic scatter-add: repeated ids and the tied LM head's
// gradient all add into one buffer); rows with ids[n] < 0 are skipped.
void embedding_cuda_backward(float *dtable, const float *dout, const int *ids, int N, int C);

#ifdef __cplusplus
}
#endif

#endif
