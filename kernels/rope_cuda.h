// Per-head q/k RMSNorm + RoPE on the GPU, fused (see kernels/rope.h), over the packed output of
// the fused q/k/v projection: each token's row holds NH query heads, then NKV key heads, then NKV
// value heads, HD each (row length S = (NH + 2*NKV) * HD). Query and key heads are normalised and
// rotated; value heads are copied, so that attention reads q, k and v from one buffer.
#ifndef PAW_KERNELS_ROPE_CUDA_H
#define PAW_KERNELS_ROPE_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// cos_t/sin_t: device fp32 [max_pos, HD/2] (rope_table's values); pos: device [N] positions.
// HD must be even and at most 256.
void qknorm_rope_cuda_forward(paw_bf16 *out, const paw_bf16 *inp, const paw_bf16 *qnormw, const paw_bf16 *knormw,
                              const float *cos_t, const float *sin_t, const int *pos, int N, int NH, int NKV, int HD,
                              float eps);
// The same, also storing the key and value heads of token n = b*T + t into a layer's KV cache at
// row len[b] + t (len[0] for every sequence unless per_row; rows at or past cap are skipped): the
// cache append of a decoding step, without a kernel of its own. k, v: [rows, cap, NKV * HD] bf16.
// seq_row (per_row only; NULL: sequence b is cache row b) maps the call's sequences to cache rows,
// so that a prefill of a few sequences lands in the free rows of a running batch; len is then
// indexed by cache row.
typedef struct {
    paw_bf16 *k, *v;
    const int *len;  // device: current cache length(s)
    int per_row, T, cap;
    const int *seq_row;  // device [B], or NULL
} RopeCacheDst;
void qknorm_rope_cuda_forward_cache(paw_bf16 *out, const paw_bf16 *inp, const paw_bf16 *qnormw, const paw_bf16 *knormw,
                                    const float *cos_t, const float *sin_t, const int *pos, int N, int NH, int NKV,
                                    int HD, float eps, const RopeCacheDst *cache);
// dinp = d loss / d inp (overwritten, same packed layout; value heads copy dout). The per-head
// norm statistics are recomputed from inp. dqnormw/dknormw (fp32 [HD], may be NULL) accumulate.
void qknorm_rope_cuda_backward(paw_bf16 *dinp, float *dqnormw, float *dknormw, const paw_bf16 *dout,
                               const paw_bf16 *inp, const paw_bf16 *qnormw, const paw_bf16 *knormw, const float *cos_t,
                               const float *sin_t, const int *pos, int N, int NH, int NKV, int HD, float eps);

#ifdef __cplusplus
}
#endif

#endif
