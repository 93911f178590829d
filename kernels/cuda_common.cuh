// Shared by the .cu files: the checking macros, the stream, and small device helpers.
#ifndef PAW_KERNELS_CUDA_COMMON_CUH
#define PAW_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda_common_cuda.h"

// Prints "file:line: call: CUDA error string" and exits when a runtime call fails.
void paw_cuda_check(cudaError_t err, const char *what, const char *file, int line);
#define CUDA_CHECK(call) paw_cuda_check((call), #call, __FILE__, __LINE__)
// After every kernel launch: launch errors (bad configuration, too much shared memory) show here.
#define CUDA_CHECK_LAUNCH() paw_cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// The stream every kernel and library call of this project runs on (created by paw_cuda_init).
cudaStream_t paw_cuda_stream(void);

static inline unsigned paw_ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
