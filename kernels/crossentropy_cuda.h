// Cross-entropy on the GPU (see kernels/crossentropy.h), and the LM head fused with it so that the
// logits of all positions (N x V fp32; V = 151936 for Qwen3) never exist at once: rows go through
// in chunks, and for each chunk the logits GEMM, the loss, dlogits and the two backward GEMMs run
// back to back.
#ifndef PAW_KERNELS_CROSSENTROPY_CUDA_H
#define PAW_KERNELS_CROSSENTROPY_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// Row-wise over logits [N, V] (fp32): nll[n] = lse[n] - logits[n, target] where the row counts
// (weight != 0 and 0 <= target < V), else 0; lse (may be NULL) saved. When dlogits (bf16 [N, V],
// may be NULL) is given it receives scale * weight * (softmax - onehot), zero for rows that do not
// count. weights NULL = all ones. All pointers are device pointers.
void crossentropy_cuda(float *nll, float *lse, paw_bf16 *dlogits, const float *logits, const int *targets,
                       const float *weights, int N, int V, float scale);

// LM head + cross-entropy over x [N, C] (bf16) and W [V, C] (bf16), chunk_rows rows at a time
// through the workspaces logits_ws (fp32 [chunk_rows, V]) and dlogits_ws (bf16 [chunk_rows, V]).
// nll[N]: per-row losses as above. When dx is not NULL, the backward runs too: dx [N, C] (bf16,
// overwritten) = dlogits @ W and dW (fp32, may be NULL: frozen) += dlogits^T @ x.
void lmhead_ce_cuda(float *nll, paw_bf16 *dx, float *dW, const paw_bf16 *x, const paw_bf16 *W, const int *targets,
                    const float *weights, int N, int C, int V, float scale, float *logits_ws, paw_bf16 *dlogits_ws,
                    int chunk_rows);

#ifdef __cplusplus
}
#endif

#endif
