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

// Programmatic dependent launch (compute capability 9.0+), for chains of small kernels such as a
// decoding step: a kernel launched through paw_launch while paw_cuda_pdl() is on may be started
// before the kernel ahead of it in the stream has finished, so every kernel launched that way
// begins with pdl_enter(): it waits until the previous grid has completed and its memory is
// visible (nothing is read or written before), then lets the next kernel launch, so that the
// next one's launch overlaps this one's work. Launched normally, both instructions do nothing.
__device__ __forceinline__ void pdl_enter() {
#ifdef PAW_EMU
    emu::pdl_wait();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// The launch of the kernels that begin with pdl_enter(): with the programmatic-serialization
// attribute while paw_cuda_pdl() is on, an ordinary launch on the stream otherwise.
#ifdef PAW_EMU  // the CPU emulation (tests/emu/cu2cc.pl names the kernel at each call)
template <typename... KArgs, typename... Args>
static inline void paw_launch_named(const char *name, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                    Args... args) {
    emu::Launch{name, grid, block, smem, paw_cuda_stream(), paw_cuda_pdl() != 0}.call([kernel](KArgs... a) { kernel(a...); },
                                                              static_cast<KArgs>(args)...);
}
#else
template <typename... KArgs, typename... Args>
static inline void paw_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = paw_cuda_stream();
    cudaLaunchAttribute attr[1];
    if (paw_cuda_pdl()) {
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr, cfg.numAttrs = 1;
    }
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...));
}
#endif

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
