// GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), version 3, little-endian:
//   "GGUF", u32 version, u64 tensor count, u64 key/value count,
//   key/values: string key, u32 value type, value (strings are u64 length + bytes, no NUL;
//               arrays are u32 element type + u64 count + elements),
//   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (ne[0] varies fastest), u32 ggml type,
//               u64 offset into the data section,
//   padding to general.alignment (default 32), then the data section; every tensor offset is a
//   multiple of the alignment.
// The reader validates every count, length, type and offset against the bytes available before
// touching them, so a bad file gives an error naming the file and the key or tensor, never a
// crash or an out-of-bounds read. The writer lays tensors out back to back, each padded to the
// alignment, the layout ggml's own reader requires.
#ifndef PAW_MODEL_GGUF_H
#define PAW_MODEL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/fileio.h"
#include "kernels/quant.h"

enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64  // ggml's GGML_MAX_NAME: tensor names up to 63 bytes

const char *gguf_type_name(int type);  // "uint32", "string", ...

typedef struct {
    char *key;
    int type;          // GGUF_TYPE_*
    // scalars (numbers and bool), converted losslessly to the widest matching member
    uint64_t u64;
    int64_t i64;
    double f64;
    char *str;         // STRING: NUL-terminated copy (str_len bytes, which may hold NULs)
    uint64_t str_len;
    int arr_type;      // ARRAY: element type (never ARRAY: ggml refuses nested arrays too)
    uint64_t arr_n;
    const uint8_t *arr_data;  // ARRAY of numbers/bool: packed little-endian elements in the file
    char **arr_str;           // ARRAY of strings: arr_n NUL-terminated copies
} GgufKV;

typedef struct {
    char *name;
    int type;  // ggml type id
    int ndim;
    int64_t ne[GGUF_MAX_DIMS];  // unused dims are 1
    int64_t numel;
    uint64_t offset;            // within the data section
    const uint8_t *data;        // points into the file bytes
    size_t nbytes;
} GgufTensor;

typedef struct {
    char *path;     // name used in messages
    PawMap map;     // when opened from a file
    uint32_t version;
    uint32_t alignment;
    int nkv;
    GgufKV *kv;
    int ntensors;
    GgufTensor *tensors;  // in file order
    size_t data_offset;   // start of the data section
} Gguf;

// Memory-maps and parses a file.
int gguf_open(Gguf *g, const char *path);
// Parses bytes that stay owned by the caller and must outlive g. name is used in messages.
int gguf_parse(Gguf *g, const uint8_t *data, size_t size, const char *name);
void gguf_close(Gguf *g);

const GgufKV *gguf_find_kv(const Gguf *g, const char *key);
const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name);
// The string value of key, or NULL when it is absent or not a string.
const char *gguf_get_str(const Gguf *g, const char *key);
// A numeric (integer, float or bool) value as double: 0, or -1 + paw_error when absent or not numeric.
int gguf_get_number(const Gguf *g, const char *key, double *out);

// Decodes a F32/F16/BF16/Q8_0/Q4_0 tensor into numel floats. -1 + paw_error for other types.
int gguf_tensor_to_f32(const Gguf *g, const GgufTensor *t, float *dst);
// A Q8_0 or Q4_0 tensor as int8 values q[numel] and fp32 scales d[numel / 32], exactly
// (kernels/quant.h: q4_0_to_q8). -1 + paw_error for other types.
int gguf_tensor_to_q8(const Gguf *g, const GgufTensor *t, int8_t *q, float *d);

// ---------------------------------------------------------------------------------------------
// Writer: collects key/values and tensors in memory, then serialises them.
typedef struct {
    uint32_t alignment;
    int nkv, cap_kv;
    struct GgufWriteKV *kv;
    int nt, cap_t;
    struct GgufWriteTensor *t;
} GgufWriter;

void gguf_writer_init(GgufWriter *w);
void gguf_writer_free(GgufWriter *w);
// Key/values keep the order they are added in. A repeated key is an error.
int gguf_writer_set_str(GgufWriter *w, const char *key, const char *value);
int gguf_writer_set_u32(GgufWriter *w, const char *key, uint32_t value);
int gguf_writer_set_i32(GgufWriter *w, const char *key, int32_t value);
int gguf_writer_set_u64(GgufWriter *w, const char *key, uint64_t value);
int gguf_writer_set_f32(GgufWriter *w, const char *key, float value);
int gguf_writer_set_f64(GgufWriter *w, const char *key, double value);
int gguf_writer_set_bool(GgufWriter *w, const char *key, int value);
// Array of numbers/bools: n elements of elem_type, packed as they are stored (little-endian).
int gguf_writer_set_array(GgufWriter *w, const char *key, int elem_type, const void *data, uint64_t n);
int gguf_writer_set_str_array(GgufWriter *w, const char *key, const char *const *values, uint64_t n);
// Sets the data alignment and records it as general.alignment (a power of two).
int gguf_writer_set_alignment(GgufWriter *w, uint32_t alignment);
// Adds a tensor whose bytes are already in the given ggml type (copied). ne[0] varies fastest.
int gguf_writer_add_tensor(GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne,
                           const void *data, size_t nbytes);
// Adds a tensor from fp32 values, converting to F32, F16, BF16, Q8_0 or Q4_0.
int gguf_writer_add_tensor_f32(GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne,
                               const float *x);
// The whole file in a new buffer (caller frees).
int gguf_writer_serialize(const GgufWriter *w, uint8_t **out, size_t *size);
// Writes the file atomically (temporary name, fsync, rename).
int gguf_writer_write(const GgufWriter *w, const char *path);

#endif
