// A trained compiler as `paw train` exports it: a Hugging Face checkpoint directory (config.json,
// model.safetensors) plus mapper.safetensors (mapper and prefix), paw.json (LoRA rank, alpha,
// bases, prefix steps, the interpreter's id and config.json), tokenizer.json and, for tiny
// models, vocab_map.safetensors. Turns (spec, pseudo-program) pairs into LoRA adapters.
#ifndef PAW_COMPILER_TRAINED_H
#define PAW_COMPILER_TRAINED_H

#include <stdio.h>

#include "compiler/compiler.h"
#include "compiler/mapper.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"

typedef struct {
    Compiler comp;
    Mapper mapper;
    PawTokenizer *tok;
    PawVocabMap vmap;
    int32_t im_end;           // tokenizer id
    Qwen3Config icfg;         // the interpreter the adapters are for
    char *interpreter_id;
    char fingerprint[65];     // sha256 of mapper.safetensors (changes with every trained compiler)
    int rank, bases, prefix_steps;
    float alpha;
    struct CompilerCuda *gpu_comp;  // with paw_trained_compiler_use_gpu: the forward and the mapper
    struct MapperCuda *gpu_mapper;  // run on the GPU (CUDA builds)
} PawTrainedCompiler;

// weights: QWEN3_WEIGHTS_* for the compiler's matrices (AUTO: bf16 when its checkpoint stores
// bf16); the mapper and the prefix are always fp32. The GPU path needs QWEN3_WEIGHTS_F32.
int paw_trained_compiler_load(PawTrainedCompiler *tc, const char *dir, int weights);
void paw_trained_compiler_free(PawTrainedCompiler *tc);
// One line: the compiler's size and how its matrices are held (f32, bf16 or q8), for the log.
void paw_trained_compiler_describe(const PawTrainedCompiler *tc, FILE *f);
// Moves the compiler and the mapper to the GPU (a copy: the host model stays); the adapters are
// then computed there in bf16 (the compiler) and fp32 (the mapper). -1 + paw_error without a
// usable GPU or in a build without CUDA.
int paw_trained_compiler_use_gpu(PawTrainedCompiler *tc);
// One adapter per (spec, pseudo-program) pair, computed in batches of up to `batch`: out[i] is
// allocated with nb = 1 (free with mapper_lora_free).
int paw_trained_compiler_adapters(PawTrainedCompiler *tc, const char *const *specs, const char *const *pseudo, int n,
                                  int batch, Qwen3Lora *out);

#endif
