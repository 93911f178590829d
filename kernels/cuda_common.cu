// Device start-up, the stream, checked memory and transfers, timers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_common.cuh"

extern "C" {
#include "common/error.h"
#include "model/safetensors.h"
}

static int g_ready;
static cudaStream_t g_stream;
static cudaDeviceProp g_prop;
static size_t g_allocated, g_peak;

void paw_cuda_check(cudaError_t err, const char *what, const char *file, int line) {
    if (err == cudaSuccess) return;
    fprintf(stderr, "paw: %s:%d: %s: CUDA error %s (%s)\n", file, line, what, cudaGetErrorName(err),
            cudaGetErrorString(err));
    exit(1);
}

cudaStream_t paw_cuda_stream(void) {
    if (!g_ready) {
        fprintf(stderr, "paw: internal error: CUDA used before paw_cuda_init()\n");
        exit(1);
    }
    return g_stream;
}

extern "C" void *paw_cuda_stream_handle(void) { return (void *)paw_cuda_stream(); }

extern "C" int paw_cuda_init(void) {
    if (g_ready) return 0;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        const char *why = err != cudaSuccess ? cudaGetErrorString(err) : "no device found";
        cudaGetLastError();  // clear the sticky error of a failed probe
        return paw_error("no usable CUDA GPU (%s)", why);
    }
    // One process per GPU under mpirun: the node-local rank picks the device (ranks beyond the
    // GPU count share them round-robin); PAW_CUDA_DEVICE overrides.
    const char *env = getenv("PAW_CUDA_DEVICE"), *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int dev = env ? atoi(env) : local ? atoi(local) % n : 0;
    if (dev < 0 || dev >= n) return paw_error("PAW_CUDA_DEVICE=%s: this machine has GPUs 0 to %d", env, n - 1);
    CUDA_CHECK(cudaSetDevice(dev));
    CUDA_CHECK(cudaGetDeviceProperties(&g_prop, dev));
    if (g_prop.major < 8) return paw_error("CUDA: %s has compute capability %d.%d; bf16 kernels need 8.0+",
                                           g_prop.name, g_prop.major, g_prop.minor);
    CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    g_ready = 1;
    return 0;
}

static int g_pdl;

// The kernels' griddepcontrol instructions exist only in code built for compute 9.0+: a build
// whose only code for this device is compute_80 PTX (JIT-compiled for a Hopper GPU) runs the
// kernels without the wait, so the launch attribute must not be set there.
__global__ void pdl_probe_kernel() { pdl_enter(); }

extern "C" int paw_cuda_pdl_supported(void) {
    static int known = -1;  // asked once: the decode step asks on every token, inside graph capture too
    if (!g_ready || g_prop.major < 9) return 0;
    if (known < 0) {
        cudaFuncAttributes fa;
        known = cudaFuncGetAttributes(&fa, pdl_probe_kernel) == cudaSuccess && fa.ptxVersion >= 90;
        cudaGetLastError();  // a device without code for the probe: no programmatic launch, no sticky error
    }
    return known;
}

extern "C" int paw_cuda_set_pdl(int on) {
    g_pdl = on && paw_cuda_pdl_supported();
    return g_pdl;
}

extern "C" int paw_cuda_pdl(void) { return g_pdl; }

extern "C" const char *paw_cuda_device_name(void) { return g_ready ? g_prop.name : "none"; }
extern "C" int paw_cuda_sm_count(void) { return g_ready ? g_prop.multiProcessorCount : 0; }

// Sizes of live allocations, kept on the host so that frees can be counted (allocations are few
// and large: parameters, gradients, activations, workspaces).
typedef struct {
    void *ptr;
    size_t bytes;
} Allocation;
static Allocation *g_allocs;
static int g_nallocs, g_cap_allocs;

extern "C" void *paw_cuda_malloc(size_t bytes) {
    (void)paw_cuda_stream();
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr, "paw: cudaMalloc of %.3f GiB failed (%s); %.3f GiB free of %.3f GiB, %.3f GiB held by paw\n",
                bytes / 1073741824.0, cudaGetErrorString(err), free_b / 1073741824.0, total_b / 1073741824.0,
                g_allocated / 1073741824.0);
        exit(1);
    }
    if (g_nallocs == g_cap_allocs) {
        g_cap_allocs = g_cap_allocs ? 2 * g_cap_allocs : 64;
        g_allocs = (Allocation *)xrealloc(g_allocs, sizeof(Allocation) * (size_t)g_cap_allocs);
    }
    g_allocs[g_nallocs++] = (Allocation){p, bytes};
    g_allocated += bytes;
    if (g_allocated > g_peak) g_peak = g_allocated;
    return p;
}

extern "C" void paw_cuda_free(void *ptr) {
    if (!ptr) return;
    for (int i = 0; i < g_nallocs; i++) {
        if (g_allocs[i].ptr == ptr) {
            g_allocated -= g_allocs[i].bytes;
            g_allocs[i] = g_allocs[--g_nallocs];
            break;
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(paw_cuda_stream()));  // no kernel may still be using it
    CUDA_CHECK(cudaFree(ptr));
}

extern "C" size_t paw_cuda_allocated_bytes(void) { return g_allocated; }
extern "C" size_t paw_cuda_peak_allocated_bytes(void) { return g_peak; }
extern "C" void paw_cuda_reset_peak(void) { g_peak = g_allocated; }
extern "C" size_t paw_cuda_used_device_bytes(void) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}
extern "C" size_t paw_cuda_free_device_bytes(void) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return free_b;
}

extern "C" void paw_cuda_upload(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, paw_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

extern "C" void paw_cuda_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, paw_cuda_stream()));
}

extern "C" void paw_cuda_download(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, paw_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

extern "C" void paw_cuda_memset(void *dst, int byte, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemsetAsync(dst, byte, bytes, paw_cuda_stream()));
}

extern "C" void paw_cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(paw_cuda_stream())); }

#define CONVERT_CHUNK ((size_t)1 << 22)
extern "C" void paw_cuda_upload_bf16(paw_bf16 *dst, const float *src, size_t n) {
    uint16_t *tmp = (uint16_t *)xmalloc(sizeof(uint16_t) * (n < CONVERT_CHUNK ? (n ? n : 1) : CONVERT_CHUNK));
    for (size_t off = 0; off < n; off += CONVERT_CHUNK) {
        size_t m = n - off < CONVERT_CHUNK ? n - off : CONVERT_CHUNK;
        for (size_t i = 0; i < m; i++) tmp[i] = st_f32_to_bf16(src[off + i]);
        paw_cuda_upload(dst + off, tmp, m * sizeof(uint16_t));
    }
    free(tmp);
}

extern "C" void paw_cuda_download_bf16(float *dst, const paw_bf16 *src, size_t n) {
    uint16_t *tmp = (uint16_t *)xmalloc(sizeof(uint16_t) * (n < CONVERT_CHUNK ? (n ? n : 1) : CONVERT_CHUNK));
    for (size_t off = 0; off < n; off += CONVERT_CHUNK) {
        size_t m = n - off < CONVERT_CHUNK ? n - off : CONVERT_CHUNK;
        paw_cuda_download(tmp, src + off, m * sizeof(uint16_t));
        for (size_t i = 0; i < m; i++) dst[off + i] = st_bf16_to_f32(tmp[i]);
    }
    free(tmp);
}

__global__ void bf16_to_f32_kernel(float *dst, const __nv_bfloat16 *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static unsigned elementwise_grid(size_t n) {
    size_t blocks = (n + 255) / 256, cap = (size_t)paw_cuda_sm_count() * 32;
    if (blocks > cap) blocks = cap;
    return (unsigned)(blocks ? blocks : 1);
}

extern "C" void paw_cuda_bf16_to_f32(float *dst, const paw_bf16 *src, size_t n) {
    if (!n) return;
    bf16_to_f32_kernel<<<elementwise_grid(n), 256, 0, paw_cuda_stream()>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void paw_cuda_f32_to_bf16(paw_bf16 *dst, const float *src, size_t n) {
    if (!n) return;
    f32_to_bf16_kernel<<<elementwise_grid(n), 256, 0, paw_cuda_stream()>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

struct PawCudaTimer {
    cudaEvent_t start, stop;
};

extern "C" PawCudaTimer *paw_cuda_timer_create(void) {
    PawCudaTimer *t = (PawCudaTimer *)xmalloc(sizeof *t);
    CUDA_CHECK(cudaEventCreate(&t->start));
    CUDA_CHECK(cudaEventCreate(&t->stop));
    return t;
}

extern "C" void paw_cuda_timer_start(PawCudaTimer *t) { CUDA_CHECK(cudaEventRecord(t->start, paw_cuda_stream())); }

extern "C" float paw_cuda_timer_stop_ms(PawCudaTimer *t) {
    float ms = 0;
    CUDA_CHECK(cudaEventRecord(t->stop, paw_cuda_stream()));
    CUDA_CHECK(cudaEventSynchronize(t->stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms, t->start, t->stop));
    return ms;
}

extern "C" void paw_cuda_timer_free(PawCudaTimer *t) {
    if (!t) return;
    CUDA_CHECK(cudaEventDestroy(t->start));
    CUDA_CHECK(cudaEventDestroy(t->stop));
    free(t);
}
