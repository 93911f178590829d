// The PAW mapper (fp32): compiler hidden states -> per-example LoRA for the interpreter.
//   m = mean over captured layers and positions of H[b]          [d]
//   g = GELU(W1 m + b1)                                          [d]
//   c = W2 g + b2                                                [L * 7 * N * 2]
//   A[l, mod] = sum_n c[((l*7+mod)*N+n)*2+0] * Abase[mod][n]      [r, d_in]
//   B[l, mod] = sum_n c[((l*7+mod)*N+n)*2+1] * Bbase[mod][n]      [d_out, r]
// Modules in sorted-name order (down, gate, k, o, q, up, v): the layout of the published PAW mapper.
#ifndef PAW_COMPILER_MAPPER_H
#define PAW_COMPILER_MAPPER_H

#include <stddef.h>

#include "model/qwen3.h"

typedef struct {
    int d;        // compiler hidden size
    int L;        // interpreter layers (= captured slots)
    int nbases;   // N
    int rank;     // r
    float alpha;  // LoRA scale = alpha / r
    Qwen3Config icfg;  // interpreter config (module dims)
} MapperConfig;

typedef struct {
    float *w1, *b1;                    // [d, d], [d]
    float *w2, *b2;                    // [L*7*N*2, d], [L*7*N*2]
    float *abase[LORA_NUM_MODULES];    // [N, r, d_in]
    float *bbase[LORA_NUM_MODULES];    // [N, d_out, r]
} MapperParams;

#define MAPPER_NUM_TENSORS (4 + 2 * LORA_NUM_MODULES)

typedef struct {
    MapperConfig cfg;
    MapperParams params, grads;
    float *params_memory, *grads_memory;
    size_t num_params;
    // activations of the last forward, for nb examples
    int nb;
    float *mean, *h1, *g, *coef;  // [nb, d], [nb, d], [nb, d], [nb, L*7*N*2]
    float *dcoef, *dg, *dmean;    // backward scratch
} Mapper;

// Tensor i's name ("mapper.fc1.weight", "mapper.A.q_proj", ...), shape and element count.
const char *mapper_tensor_name(int i, char *buf, size_t n);
size_t mapper_tensor_shape(const MapperConfig *cfg, int i, int *ndim, int shape[3]);
float **mapper_tensor_slot(MapperParams *p, int i);

void mapper_create(Mapper *mp, const MapperConfig *cfg);
void mapper_free(Mapper *mp);
// Initialisation (reasons in mapper.c); B bases start at zero so a fresh compiler's adapters
// are no-ops and training starts from the bare interpreter.
void mapper_init(Mapper *mp, unsigned long long seed);
void mapper_zero_grad(Mapper *mp);

// Coefficient count per example: L * 7 * N * 2.
size_t mapper_num_coef(const MapperConfig *cfg);

// H: [nb, L, P, d] captured states. Fills lora->A/B ([L, nb, ...] per module), which the caller
// allocated for nb adapters (see mapper_lora_alloc).
void mapper_forward(Mapper *mp, const float *H, int nb, int P, Qwen3Lora *lora);
// Given lora->dA/dB, accumulates the mapper's gradients and writes dH [nb, L, P, d].
void mapper_backward(Mapper *mp, int P, const Qwen3Lora *lora, float *dH);

// Allocates A/B (and gradient buffers when with_grads) for nb adapters of this config.
void mapper_lora_alloc(const MapperConfig *cfg, int nb, int with_grads, Qwen3Lora *lora);
void mapper_lora_free(Qwen3Lora *lora);
// Copies example b's adapters out of a batch into a one-adapter set (allocated, no gradients).
void mapper_lora_select(const MapperConfig *cfg, const Qwen3Lora *src, int b, Qwen3Lora *dst);

// The mapper and the compiler's prefix as one safetensors file (compiler/mapper_io.c).
struct Compiler;
int paw_mapper_file_save(const struct Compiler *comp, const Mapper *mapper, const char *path);
int paw_mapper_file_load(struct Compiler *comp, Mapper *mapper, const char *path);

#endif
