// Causal grouped-query flash attention on the GPU (see kernels/attention.h): bf16 q/k/v, fp32
// softmax statistics and accumulators, tensor cores for Q K^T and P V. Query head h reads K/V head
// h / (NH/NKV) where it lies; K and V are never copied per query head. No T x T matrix exists: the
// forward keeps one row-max / row-sum per query (online softmax) and saves the log-sum-exp, from
// which the backward recomputes the probabilities tile by tile. HD <= 128.
#ifndef PAW_KERNELS_ATTENTION_CUDA_H
#define PAW_KERNELS_ATTENTION_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// q: element (b, t, h, d) at q[(b*Tq + t)*q_stride + h*HD + d].
// k, v: element (b, j, g, d) at k[b*kv_bstride + j*kv_stride + g*HD + d].
// out: [B, Tq, NH*HD] dense. lse: [B, NH, Tq] fp32 (may be NULL).
// Query t sits at absolute position Tk - Tq + t and sees keys 0..that position.
// lens (device [B], may be NULL; full sequences only, Tq == Tk): sequence b has lens[b] valid
// tokens; later query rows get zero output and lse 0 (right padding).
// kv_prev (device int, may be NULL): when given, Tk = *kv_prev + Tq is read on the device (the
// cache length before this call's tokens), so that a captured decode graph replays for any length.
void attention_cuda_forward(paw_bf16 *out, float *lse, const paw_bf16 *q, const paw_bf16 *k, const paw_bf16 *v,
                            const int *lens, const int *kv_prev, int B, int Tq, int Tk, int NH, int NKV, int HD,
                            long q_stride, long kv_stride, long kv_bstride);

// Batched decoding over caches of different lengths: as attention_cuda_forward with kv_prev, but
// kv_prev is a device array [B] and sequence b attends over its kv_prev[b] cached keys plus this
// call's Tq (its queries sit at positions kv_prev[b] .. kv_prev[b] + Tq - 1). No lse.
// seq_row (device [B], may be NULL): sequence b reads cache row seq_row[b] (its keys at
// k + seq_row[b] * kv_bstride, its length kv_prev[seq_row[b]]), so that a few sequences continue
// chosen rows of a batch's cache. lens (device [B], may be NULL): sequence b has lens[b] valid
// queries; later ones get zero output and read no keys past kv_prev + lens[b].
void attention_cuda_forward_rows(paw_bf16 *out, const paw_bf16 *q, const paw_bf16 *k, const paw_bf16 *v,
                                 const int *kv_prev, const int *lens, const int *seq_row, int B, int Tq, int NH,
                                 int NKV, int HD, long q_stride, long kv_stride, long kv_bstride);

// Backward of a full-sequence forward (Tq == Tk == T, kv_bstride = T * kv_stride). dq, dk, dv are
// written (not accumulated) as bf16: dq row (b, t) at dq + (b*T + t)*dq_stride, dk/dv rows
// dkv_stride apart. Scratch: dq32 fp32 [B*T*NH*HD], dsum fp32 [B*NH*T].
void attention_cuda_backward(paw_bf16 *dq, paw_bf16 *dk, paw_bf16 *dv, long dq_stride, long dkv_stride, float *dq32,
                             float *dsum, const paw_bf16 *dout, const paw_bf16 *q, const paw_bf16 *k,
                             const paw_bf16 *v, long q_stride, long kv_stride, const paw_bf16 *out, const float *lse,
                             const int *lens, int B, int T, int NH, int NKV, int HD);

#ifdef __cplusplus
}
#endif

#endif
