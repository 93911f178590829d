// ggml tensor types and the block formats this project reads and writes, bit-exact with
// ggml (ggml-quants.c, the reference quantizers; gguf-py's numpy versions match them):
//   Q8_0: blocks of 32 values -> fp16 scale d = max|x| / 127, then 32 int8 q = roundf(x / d);
//         x ~= q * d. 34 bytes per block.
//   Q4_0: blocks of 32 values -> fp16 scale d = m / -8 where m is the value of largest magnitude
//         (the first one on ties), then 16 bytes of nibbles: byte j holds q[j] in its low nibble
//         and q[j + 16] in its high nibble, q = min(15, trunc(x / d + 8.5)); x ~= (q - 8) * d.
//         18 bytes per block.
// The scale's reciprocal is taken from the fp32 scale before it is rounded to fp16, as ggml does.
// Blocks run along ne[0], the fastest-varying dimension, so quantized rows must hold a multiple
// of 32 values. Single-threaded on purpose: adapters are small (a Q4_0 Qwen3-0.6B adapter
// quantizes in well under a second) and a thread team per tensor cost more than it saved.
#ifndef PAW_KERNELS_QUANT_H
#define PAW_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

// ggml_type ids as stored in GGUF tensor infos (only the ones this project converts are named).
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_BF16 = 30,
};

#define QK4_0 32
#define QK8_0 32
#define Q4_0_BLOCK_BYTES 18
#define Q8_0_BLOCK_BYTES 34

// Block size (values) and block bytes of any ggml type a GGUF file may hold. -1 when unknown.
int ggml_type_layout(int type, int *block_size, int *block_bytes);
// "F32", "Q4_0", ...; "unknown" for ids outside the table.
const char *ggml_type_name(int type);
// Case-insensitive name -> id ("q4_0", "F16", "f32", "q8_0", "bf16", ...); -1 when unknown.
int ggml_type_from_name(const char *name);
// Bytes of n values of type (n a multiple of the block size); 0 for unknown types.
size_t ggml_type_nbytes(int type, int64_t n);

// n must be a multiple of 32 (callers check; see ggml_type_nbytes).
void quantize_q4_0(const float *x, uint8_t *out, int64_t n);
void dequantize_q4_0(const uint8_t *in, float *y, int64_t n);
void quantize_q8_0(const float *x, uint8_t *out, int64_t n);
void dequantize_q8_0(const uint8_t *in, float *y, int64_t n);

// Q4_0 or Q8_0 blocks -> int8 values q[n] and their fp32 scales d[n / 32], without rounding:
// q[i] * d[i / 32] is bit for bit the value the dequantize functions give (an fp16 scale times
// an integer of at most 8 bits is exact in fp32). The layout the CPU products read
// (kernels/matmul.h, Q8 weights): a Q4_0 adapter held this way reads 1.125 bytes a value, not 4.
void q4_0_to_q8(const uint8_t *in, int8_t *q, float *d, int64_t n);
void q8_0_to_q8(const uint8_t *in, int8_t *q, float *d, int64_t n);

// Element-wise conversions (little-endian storage), via model/safetensors.h's scalar ones.
void f32_to_f16_array(const float *x, uint16_t *out, int64_t n);
void f16_to_f32_array(const uint16_t *in, float *y, int64_t n);

#endif
