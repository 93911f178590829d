// Where the Qwen3 parameters live in the GPU's flat block (model/qwen3_cuda.cu) and how that maps
// to the CPU layout (qwen3_param_info order: the layout of checkpoints and of ZeRO shards). Plain
// C, so the mapping is tested without a GPU.
//
// The GPU fuses q/k/v into one [Q+2KV, C] matrix per layer and gate/up into one [2I, C], and
// groups each kind of tensor over all layers. Groups start 128 elements (256 bytes of bf16)
// apart. Embedding, head and norm weights come first and the layer matrices last, so that with
// bf16 weight gradients the fp32 gradient block covers [0, split) and the bf16 one [split, total).
#ifndef PAW_MODEL_QWEN3_CUDA_LAYOUT_H
#define PAW_MODEL_QWEN3_CUDA_LAYOUT_H

#include <stddef.h>

#include "model/qwen3.h"

enum { QG_WTE, QG_LN1, QG_QKV, QG_QN, QG_KN, QG_O, QG_LN2, QG_GU, QG_DOWN, QG_LNF, QG_HEAD, QG_NUM };

typedef struct {
    size_t C, I, L, V, HD, Q, KV, QKV;
    int tied;          // the LM head is the embedding
    size_t base[QG_NUM], extent[QG_NUM];  // element offset and padded size of each group
    size_t total;      // elements of the GPU block, padding included
    size_t split;      // where the layer matrices start
    size_t cpu_total;  // floats of the CPU layout (qwen3's num_params)
} Qwen3DevLayout;

void qwen3_dev_layout(Qwen3DevLayout *lay, const Qwen3Config *cfg);
// Where CPU tensor i (qwen3_param_info order), layer l, starts in the GPU block, and its group.
size_t qwen3_dev_offset(const Qwen3DevLayout *lay, int tensor, int layer);
int qwen3_dev_group(int tensor);
int qwen3_dev_is_matrix_group(int group);  // q/k/v, o, gate/up, down: bf16 gradients when asked
int qwen3_dev_is_norm_group(int group);    // no weight decay

// A run: n elements contiguous in both layouts, inside one group.
typedef struct {
    size_t cpu, dev, n;
    int group;
} Qwen3DevRun;
// The runs that cover [lo, hi) of the CPU layout, in CPU order, merged where one continues the
// previous in both layouts and group. Writes at most cap of them (out may be NULL) and returns
// how many there are; -1 when the range is outside [0, cpu_total].
int qwen3_dev_runs(const Qwen3DevLayout *lay, size_t lo, size_t hi, Qwen3DevRun *out, int cap);

// The gradients the backward reports final at `report` (QWEN3_GRADS_HEAD, a layer 0..L-1, or
// QWEN3_GRADS_EMBED; Qwen3GradsReadyFn in model/qwen3.h): at most 8 slices, each n elements from
// device offset dev, inside one group. Over all reports they cover every parameter once.
typedef struct {
    size_t dev, n;
    int group;
} Qwen3DevSlice;
int qwen3_dev_report_slices(const Qwen3DevLayout *lay, int report, Qwen3DevSlice out[8]);

#endif
