// Included before every .cu file compiled for the CPU emulation (tests/emu/README.md): the CUDA
// keywords, built-in variables and device functions the project's kernels use, in host C++.
#ifndef PAW_TESTS_EMU_EMU_H
#define PAW_TESTS_EMU_EMU_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tests/emu/simt.h"

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__ static  // one block runs at a time: a static is its shared memory
// `__shared__ T name dims;` as tests/emu/cu2cc.pl writes it. The race-check build gives each block
// its own (simt.h, shared_static), since blocks that run one after another there may not be ordered.
#ifdef PAW_EMU_RACE
#define EMU_SHARED(T, name, dims)    \
    static char name##_emu_key;      \
    auto &name = *reinterpret_cast<T(*) dims>(::emu::shared_static(&name##_emu_key, sizeof(T dims)));
#else
#define EMU_SHARED(T, name, dims) alignas(16) static T name dims;
#endif
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline

#define threadIdx (::emu::g_thread_idx)
#define blockIdx (::emu::g_block_idx)
#define blockDim (::emu::g_block_dim)
#define gridDim (::emu::g_grid_dim)

inline void __syncthreads() { emu::sync_block(); }

namespace emu {
template <typename T>
struct ShuffleIn {
    T v;
    int src;
};
// Runs for the warp on the scheduler (simt.cc): the race-check build does not count its reads and
// writes of the lanes' own values as theirs.
template <typename T>
__attribute__((no_sanitize_thread)) void shuffle_combine(const void *const ins[32], void *const outs[32], unsigned) {
    for (int l = 0; l < 32; l++) {
        if (!outs[l]) continue;
        int s = static_cast<const ShuffleIn<T> *>(ins[l])->src;
        if (s < 0 || s >= 32 || !ins[s]) fail("lane %d shuffles from lane %d, outside the mask", l, s);
        *static_cast<T *>(outs[l]) = static_cast<const ShuffleIn<T> *>(ins[s])->v;
    }
}
template <typename T>
T shuffle(unsigned mask, T v, int src) {
    ShuffleIn<T> in{v, src};
    T out;
    warp_op("shuffle", mask, &in, &out, shuffle_combine<T>);
    return out;
}
inline void no_combine(const void *const *, void *const *, unsigned) {}
}  // namespace emu

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    int lane = emu::lane_id(), src = lane ^ lane_mask;
    if (src / width != lane / width) src = lane;
    return emu::shuffle(mask, v, src);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    int lane = emu::lane_id();
    return emu::shuffle(mask, v, lane / width * width + src_lane % width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = emu::lane_id(), src = lane + (int)delta;
    if (src / width != lane / width) src = lane;
    return emu::shuffle(mask, v, src);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_op("__syncwarp", mask, NULL, NULL, emu::no_combine); }

// One thread runs at a time, so an atomic is a read-modify-write; the race-check build makes it an
// atomic operation that ThreadSanitizer knows (relaxed: a GPU atomic orders nothing else, except
// around a __threadfence, simt.h atomic_point).
template <typename T>
inline T atomicAdd(T *p, T v) {
#ifdef PAW_EMU_RACE
    T old, want;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do want = old + v;
    while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    emu::atomic_point(p);
    return old;
#else
    T old = *p;
    *p = old + v;
    return old;
#endif
}
inline void __threadfence() {
#ifdef PAW_EMU_RACE
    emu::thread_fence();
#endif
}
template <typename T>
inline T __ldg(const T *p) {
    return *p;
}
template <typename T>
inline T __ldcg(const T *p) {  // the GPU's load that skips L1: the same value here
    return *p;
}

// The correctly rounded intrinsics; the build turns FMA contraction off, so these stay one operation each.
inline float __expf(float x) { return expf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline unsigned __float_as_uint(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

namespace emu {
// The runtime's side of a launch (tests/emu/cudart.cc): checks the configuration as the driver
// would, then runs the grid, or records it while the stream is being captured into a graph.
void launch(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl, std::function<void()> body);
// Kernel arguments that are pointers must be null or point into (or one past) a device allocation.
void check_device_pointer(const char *name, int index, const void *p);

// `k<<<grid, block, smem, stream>>>(args)` becomes (tests/emu/cu2cc.pl)
// `emu::Launch{"k", grid, block, smem, stream}.call([=](auto... a) { k(a...); }, args)`: the
// arguments are copied at the launch, as the driver does, and converted to the kernel's parameter
// types by the call itself, so template kernels are deduced as nvcc deduces them.
struct Launch {
    const char *name;
    dim3 grid, block;
    size_t smem = 0;
    cudaStream_t stream = 0;
    bool pdl = false;  // programmatic dependent launch (kernels/cuda_common.cuh, paw_launch)
    template <typename F, typename... A>
    void call(F kernel, A... args) const {
        std::tuple<A...> params(args...);
        check_pointers(params, std::index_sequence_for<A...>{});
        launch(name, grid, block, smem, stream, pdl, [kernel, params]() { std::apply(kernel, params); });
    }
    template <typename Tuple, size_t... I>
    void check_pointers(const Tuple &t, std::index_sequence<I...>) const {
        (check_one((int)I, std::get<I>(t)), ...);
    }
    template <typename T>
    void check_one(int i, const T &v) const {
        if constexpr (std::is_pointer<T>::value) check_device_pointer(name, i, (const void *)v);
    }
};
}  // namespace emu

// The host-side overloads nvcc's runtime header gives kernels (a kernel is any function here).
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}
template <typename T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, T *kernel) {
    return cudaFuncGetAttributes(attr, (const void *)kernel);
}

// The device math functions the kernels use beyond C's.
template <typename A, typename B>
inline typename std::common_type<A, B>::type min(A a, B b) {
    return b < a ? b : a;
}
template <typename A, typename B>
inline typename std::common_type<A, B>::type max(A a, B b) {
    return a < b ? b : a;
}
inline float cospif(float x) { return (float)cos(M_PI * (double)x); }
inline float sinpif(float x) { return (float)sin(M_PI * (double)x); }

#endif
