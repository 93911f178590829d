// The CUDA runtime as the C code sees it: device start-up, memory, transfers and timing. Every
// CUDA call behind these is checked; a failed call prints file:line and the CUDA error string and
// exits (a GPU fault leaves nothing to recover). Nothing here runs until paw_cuda_init() is
// called, so a CUDA-built binary works on a machine without a GPU as long as it stays on the CPU.
#ifndef PAW_KERNELS_CUDA_COMMON_CUDA_H
#define PAW_KERNELS_CUDA_COMMON_CUDA_H

#include <stddef.h>
#include <stdint.h>

// bf16 storage: __nv_bfloat16 in CUDA code (and in its CPU emulation, tests/emu/), its raw 16 bits
// in C (same size, passed by pointer).
#if defined(__CUDACC__) || defined(PAW_EMU)
#include <cuda_bf16.h>
typedef __nv_bfloat16 paw_bf16;
#else
typedef uint16_t paw_bf16;
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Selects the device (PAW_CUDA_DEVICE, else the node-local MPI rank modulo the GPU count, else 0)
// and creates the stream every kernel runs on. Returns 0, or -1 with
// paw_error when no usable GPU is present (safe to call again; later calls are free).
int paw_cuda_init(void);
// Device name, SM count and memory of the selected GPU (after paw_cuda_init).
const char *paw_cuda_device_name(void);
int paw_cuda_sm_count(void);

void *paw_cuda_malloc(size_t bytes);  // exits on failure, naming the size
void paw_cuda_free(void *p);
size_t paw_cuda_allocated_bytes(void);       // currently held through paw_cuda_malloc
size_t paw_cuda_peak_allocated_bytes(void);  // high-water mark since start (or the last reset)
void paw_cuda_reset_peak(void);
size_t paw_cuda_used_device_bytes(void);  // total - free as the driver reports it
size_t paw_cuda_free_device_bytes(void);  // free as the driver reports it

// Ordered on the stream; the host-side ones wait for completion before returning.
void paw_cuda_upload(void *dst, const void *src, size_t bytes);
void paw_cuda_download(void *dst, const void *src, size_t bytes);
void paw_cuda_memset(void *dst, int byte, size_t bytes);
void paw_cuda_copy(void *dst, const void *src, size_t bytes);  // device to device, queued on the stream
void paw_cuda_sync(void);
// fp32 host <-> bf16 device (round to nearest even), converted on the host in chunks.
void paw_cuda_upload_bf16(paw_bf16 *dst, const float *src, size_t n);
void paw_cuda_download_bf16(float *dst, const paw_bf16 *src, size_t n);
// bf16 -> fp32 and fp32 -> bf16 (round to nearest even) on the device.
void paw_cuda_bf16_to_f32(float *dst, const paw_bf16 *src, size_t n);
void paw_cuda_f32_to_bf16(paw_bf16 *dst, const float *src, size_t n);

// Programmatic dependent launch for the kernels launched through paw_launch (cuda_common.cuh):
// on only where the device supports it (compute capability 9.0+); returns whether it is on. The
// decoding step turns it on around its own kernels (qwen3_cuda_set_decode_pdl).
int paw_cuda_set_pdl(int on);
int paw_cuda_pdl(void);
int paw_cuda_pdl_supported(void);

// The compute stream as an opaque handle (a cudaStream_t) for C code that drives other CUDA
// libraries on it or orders its own streams after it (the NCCL backend).
void *paw_cuda_stream_handle(void);

// Timing on the stream: an event pair measures the device time between two records.
typedef struct PawCudaTimer PawCudaTimer;
PawCudaTimer *paw_cuda_timer_create(void);
void paw_cuda_timer_start(PawCudaTimer *t);
float paw_cuda_timer_stop_ms(PawCudaTimer *t);  // waits for the stop event
void paw_cuda_timer_free(PawCudaTimer *t);

#ifdef __cplusplus
}
#endif

#endif
