// Batched greedy decoding of token prompts on the GPU, each job with its own adapter, scheduled
// by interpreter/schedule.h (continuous batching by default): the model side of the GPU batch
// runner (runner_cuda.h), which adds the text, and of `paw bench gpu --mode batch`.
//
// Rows: a batch of min(batch, jobs) rows, whose per-row adapters live in [L, batch, ...] buffers
// that the steps read; a refill gathers the new jobs' adapters into their rows and into a
// prefill buffer of ceil(batch / 4) rows (a larger refill is prefilled in pieces of that size).
// Memory beyond the model's: the KV caches (rows x (longest prompt + max_new) tokens) and 1.25 x
// batch adapters. A job with a shared prefix has its first `keep` tokens' keys and values copied
// into its row, and only the rest of its prompt prefilled.
#ifndef PAW_INTERPRETER_DECODER_CUDA_H
#define PAW_INTERPRETER_DECODER_CUDA_H

#include "interpreter/schedule.h"
#include "model/qwen3_cuda.h"

typedef struct {
    const int *ids;              // prompt (model token ids), len tokens; not owned
    int len;
    const Qwen3CudaLora *lora;   // nb = 1 at the run's rank, scale folded into B (scale 1); NULL: none
    int end;                     // > 0: the job ends after this many tokens, as if the stop token came
                                 // then (benchmarks: random weights never stop); 0: stop token or max_new
    const Qwen3CudaPrefix *prefix;  // keys and values of the prompt's first `keep` tokens (made with
    int keep;                       // this job's adapter), or NULL and 0; keep < len
} PawDecodeJob;

typedef struct PawGpuDecoder PawGpuDecoder;

// cfg: the model's (for the adapter shapes). NULL + paw_error when batch < 1 or without CUDA.
PawGpuDecoder *paw_gpu_decoder_create(Qwen3Cuda *g, const Qwen3Config *cfg, int batch);
// Rows that end are refilled while the others go on (on by default); off: the rows run as fixed
// batches, all until the last of them ends.
void paw_gpu_decoder_set_refill(PawGpuDecoder *d, int on);
// Decodes the jobs order[0..n) (indices into jobs; paw_run_plan's order keeps the padding low)
// with adapters of rank `rank` (0 when no job has one). Job j's tokens go to out + j * max_new
// (its stop token kept), their count to counts[j]. st may be NULL. 0, or -1 + paw_error.
int paw_gpu_decoder_run(PawGpuDecoder *d, const PawDecodeJob *jobs, const int *order, int n, int rank, int max_new,
                        int stop_id, int *out, int *counts, PawDecodeStats *st);
// Frees the adapter buffers (the model stays the caller's).
void paw_gpu_decoder_free(PawGpuDecoder *d);

#endif
