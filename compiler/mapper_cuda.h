// The PAW mapper (compiler/mapper.h) on the GPU, fp32 throughout: the same parameters, the same
// forward (mean pool -> Linear + exact GELU -> Linear -> basis mixing) and the mirror of its
// backward, with device buffers. The adapters come out in fp32 (the mixing output) and as the
// bf16 copies the interpreter's LoRA GEMMs read (kernels/lora_cuda.h).
//
// Parameters and gradients are each one device block in the MapperParams tensor order, so the
// trainer can run adamw_cuda / grad_norm_sq_cuda (kernels/adamw_cuda.h) over whole blocks or
// shards of them; the optimizer is the caller's (this file keeps no moments). Gradients always
// accumulate; mapper_cuda_zero_grad clears them. Everything runs on paw_cuda_stream(), and
// paw_cuda_init() must have succeeded before any call here.
#ifndef PAW_COMPILER_MAPPER_CUDA_H
#define PAW_COMPILER_MAPPER_CUDA_H

#include <stddef.h>

#include "kernels/cuda_common_cuda.h"
#include "model/qwen3_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "compiler/mapper.h"  // C headers without their own extern "C"

typedef struct MapperCuda MapperCuda;

// Per-example adapters on the device for nb examples, per module (LORA_* order of model/qwen3.h):
// A [L, nb, r, d_in], B [L, nb, d_out, r]. The fp32 and bf16 copies and the gradients each live in
// one block (module by module, A then B), so a conversion or a zeroing is one pass.
typedef struct {
    int nb, L, rank;
    float scale;                       // alpha / rank, for lora_cuda_forward/backward
    size_t numel;                      // elements of one block (all A and B)
    float *A[LORA_NUM_MODULES];        // fp32, written by mapper_cuda_forward
    float *B[LORA_NUM_MODULES];
    paw_bf16 *A16[LORA_NUM_MODULES];   // bf16 copies of A/B, written by mapper_cuda_forward
    paw_bf16 *B16[LORA_NUM_MODULES];
    float *dA[LORA_NUM_MODULES];       // fp32 gradients (accumulated by the interpreter's
    float *dB[LORA_NUM_MODULES];       // backward); NULL when allocated without them
    float *f32_block, *grad_block;
    paw_bf16 *bf16_block;
} MapperCudaLora;

// Allocates adapters for nb examples (gradients zeroed when with_grads). 0, or -1 with paw_error.
int mapper_cuda_lora_alloc(const MapperConfig *cfg, int nb, int with_grads, MapperCudaLora *lora);
void mapper_cuda_lora_free(MapperCudaLora *lora);
void mapper_cuda_lora_zero_grad(MapperCudaLora *lora);
// The adapters as the GPU interpreter takes them (bf16 copies and the gradient buffers; no copy).
void mapper_cuda_lora_view(const MapperCudaLora *lora, Qwen3CudaLora *view);

// Uploads a CPU mapper's parameters (gradients start at zero). NULL with paw_error on a bad config.
MapperCuda *mapper_cuda_create(const Mapper *cpu);
void mapper_cuda_free(MapperCuda *m);

// Whole-block transfers to/from a CPU mapper of the same config (checkpoints, tests).
// 0, or -1 with paw_error when the configs differ.
int mapper_cuda_get_params(const MapperCuda *m, Mapper *dst);
int mapper_cuda_get_grads(const MapperCuda *m, Mapper *dst);
int mapper_cuda_set_params(MapperCuda *m, const Mapper *src);
void mapper_cuda_zero_grad(MapperCuda *m);

// The device blocks (num_params floats each), in the CPU mapper's order.
size_t mapper_cuda_num_params(const MapperCuda *m);
float *mapper_cuda_params(MapperCuda *m);
float *mapper_cuda_grads(MapperCuda *m);
// Tensor i (0 .. MAPPER_NUM_TENSORS-1, see mapper_tensor_name): its parameter and gradient
// pointers inside the blocks (either out pointer may be NULL); returns its element count.
size_t mapper_cuda_tensor(MapperCuda *m, int i, float **param, float **grad);

// H: device fp32 [nb, L, P, d] captured states. Writes out's A/B and A16/B16 (out allocated for
// nb examples of this config) and keeps the activations the backward needs. 0 or -1 (paw_error).
int mapper_cuda_forward(MapperCuda *m, const float *H, int nb, int P, MapperCudaLora *out);
// Reads lora->dA/dB (the adapters of the last forward), accumulates the mapper's gradients and
// writes dH, device fp32 [nb, L, P, d]. 0 or -1 (paw_error).
int mapper_cuda_backward(MapperCuda *m, int P, const MapperCudaLora *lora, float *dH);

#ifdef __cplusplus
}
#endif

#endif
