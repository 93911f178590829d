// The compiler side of a PAW step on the GPU (the twin of compiler/compiler.h): a CUDA Qwen3
// model whose input is a tokenized spec followed by P learned prefix embeddings (fp32, on the
// device), and the capture of its hidden states at the prefix positions by the depth-ratio rule
// into H [B, slots, P, d] (device fp32, the mapper's input). The backward scatters dH into the
// model's residual stream (qwen3_cuda_backward_ex) and accumulates the prefix gradient.
// Everything runs on paw_cuda_stream(); paw_cuda_init() must have succeeded.
#ifndef PAW_COMPILER_COMPILER_CUDA_H
#define PAW_COMPILER_COMPILER_CUDA_H

#include "model/qwen3_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "compiler/compiler.h"

typedef struct CompilerCuda CompilerCuda;

// Takes ownership of model (trainable, or frozen when only the mapper trains); prefix: host fp32
// [P, d], copied. slots = the interpreter's layer count. NULL + paw_error on bad sizes.
CompilerCuda *compiler_cuda_create(Qwen3Cuda *model, const Qwen3Config *cfg, const float *prefix, int P, int slots);
// Uploads a CPU compiler (weights, prefix). recompute as in qwen3_cuda_create.
CompilerCuda *compiler_cuda_from_cpu(const Compiler *cpu, int recompute);
void compiler_cuda_free(CompilerCuda *c);

Qwen3Cuda *compiler_cuda_model(CompilerCuda *c);
int compiler_cuda_prefix_len(const CompilerCuda *c);
// Device fp32 [P, d] prefix and its accumulated gradient.
float *compiler_cuda_prefix(CompilerCuda *c);
float *compiler_cuda_dprefix(CompilerCuda *c);
void compiler_cuda_zero_grad(CompilerCuda *c);  // model weight gradients (unless frozen) and dprefix

// B sequences seqs[b][0..lens[b]) (host) followed by the prefix. Fills the states H.
int compiler_cuda_forward(CompilerCuda *c, const int *const *seqs, const int *lens, int B);
// Device fp32 [B, slots, P, d] of the last forward.
const float *compiler_cuda_states(const CompilerCuda *c);
// dH: device fp32 [B, slots, P, d]. Accumulates the model's gradients (unless frozen) and dprefix.
// on_grads_ready (may be NULL) gets the model's reports (qwen3_cuda_backward_ex), then
// COMPILER_GRADS_PREFIX once dprefix's work is queued.
int compiler_cuda_backward(CompilerCuda *c, const float *dH, Qwen3GradsReadyFn on_grads_ready, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
