// Tests for kernels/quant.c: ggml's Q4_0 / Q8_0 block formats.
//
// Bit-exactness is checked two ways: blocks worked out by hand from ggml's rules, and the bytes
// gguf-py's quantizers (gguf.quants, bit-exact with ggml's reference) wrote into
// tests/fixtures/gguf/reference.gguf (python3 tests/make_gguf_fixtures.py).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/quant.h"
#include "model/gguf.h"
#include "model/safetensors.h"

#define REFERENCE "tests/fixtures/gguf/reference.gguf"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float rng_normal(void) {  // Box-Muller on xorshift64*
    double u[2];
    for (int k = 0; k < 2; k++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        u[k] = ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
    }
    return (float)(sqrt(-2.0 * log(u[0] + 1e-300)) * cos(6.283185307179586 * u[1]));
}

static float block_scale(const uint8_t *block) { return st_f16_to_f32((uint16_t)(block[0] | block[1] << 8)); }

Test(quant, q4_0_hand_block) {
    // max magnitude -2 (first) -> d = -2 / -8 = 0.25 (fp16 0x3400), 1/d = 4; q = trunc(4x + 8.5) capped at 15.
    float x[32] = {0};
    x[0] = -2.0f;   // 0.5  -> 0
    x[16] = 2.0f;   // 16.5 -> 16 -> clamped to 15
    x[1] = 0.3f;    // 9.7  -> 9
    x[17] = -0.3f;  // 7.3  -> 7
    x[2] = 0.124f;  // 8.996 -> 8
    x[18] = 0.126f; // 9.004 -> 9
    uint8_t q[Q4_0_BLOCK_BYTES];
    quantize_q4_0(x, q, 32);
    uint8_t want[Q4_0_BLOCK_BYTES] = {0x00, 0x34, 0xF0, 0x79, 0x98};
    for (int j = 5; j < Q4_0_BLOCK_BYTES; j++) want[j] = 0x88;
    for (int j = 0; j < Q4_0_BLOCK_BYTES; j++) cr_assert_eq(q[j], want[j], "byte %d: %02x vs %02x", j, q[j], want[j]);
    float y[32];
    dequantize_q4_0(q, y, 32);
    cr_assert_eq(y[0], -2.0f);
    cr_assert_eq(y[16], 1.75f);  // (15 - 8) * 0.25: the clamp loses a step
    cr_assert_eq(y[1], 0.25f);
    cr_assert_eq(y[17], -0.25f);
    cr_assert_eq(y[5], 0.0f);
}

Test(quant, q8_0_hand_block) {
    // max|x| = 127 -> d = 1 (fp16 0x3C00); q = roundf(x), halves away from zero.
    float x[32] = {127.0f, -127.0f, 2.5f, -2.5f, 0.49f, 3.7f, -0.5f};
    uint8_t q[Q8_0_BLOCK_BYTES];
    quantize_q8_0(x, q, 32);
    uint8_t want[Q8_0_BLOCK_BYTES] = {0x00, 0x3C, 0x7F, 0x81, 0x03, 0xFD, 0x00, 0x04, 0xFF};
    for (int j = 0; j < Q8_0_BLOCK_BYTES; j++) cr_assert_eq(q[j], want[j], "byte %d: %02x vs %02x", j, q[j], want[j]);
    float y[32];
    dequantize_q8_0(q, y, 32);
    cr_assert_eq(y[0], 127.0f);
    cr_assert_eq(y[3], -3.0f);
    cr_assert_eq(y[6], -1.0f);
}

Test(quant, zero_blocks) {
    float x[64] = {0}, y[64];
    uint8_t q4[2 * Q4_0_BLOCK_BYTES], q8[2 * Q8_0_BLOCK_BYTES];
    quantize_q4_0(x, q4, 64);
    quantize_q8_0(x, q8, 64);
    cr_assert_eq(q4[0], 0);
    cr_assert_eq(q4[1] & 0x7f, 0);  // d = 0 / -8 = -0.0, as in ggml
    cr_assert_eq(q4[2], 0x88);  // q = 8 encodes zero
    cr_assert_eq(q8[2], 0);
    dequantize_q4_0(q4, y, 64);
    for (int i = 0; i < 64; i++) cr_assert_eq(y[i], 0.0f);
    dequantize_q8_0(q8, y, 64);
    for (int i = 0; i < 64; i++) cr_assert_eq(y[i], 0.0f);
}

// Per element: |x - q(x)| <= |d|/2 plus what rounding d to fp16 costs (|q| times half an fp16
// step at d: relative 2^-11, or 2^-25 absolute where d is an fp16 subnormal), or one step |d|
// for Q4_0 values at the clamp.
static float f16_half_step(float d) { return fmaxf(fabsf(d) * 0x1p-11f, 0x1p-25f); }
Test(quant, error_bounds_random) {
    enum { N = 32 * 512 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q4 = malloc(N / 32 * Q4_0_BLOCK_BYTES), *q8 = malloc(N / 32 * Q8_0_BLOCK_BYTES);
    for (int i = 0; i < N; i++) x[i] = rng_normal() * (float)pow(10.0, (i / 32) % 7 - 3);  // scales 1e-3..1e3
    quantize_q4_0(x, q4, N);
    dequantize_q4_0(q4, y, N);
    int clamped = 0;
    for (int b = 0; b < N / 32; b++) {
        float d = block_scale(q4 + b * Q4_0_BLOCK_BYTES);
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[b * 32 + j]) > amax) amax = fabsf(x[b * 32 + j]), max = x[b * 32 + j];
        float id = 1.0f / (max / -8.0f);
        for (int j = 0; j < 32; j++) {
            float xi = x[b * 32 + j], e = fabsf(xi - y[b * 32 + j]);
            int at_clamp = xi * id + 8.5f >= 16.0f;
            clamped += at_clamp;
            float bound = (at_clamp ? 1.0f : 0.5f) * fabsf(d) + 8.0f * f16_half_step(d) + amax * 1e-6f;
            cr_assert(e <= bound, "q4_0 block %d elem %d: x %g err %g bound %g", b, j, xi, e, bound);
        }
    }
    cr_assert(clamped > 0);  // the clamp case was exercised
    quantize_q8_0(x, q8, N);
    dequantize_q8_0(q8, y, N);
    for (int b = 0; b < N / 32; b++) {
        float d = block_scale(q8 + b * Q8_0_BLOCK_BYTES);
        for (int j = 0; j < 32; j++) {
            float e = fabsf(x[b * 32 + j] - y[b * 32 + j]);
            float bound = 0.5f * d + 127.0f * f16_half_step(d) + d * 1e-4f;
            cr_assert(e <= bound, "q8_0 block %d elem %d: err %g bound %g", b, j, e, bound);
        }
    }
    free(x);
    free(y);
    free(q4);
    free(q8);
}

// Our quantizers reproduce gguf-py's bytes, and our dequantizers its values, exactly.
Test(quant, bit_exact_with_gguf_py) {
    Gguf g;
    cr_assert_eq(gguf_open(&g, REFERENCE), 0, "%s", paw_last_error());
    const char *names[2] = {"q8_0", "q4_0"};
    for (int k = 0; k < 2; k++) {
        char src_name[32], deq_name[32];
        snprintf(src_name, sizeof src_name, "src.%s", names[k]);
        snprintf(deq_name, sizeof deq_name, "deq.%s", names[k]);
        const GgufTensor *q = gguf_find_tensor(&g, names[k]), *src = gguf_find_tensor(&g, src_name),
                         *deq = gguf_find_tensor(&g, deq_name);
        cr_assert(q && src && deq);
        cr_assert_eq(src->numel, q->numel);
        float *x = malloc(src->nbytes), *want = malloc(deq->nbytes), *got = malloc(deq->nbytes);
        cr_assert_eq(gguf_tensor_to_f32(&g, src, x), 0);
        cr_assert_eq(gguf_tensor_to_f32(&g, deq, want), 0);
        uint8_t *mine = malloc(q->nbytes);
        if (q->type == GGML_TYPE_Q4_0) quantize_q4_0(x, mine, q->numel);
        else quantize_q8_0(x, mine, q->numel);
        for (size_t i = 0; i < q->nbytes; i++)
            cr_assert_eq(mine[i], q->data[i], "%s byte %zu: ours %02x, gguf-py %02x", names[k], i, mine[i], q->data[i]);
        cr_assert_eq(gguf_tensor_to_f32(&g, q, got), 0);
        cr_assert_eq(memcmp(got, want, deq->nbytes), 0, "%s dequantization differs", names[k]);
        free(x);
        free(want);
        free(got);
        free(mine);
    }
    gguf_close(&g);
}

// Q4_0 / Q8_0 blocks held as int8 values and fp32 scales (Q4_0 and Q8_0 adapters on the CPU):
// value times scale is bit for bit what the dequantizers give, for random blocks, all-zero
// blocks and the extreme codes.
Test(quant, blocks_to_int8_and_scales_are_exact) {
    enum { N = 32 * 67 };
    float *x = malloc(sizeof(float) * N), *deq = malloc(sizeof(float) * N), *d = malloc(sizeof(float) * N / 32);
    int8_t *q = malloc(N);
    uint8_t *blk = malloc(Q8_0_BLOCK_BYTES * (N / 32));
    for (int i = 0; i < N; i++) x[i] = rng_normal() * (1.0f + (float)(i / 32 % 7) * 100.0f);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;               // block 2: zeros (scale 0)
    for (int i = 0; i < 32; i++) x[96 + i] = i % 2 ? 3.0f : -3.0f;  // block 3: extreme codes
    for (int k = 0; k < 2; k++) {
        if (k == 0) {
            quantize_q4_0(x, blk, N);
            dequantize_q4_0(blk, deq, N);
            q4_0_to_q8(blk, q, d, N);
        } else {
            quantize_q8_0(x, blk, N);
            dequantize_q8_0(blk, deq, N);
            q8_0_to_q8(blk, q, d, N);
        }
        int lo = 0, hi = 0;
        for (int i = 0; i < N; i++) {
            float v = d[i / 32] * (float)q[i];
            cr_assert(memcmp(&v, &deq[i], 4) == 0, "%s value %d: %g vs %g", k ? "Q8_0" : "Q4_0", i, v, deq[i]);
            lo = q[i] < lo ? q[i] : lo, hi = q[i] > hi ? q[i] : hi;
        }
        cr_assert_eq(lo, k ? -127 : -8, "the full code range is exercised");
        cr_assert_eq(hi, k ? 127 : 7);
    }
    free(x), free(deq), free(d), free(q), free(blk);
}

Test(quant, type_table) {
    cr_assert_eq(ggml_type_from_name("q4_0"), GGML_TYPE_Q4_0);
    cr_assert_eq(ggml_type_from_name("Q8_0"), GGML_TYPE_Q8_0);
    cr_assert_eq(ggml_type_from_name("f16"), GGML_TYPE_F16);
    cr_assert_eq(ggml_type_from_name("F32"), GGML_TYPE_F32);
    cr_assert_eq(ggml_type_from_name("q4"), -1);
    cr_assert_str_eq(ggml_type_name(GGML_TYPE_Q4_0), "Q4_0");
    cr_assert_str_eq(ggml_type_name(1234), "unknown");
    cr_assert_eq(ggml_type_nbytes(GGML_TYPE_Q4_0, 64), 36);
    cr_assert_eq(ggml_type_nbytes(GGML_TYPE_Q8_0, 96), 102);
    cr_assert_eq(ggml_type_nbytes(GGML_TYPE_Q4_0, 48), 0);  // not whole blocks
    cr_assert_eq(ggml_type_nbytes(GGML_TYPE_F16, 3), 6);
    cr_assert_eq(ggml_type_nbytes(14 /* Q6_K */, 512), 420);
}

Test(quant, f16_arrays) {
    float x[5] = {1.0f, -2.5f, 65504.0f, 1e-8f, 0.1f}, y[5];
    uint16_t h[5];
    f32_to_f16_array(x, h, 5);
    cr_assert_eq(h[0], 0x3c00);
    cr_assert_eq(h[1], 0xc100);
    cr_assert_eq(h[2], 0x7bff);
    cr_assert_eq(h[3], 0x0000);  // below half the smallest subnormal
    cr_assert_eq(h[4], 0x2e66);
    f16_to_f32_array(h, y, 5);
    cr_assert_eq(y[1], -2.5f);
    cr_assert(fabsf(y[4] - 0.1f) < 1e-4f);
}
