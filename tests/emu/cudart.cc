// The CUDA runtime functions the project calls, for the CPU emulation (tests/emu/README.md).
// Device memory is host memory (so AddressSanitizer sees every out-of-bounds access a kernel or a
// copy makes); every call runs synchronously in stream order; a stream being captured records
// launches, copies and fills into a graph that cudaGraphLaunch replays.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/emu/simt.h"

namespace {

std::map<const char *, size_t> g_allocations;  // device allocations: start -> bytes
size_t g_allocated;
cudaError_t g_last_error = cudaSuccess;
std::map<const void *, int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel

const size_t TOTAL_MEMORY = (size_t)80 << 30;
const int DEFAULT_DYN_SMEM = 48 << 10, OPTIN_SMEM = 227 << 10;

int sm_count() {
    const char *e = getenv("PAW_EMU_SMS");
    int n = e ? atoi(e) : 8;
    return n > 0 ? n : 8;
}

struct Graph {
    std::vector<std::function<void()>> nodes;
};
cudaStream_t g_capturing_stream;
bool g_capturing;
Graph *g_capture;

}  // namespace

// Runs now, or records into the graph being captured when `stream` is the captured one.
void emu::submit(cudaStream_t stream, std::function<void()> op) {
    if (g_capturing && stream == g_capturing_stream)
        g_capture->nodes.push_back(std::move(op));
    else
        op();
}

namespace {

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) g_last_error = e;
    return e;
}

}  // namespace

// 1 if [p, p + n) lies in one device allocation (n = 0: p may be its end).
bool emu::is_device_range(const void *p, size_t n) {
    const char *c = (const char *)p;
    auto it = g_allocations.upper_bound(c);
    if (it == g_allocations.begin()) return false;
    --it;
    return c >= it->first && c + n <= it->first + it->second;
}

namespace {

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

}  // namespace

namespace emu {

void check_device_pointer(const char *name, int index, const void *p) {
    if (p && !emu::is_device_range(p, 0))
        fprintf(stderr, "emulated kernel %s: argument %d (%p) is not device memory\n", name, index, p), abort();
}

void launch(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl, std::function<void()> body) {
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || threads == 0 ||
        threads > 1024 || block.z > 64) {
        fprintf(stderr, "emulated launch of %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)\n", name,
                grid.x, grid.y, grid.z, block.x, block.y, block.z);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    // The launch does not know its kernel's address (tests/emu/cu2cc.pl): more than the default
    // needs cudaFuncSetAttribute to have raised some kernel's limit at least this far.
    int limit = DEFAULT_DYN_SMEM;
    for (auto &kv : g_max_dyn_smem) limit = kv.second > limit ? kv.second : limit;
    if (smem > (size_t)limit) {
        fprintf(stderr, "emulated launch of %s: %zu bytes of dynamic shared memory, limit %d\n", name, smem, limit);
        set_error(cudaErrorInvalidValue);
        return;
    }
    std::string n(name);
    auto kept = std::make_shared<std::function<void()>>(std::move(body));
    emu::submit(stream, [n, grid, block, smem, pdl, kept]() {
        run_grid(n.c_str(), grid, block, smem, pdl, *kept);
        emu::keep_until_sync(kept);
    });
}

}  // namespace emu

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNotReady: return "device not ready";
    default: return "emulated error";
    }
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
    }
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CPU emulation of a compute 9.0 GPU");
    prop->major = 9, prop->minor = 0;
    prop->multiProcessorCount = sm_count();
    prop->totalGlobalMem = TOTAL_MEMORY;
    prop->sharedMemPerBlock = DEFAULT_DYN_SMEM;
    prop->sharedMemPerBlockOptin = OPTIN_SMEM;
    prop->maxThreadsPerBlock = 1024;
    prop->warpSize = 32;
    prop->l2CacheSize = 50 << 20;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = TOTAL_MEMORY;
    *free_bytes = TOTAL_MEMORY - (g_allocated < TOTAL_MEMORY ? g_allocated : TOTAL_MEMORY);
    // Tests of decisions made on free memory: report at most this much (allocations stay unlimited).
    if (const char *e = getenv("PAW_EMU_REPORTED_FREE")) {
        size_t cap = strtoull(e, NULL, 10);
        if (*free_bytes > cap) *free_bytes = cap;
    }
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size) {
    *p = NULL;
    if (g_allocated + size > TOTAL_MEMORY) return set_error(cudaErrorMemoryAllocation);
    void *q = aligned_alloc(256, (size + 255) / 256 * 256 + (size == 0 ? 256 : 0));
    if (!q) return set_error(cudaErrorMemoryAllocation);
    // Fresh device memory holds whatever was there: bytes that read as NaN show an unwritten use.
    memset(q, 0xff, size);
    g_allocations[(const char *)q] = size;
    g_allocated += size;
    *p = q;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = g_allocations.find((const char *)p);
    if (it == g_allocations.end()) {
        fprintf(stderr, "emulated cudaFree(%p): not a device allocation\n", p);
        return set_error(cudaErrorInvalidValue);
    }
    emu::host_sync();
    g_allocated -= it->second;
    g_allocations.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
    if (count == 0) return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) dst_dev = emu::is_device_range(dst, count), src_dev = emu::is_device_range(src, count);
    if (dst_dev != emu::is_device_range(dst, count) || src_dev != emu::is_device_range(src, count)) {
        fprintf(stderr, "emulated cudaMemcpyAsync(%p, %p, %zu, kind %d): the pointers do not match the kind\n", dst,
                src, count, (int)kind);
        return set_error(cudaErrorInvalidValue);
    }
    emu::submit(stream, [dst, src, count]() {
        emu::host_sync();
        memmove(dst, src, count);
    });
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, count, kind, 0);
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t count, cudaStream_t stream) {
    if (count == 0) return cudaSuccess;
    if (!emu::is_device_range(p, count)) {
        fprintf(stderr, "emulated cudaMemsetAsync(%p, %zu bytes): not within a device allocation\n", p, count);
        return set_error(cudaErrorInvalidValue);
    }
    emu::submit(stream, [p, value, count]() {
        emu::host_sync();
        memset(p, value, count);
    });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int value, size_t count) { return cudaMemsetAsync(p, value, count, 0); }
cudaError_t cudaDeviceSynchronize(void) {
    emu::host_sync();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) {
    static char streams[64];
    static int n;
    *s = (cudaStream_t)&streams[++n % 64];
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    emu::host_sync();
    return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }

struct EmuEvent {
    double ms;
};
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t) new EmuEvent{0};
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete (EmuEvent *)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
    EmuEvent *ev = (EmuEvent *)e;
    emu::submit(stream, [ev]() { ev->ms = now_ms(); });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
    emu::host_sync();
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(((EmuEvent *)b)->ms - ((EmuEvent *)a)->ms);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > OPTIN_SMEM) return set_error(cudaErrorInvalidValue);
        g_max_dyn_smem[func] = value;
    }
    return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *) {
    memset(attr, 0, sizeof *attr);
    attr->ptxVersion = 90, attr->binaryVersion = 90, attr->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode) {
    if (g_capturing) return set_error(cudaErrorIllegalState);
    g_capturing = true, g_capturing_stream = stream, g_capture = new Graph;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    if (!g_capturing || stream != g_capturing_stream) return set_error(cudaErrorIllegalState);
    g_capturing = false;
    *graph = (cudaGraph_t)g_capture;
    g_capture = NULL;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
    *status = g_capturing && stream == g_capturing_stream ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    *exec = (cudaGraphExec_t) new Graph(*(Graph *)graph);
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (g_capturing && stream == g_capturing_stream) return set_error(cudaErrorIllegalState);
    for (auto &op : ((Graph *)exec)->nodes) op();
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    emu::host_sync();
    delete (Graph *)exec;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    emu::host_sync();
    delete (Graph *)graph;
    return cudaSuccess;
}
