// safetensors read and write (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian tensor bytes. Files are memory-mapped; every header field is
// validated before any tensor byte is touched, so a bad file gives an error naming the file
// and the tensor, never a crash or an out-of-bounds read.
#ifndef PAW_MODEL_SAFETENSORS_H
#define PAW_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/fileio.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64, ST_U8, ST_I8, ST_F64, ST_BOOL, ST_NDTYPES } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data;  // points into the mapping; nbytes = numel * st_dtype_size(dtype)
    size_t nbytes;
} StTensor;

typedef struct {
    char *path;
    PawMap map;
    int ntensors;
    StTensor *tensors;  // sorted by data offset
    int nmeta;
    char **meta_keys, **meta_values;  // "__metadata__" string pairs
} SafeTensors;

const char *st_dtype_name(StDtype d);  // "F32", "BF16", ...
size_t st_dtype_size(StDtype d);

int st_open(SafeTensors *st, const char *path);  // 0, or -1 + paw_error naming the file/tensor
void st_close(SafeTensors *st);
const StTensor *st_find(const SafeTensors *st, const char *name);  // NULL when absent
const char *st_meta(const SafeTensors *st, const char *key);       // NULL when absent

// Converts a F32/F16/BF16 tensor to fp32 (dst holds numel floats). -1 for other dtypes.
int st_to_f32(const SafeTensors *st, const StTensor *t, float *dst);

// One tensor to write: data holds numel elements of dtype, little-endian.
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

// Writes the tensors (in the order given) atomically: temporary name, fsync, rename.
// meta: n_meta key/value string pairs for "__metadata__" (HF expects {"format": "pt"}).
int st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_kv, int n_meta);

// fp32 -> bf16 with round-to-nearest-even, and back; fp16 <-> fp32.
uint16_t st_f32_to_bf16(float f);
// Exact: the bf16 bits are the high half of the fp32 ones. Inline, for the kernels that widen
// bf16 weights as they read them.
static inline float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t st_f32_to_f16(float f);
float st_f16_to_f32(uint16_t h);

#endif
