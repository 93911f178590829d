// Flash attention on the tensor cores: mma.sync m16n8k16 (bf16 in, fp32 accumulate) with the
// operands fetched by ldmatrix, FlashAttention-2 style. Scores, probabilities and the output
// accumulator live in registers; shared memory holds only the bf16 tiles (loaded with cp.async
// when rows are 16-byte aligned). The head dimension is padded with zeros up to a template size
// (32, 64, 128), which also covers head sizes that are not multiples of 16.
//
// Forward: a block of 4 warps owns 64 query rows of one (sequence, head), 16 per warp, and streams
// 64-key tiles up to the causal limit (the next K tile loads while P V runs). Each warp keeps its
// rows' max and sum (online softmax, base 2) and saves the log-sum-exp for the backward.
// Backward (FlashAttention-2 order): a block owns 64 keys of one (sequence, KV head), 16 per warp,
// and loops over every query head of the group and every 32-row query tile at or after its keys.
// dK and dV stay in registers (the block is their only writer); dS goes through shared memory once
// for dQ, which is added into an fp32 buffer with atomics.
// Decoding (one query row, no lse): split-KV ("flash decoding"). Each warp scores a slice of the
// cache for all query heads of one KV head, one key per lane; the last block of a KV head to
// finish merges its slices (one kernel).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/attention_cuda.h"
#include "kernels/cuda_common.cuh"

typedef __nv_bfloat16 bf16;

#define NWARPS 4
#define NTHREADS (32 * NWARPS)
#define FBQ 64  // forward: query rows per block (16 per warp)
#define FBK 64  // forward: keys per tile
#define BBK 64  // backward: keys per block (16 per warp)
#define BBQ 32  // backward: query rows per tile
#define LOG2E 1.4426950408889634f

// ---- warp-level tensor-core helpers ----

// D += A B for one m16n8k16 tile: A 4 registers (row-major 16x16), B 2 registers (16x8), D 4 floats.
#ifdef PAW_EMU  // the CPU emulation's warp-wide equivalents (tests/emu/ptx.cc)
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    emu::mma16816(d, a, b0, b1);
}
__device__ __forceinline__ void ldsm4(uint32_t r[4], const bf16 *p) { emu::ldmatrix_x4(r, p, false); }
__device__ __forceinline__ void ldsm4_t(uint32_t r[4], const bf16 *p) { emu::ldmatrix_x4(r, p, true); }
#else
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bf16 matrices from shared memory; lane i gives the address of row i%8 of matrix i/8.
__device__ __forceinline__ void ldsm4(uint32_t r[4], const bf16 *p) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm4_t(uint32_t r[4], const bf16 *p) {  // each matrix transposed
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
#endif

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

// Fragment addresses inside a row-major bf16 tile with pitch ld (elements), for one warp lane.
// A operand, 16 rows from r0, 16 columns from c0 (registers a0..a3 of mma16816).
__device__ __forceinline__ const bf16 *frag_a(const bf16 *s, int ld, int r0, int c0, int lane) {
    return s + (r0 + (lane & 15)) * ld + c0 + (lane >> 4) * 8;
}
// B operand stored as [n][k] (the tile's rows are B's columns): n-blocks n0/8 and n0/8+1, k from
// k0 (registers b0 b1 of the first, then of the second), for ldsm4.
__device__ __forceinline__ const bf16 *frag_b_nk(const bf16 *s, int ld, int n0, int k0, int lane) {
    return s + (n0 + ((lane >> 4) & 1) * 8 + (lane & 7)) * ld + k0 + ((lane >> 3) & 1) * 8;
}
// B operand stored as [k][n]: the same four registers, for ldsm4_t.
__device__ __forceinline__ const bf16 *frag_b_kn(const bf16 *s, int ld, int k0, int n0, int lane) {
    return s + (k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * ld + n0 + (lane >> 4) * 8;
}

// ---- tile loads ----

#ifdef PAW_EMU
__device__ __forceinline__ void cp_async16(bf16 *dst, const bf16 *src) { emu::cp_async16(dst, src); }
__device__ __forceinline__ void cp_async_commit() { emu::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    emu::cp_async_wait(N);
}
#else
__device__ __forceinline__ void cp_async16(bf16 *dst, const bf16 *src) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
#endif

// dst[r][0..HDP) = src row r (HD values, zeros after) for r < valid, zeros for valid <= r < rows.
// vec: HD, the row stride and src are 16-byte multiples, so whole rows go by cp.async.
template <int HDP>
__device__ __forceinline__ void load_tile(bf16 *dst, int ld, const bf16 *src, long stride, int rows, int valid,
                                          int HD, bool vec) {
    const bf16 zero = __float2bfloat16_rn(0.0f);
    if (vec) {
        constexpr int CH = HDP / 8;
        for (int i = threadIdx.x; i < rows * CH; i += NTHREADS) {
            int r = i / CH, c = (i % CH) * 8;
            bf16 *d = dst + r * ld + c;
            if (r < valid && c < HD) cp_async16(d, src + (size_t)r * stride + c);
            else *reinterpret_cast<uint4 *>(d) = make_uint4(0, 0, 0, 0);
        }
    } else {
        for (int i = threadIdx.x; i < rows * HDP; i += NTHREADS) {
            int r = i / HDP, c = i % HDP;
            dst[r * ld + c] = (r < valid && c < HD) ? src[(size_t)r * stride + c] : zero;
        }
    }
}

// ---- forward ----

template <int HDP>
struct FwdLayout {
    static constexpr int LDB = HDP + 8;  // bf16 pitch (16-byte pad: ldmatrix rows hit distinct banks)
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + (size_t)FBQ * LDB * 2;
    static constexpr size_t v_off = k_off + (size_t)FBK * LDB * 2;
    static constexpr size_t bytes = v_off + (size_t)FBK * LDB * 2;
};

struct FwdArgs {
    bf16 *out;
    float *lse;
    const bf16 *q, *k, *v;
    const int *lens, *kv_prev;
    int B, Tq, Tk, NH, NKV, HD;
    long q_stride, kv_stride, kv_bstride;
    float scale_log2;  // 1/sqrt(HD) * log2(e): the softmax runs in base 2
    int kv_prev_rows;    // kv_prev is per sequence ([B]) instead of one shared length
    const int *seq_row;  // kv_prev_rows only: sequence b's cache row (kv_prev and K/V), or NULL (b)
    int vec;
};

template <int HDP>
__global__ void __launch_bounds__(NTHREADS) flash_fwd_kernel(FwdArgs a) {
    using L = FwdLayout<HDP>;
    constexpr int LDB = L::LDB, NB = FBK / 8, ND = HDP / 8, KD = HDP / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)(smem + L::q_off), *Ks = (bf16 *)(smem + L::k_off), *Vs = (bf16 *)(smem + L::v_off);

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, gq = lane >> 2, t4 = lane & 3;
    const int q0 = blockIdx.x * FBQ, h = blockIdx.y, b = blockIdx.z;
    const int HD = a.HD, Q = a.NH * HD, g = h / (a.NH / a.NKV), Tq = a.Tq;
    const int cb = a.seq_row ? a.seq_row[b] : b;  // the cache row this sequence reads
    const int Tk = a.kv_prev ? a.kv_prev[a.kv_prev_rows ? cb : 0] + Tq : a.Tk;
    const int shift = Tk - Tq;  // absolute position of query row 0
    int rows_end = Tq;
    if (a.lens && a.lens[b] < rows_end) rows_end = a.lens[b] < 0 ? 0 : a.lens[b];
    bf16 *obase = a.out + (size_t)b * Tq * Q + (size_t)h * HD;
    float *lse = a.lse ? a.lse + ((size_t)b * a.NH + h) * Tq : NULL;

    if (q0 >= rows_end) {  // only padding rows: zeros
        for (int i = tid; i < FBQ * HD; i += NTHREADS) {
            int r = i / HD, d = i % HD, t = q0 + r;
            if (t < Tq) obase[(size_t)t * Q + d] = __float2bfloat16_rn(0.0f);
        }
        if (lse && tid < FBQ && q0 + tid < Tq) lse[q0 + tid] = 0.0f;
        return;
    }
    const int valid_end = min(q0 + FBQ, rows_end);
    // Keys any valid query of this sequence sees: none past the last valid one's position (with
    // lens, the cache may end there).
    const int Tkv = shift + rows_end;
    const int ntiles = min((shift + valid_end - 1) / FBK + 1, (Tkv + FBK - 1) / FBK);

    const bf16 *qbase = a.q + (size_t)b * Tq * a.q_stride + (size_t)h * HD;
    const bf16 *kbase = a.k + (size_t)cb * a.kv_bstride + (size_t)g * HD;
    const bf16 *vbase = a.v + (size_t)cb * a.kv_bstride + (size_t)g * HD;
    const bool vec = a.vec != 0;
    load_tile<HDP>(Qs, LDB, qbase + (size_t)q0 * a.q_stride, a.q_stride, FBQ, valid_end - q0, HD, vec);
    load_tile<HDP>(Ks, LDB, kbase, a.kv_stride, FBK, min(FBK, Tkv), HD, vec);
    cp_async_commit();

    // This lane's rows: r0 = q0 + 16 warp + gq and r0 + 8.
    const int r0 = q0 + warp * 16 + gq;
    const int qpos0 = shift + r0, qpos1 = qpos0 + 8;
    const bool ok0 = r0 < valid_end, ok1 = r0 + 8 < valid_end;
    uint32_t qf[KD][4];
    float o[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // l: this lane's share of the row sum

    for (int kt = 0; kt < ntiles; kt++) {
        const int k0 = kt * FBK;
        load_tile<HDP>(Vs, LDB, vbase + (size_t)k0 * a.kv_stride, a.kv_stride, FBK, min(FBK, Tkv - k0), HD, vec);
        cp_async_commit();
        cp_async_wait<1>();  // Q and this tile's K
        __syncthreads();
        if (kt == 0) {
#pragma unroll
            for (int kk = 0; kk < KD; kk++) ldsm4(qf[kk], frag_a(Qs, LDB, warp * 16, kk * 16, lane));
        }
        float s[NB][4];
#pragma unroll
        for (int n = 0; n < NB; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
#pragma unroll
            for (int n = 0; n < NB; n += 2) {
                uint32_t r[4];
                ldsm4(r, frag_b_nk(Ks, LDB, n * 8, kk * 16, lane));
                mma16816(s[n], qf[kk], r[0], r[1]);
                mma16816(s[n + 1], qf[kk], r[2], r[3]);
            }
        // Mask (causal, cache length, padding rows), then the online softmax in base 2.
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int j = k0 + n * 8 + 2 * t4 + e;
                bool kv_ok = j < Tkv;
                s[n][e] = (ok0 && kv_ok && j <= qpos0) ? s[n][e] * a.scale_log2 : -INFINITY;
                s[n][2 + e] = (ok1 && kv_ok && j <= qpos1) ? s[n][2 + e] * a.scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, s[n][e]);
                mx1 = fmaxf(mx1, s[n][2 + e]);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float al0 = m0 == -INFINITY ? 0.0f : exp2f(m0 - mn0), al1 = m1 == -INFINITY ? 0.0f : exp2f(m1 - mn1);
        m0 = mn0, m1 = mn1;
        l0 *= al0, l1 *= al1;
#pragma unroll
        for (int n = 0; n < ND; n++) o[n][0] *= al0, o[n][1] *= al0, o[n][2] *= al1, o[n][3] *= al1;
        uint32_t pf[FBK / 16][4];
#pragma unroll
        for (int n = 0; n < NB; n++) {
            float p0 = s[n][0] == -INFINITY ? 0.0f : exp2f(s[n][0] - mn0);
            float p1 = s[n][1] == -INFINITY ? 0.0f : exp2f(s[n][1] - mn0);
            float p2 = s[n][2] == -INFINITY ? 0.0f : exp2f(s[n][2] - mn1);
            float p3 = s[n][3] == -INFINITY ? 0.0f : exp2f(s[n][3] - mn1);
            l0 += p0 + p1, l1 += p2 + p3;
            // The score tile's accumulator layout is the A layout of the next product.
            pf[n / 2][(n % 2) * 2] = pack_bf16(p0, p1);
            pf[n / 2][(n % 2) * 2 + 1] = pack_bf16(p2, p3);
        }
        __syncthreads();  // every warp is done with K
        if (kt + 1 < ntiles)
            load_tile<HDP>(Ks, LDB, kbase + (size_t)(k0 + FBK) * a.kv_stride, a.kv_stride, FBK,
                           min(FBK, Tkv - k0 - FBK), HD, vec);
        cp_async_commit();
        cp_async_wait<1>();  // this tile's V
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < FBK / 16; kk++)
#pragma unroll
            for (int n = 0; n < ND; n += 2) {
                uint32_t r[4];
                ldsm4_t(r, frag_b_kn(Vs, LDB, kk * 16, n * 8, lane));
                mma16816(o[n], pf[kk], r[0], r[1]);
                mma16816(o[n + 1], pf[kk], r[2], r[3]);
            }
        __syncthreads();  // every warp is done with V
    }
    cp_async_wait<0>();
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = ok0 && l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = ok1 && l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int d = n * 8 + 2 * t4 + e;
            if (d >= HD) continue;
            if (r0 < Tq) obase[(size_t)r0 * Q + d] = __float2bfloat16_rn(o[n][e] * inv0);
            if (r0 + 8 < Tq) obase[(size_t)(r0 + 8) * Q + d] = __float2bfloat16_rn(o[n][2 + e] * inv1);
        }
    if (lse && t4 == 0) {
        const float LN2 = 0.6931471805599453f;
        if (r0 < Tq) lse[r0] = ok0 && l0 > 0.0f ? (m0 + log2f(l0)) * LN2 : 0.0f;
        if (r0 + 8 < Tq) lse[r0 + 8] = ok1 && l1 > 0.0f ? (m1 + log2f(l1)) * LN2 : 0.0f;
    }
}

// ---- backward ----

template <int HDP>
struct BwdLayout {
    static constexpr int LDB = HDP + 8;  // bf16 pitch of K, V, Q, dO
    static constexpr int LDS = BBQ + 8;  // bf16 pitch of dS^T [key][query]
    static constexpr size_t k_off = 0;
    static constexpr size_t v_off = k_off + (size_t)BBK * LDB * 2;
    static constexpr size_t q_off = v_off + (size_t)BBK * LDB * 2;
    static constexpr size_t do_off = q_off + (size_t)BBQ * LDB * 2;
    static constexpr size_t ds_off = do_off + (size_t)BBQ * LDB * 2;
    static constexpr size_t stat_off = ds_off + (size_t)BBK * LDS * 2;
    static constexpr size_t bytes = stat_off + 2 * BBQ * 4;
};

struct BwdArgs {
    bf16 *dk, *dv;
    float *dq32;
    const float *dsum, *lse;
    const bf16 *dout, *q, *k, *v;
    const int *lens;
    long q_stride, kv_stride, dkv_stride;
    int B, T, NH, NKV, HD;
    float scale;
    int vec;
};

template <int HDP>
__global__ void __launch_bounds__(NTHREADS, 2) flash_bwd_kernel(BwdArgs a) {
    using L = BwdLayout<HDP>;
    constexpr int LDB = L::LDB, LDS = L::LDS, ND = HDP / 8, KD = HDP / 16, NQ = BBQ / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = (bf16 *)(smem + L::k_off), *Vs = (bf16 *)(smem + L::v_off);
    bf16 *Qs = (bf16 *)(smem + L::q_off), *dOs = (bf16 *)(smem + L::do_off), *dSs = (bf16 *)(smem + L::ds_off);
    float *lse_s = (float *)(smem + L::stat_off), *dsum_s = lse_s + BBQ;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, gq = lane >> 2, t4 = lane & 3;
    const int k0 = blockIdx.x * BBK, g = blockIdx.y, b = blockIdx.z;
    const int T = a.T, HD = a.HD, NH = a.NH, Q = NH * HD, group = NH / a.NKV;
    int len = T;
    if (a.lens && a.lens[b] < len) len = a.lens[b] < 0 ? 0 : a.lens[b];
    const bf16 *kbase = a.k + (size_t)b * T * a.kv_stride + (size_t)g * HD;
    const bf16 *vbase = a.v + (size_t)b * T * a.kv_stride + (size_t)g * HD;
    bf16 *dkbase = a.dk + (size_t)b * T * a.dkv_stride + (size_t)g * HD;
    bf16 *dvbase = a.dv + (size_t)b * T * a.dkv_stride + (size_t)g * HD;
    const bf16 zero = __float2bfloat16_rn(0.0f);

    if (k0 >= len) {  // keys only padding queries could see
        for (int i = tid; i < BBK * HD; i += NTHREADS) {
            int r = i / HD, d = i % HD, j = k0 + r;
            if (j < T) dkbase[(size_t)j * a.dkv_stride + d] = dvbase[(size_t)j * a.dkv_stride + d] = zero;
        }
        return;
    }
    const bool vec = a.vec != 0;
    load_tile<HDP>(Ks, LDB, kbase + (size_t)k0 * a.kv_stride, a.kv_stride, BBK, min(BBK, len - k0), HD, vec);
    load_tile<HDP>(Vs, LDB, vbase + (size_t)k0 * a.kv_stride, a.kv_stride, BBK, min(BBK, len - k0), HD, vec);
    cp_async_commit();

    // This lane's keys: j0 = k0 + 16 warp + gq and j0 + 8 (rows of the transposed scores).
    const int j0 = k0 + warp * 16 + gq, j1 = j0 + 8;
    const float sl2 = a.scale * LOG2E;
    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.0f;
    // dQ: warp w computes query rows 16 (w % 2) .. +16 of the tile, head dims (w / 2) HDP/2 .. +HDP/2.
    const int dq_r = (warp % 2) * 16, dq_c = (warp / 2) * (HDP / 2);

    for (int hi = 0; hi < group; hi++) {
        const int h = g * group + hi;
        const bf16 *qbase = a.q + (size_t)b * T * a.q_stride + (size_t)h * HD;
        const bf16 *dobase = a.dout + (size_t)b * T * Q + (size_t)h * HD;
        const float *lse_b = a.lse + ((size_t)b * NH + h) * T, *dsum_b = a.dsum + ((size_t)b * NH + h) * T;
        float *dqbase = a.dq32 + (size_t)b * T * Q + (size_t)h * HD;
        for (int qs = k0; qs < len; qs += BBQ) {  // earlier queries never see these keys
            __syncthreads();  // the previous tile's Q, dO and dS are no longer read
            const int qvalid = min(BBQ, len - qs);
            load_tile<HDP>(Qs, LDB, qbase + (size_t)qs * a.q_stride, a.q_stride, BBQ, qvalid, HD, vec);
            load_tile<HDP>(dOs, LDB, dobase + (size_t)qs * Q, Q, BBQ, qvalid, HD, vec);
            cp_async_commit();
            if (tid < BBQ) {
                int t = qs + tid;
                lse_s[tid] = t < len ? lse_b[t] * LOG2E : 0.0f;
                dsum_s[tid] = t < len ? dsum_b[t] : 0.0f;
            }
            cp_async_wait<0>();
            __syncthreads();
            // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x 32 queries.
            float s[NQ][4], dp[NQ][4];
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KD; kk++) {
                uint32_t ka[4], va[4];
                ldsm4(ka, frag_a(Ks, LDB, warp * 16, kk * 16, lane));
                ldsm4(va, frag_a(Vs, LDB, warp * 16, kk * 16, lane));
#pragma unroll
                for (int n = 0; n < NQ; n += 2) {
                    uint32_t r[4];
                    ldsm4(r, frag_b_nk(Qs, LDB, n * 8, kk * 16, lane));
                    mma16816(s[n], ka, r[0], r[1]);
                    mma16816(s[n + 1], ka, r[2], r[3]);
                    ldsm4(r, frag_b_nk(dOs, LDB, n * 8, kk * 16, lane));
                    mma16816(dp[n], va, r[0], r[1]);
                    mma16816(dp[n + 1], va, r[2], r[3]);
                }
            }
            // P^T = exp(S^T scale - lse) on the causal, valid part; dS^T = P^T (dP^T - dsum) scale.
            uint32_t pf[BBQ / 16][4], sf[BBQ / 16][4];
#pragma unroll
            for (int n = 0; n < NQ; n++) {
                float p[4], ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int c = n * 8 + 2 * t4 + (e & 1), t = qs + c, j = e < 2 ? j0 : j1;
                    p[e] = (t < len && j <= t) ? exp2f(s[n][e] * sl2 - lse_s[c]) : 0.0f;
                    ds[e] = p[e] * (dp[n][e] - dsum_s[c]) * a.scale;
                }
                pf[n / 2][(n % 2) * 2] = pack_bf16(p[0], p[1]);
                pf[n / 2][(n % 2) * 2 + 1] = pack_bf16(p[2], p[3]);
                sf[n / 2][(n % 2) * 2] = pack_bf16(ds[0], ds[1]);
                sf[n / 2][(n % 2) * 2 + 1] = pack_bf16(ds[2], ds[3]);
                // dS^T rows for the dQ product (keys x queries).
                const int c = n * 8 + 2 * t4;
                *reinterpret_cast<uint32_t *>(dSs + (warp * 16 + gq) * LDS + c) = sf[n / 2][(n % 2) * 2];
                *reinterpret_cast<uint32_t *>(dSs + (warp * 16 + gq + 8) * LDS + c) = sf[n / 2][(n % 2) * 2 + 1];
            }
            // dV += P^T dO, dK += dS^T Q (k-dimension: the tile's queries).
#pragma unroll
            for (int kq = 0; kq < BBQ / 16; kq++)
#pragma unroll
                for (int n = 0; n < ND; n += 2) {
                    uint32_t r[4];
                    ldsm4_t(r, frag_b_kn(dOs, LDB, kq * 16, n * 8, lane));
                    mma16816(dv[n], pf[kq], r[0], r[1]);
                    mma16816(dv[n + 1], pf[kq], r[2], r[3]);
                    ldsm4_t(r, frag_b_kn(Qs, LDB, kq * 16, n * 8, lane));
                    mma16816(dk[n], sf[kq], r[0], r[1]);
                    mma16816(dk[n + 1], sf[kq], r[2], r[3]);
                }
            __syncthreads();  // dS^T complete
            // dQ = dS K: A = dS from dS^T (transposed loads), B = K stored [key][dim].
            float dq[ND / 2][4];
#pragma unroll
            for (int n = 0; n < ND / 2; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < BBK / 16; kk++) {
                uint32_t af[4];
                ldsm4_t(af, dSs + (kk * 16 + (lane >> 4) * 8 + (lane & 7)) * LDS + dq_r + ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int n = 0; n < ND / 2; n += 2) {
                    uint32_t r[4];
                    ldsm4_t(r, frag_b_kn(Ks, LDB, kk * 16, dq_c + n * 8, lane));
                    mma16816(dq[n], af, r[0], r[1]);
                    mma16816(dq[n + 1], af, r[2], r[3]);
                }
            }
            const int t0 = qs + dq_r + gq;
#pragma unroll
            for (int n = 0; n < ND / 2; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int d = dq_c + n * 8 + 2 * t4 + e;
                    if (d >= HD) continue;
                    if (t0 < len) atomicAdd(&dqbase[(size_t)t0 * Q + d], dq[n][e]);
                    if (t0 + 8 < len) atomicAdd(&dqbase[(size_t)(t0 + 8) * Q + d], dq[n][2 + e]);
                }
        }
    }
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int d = n * 8 + 2 * t4 + e;
            if (d >= HD) continue;
            if (j0 < T) {
                dkbase[(size_t)j0 * a.dkv_stride + d] = __float2bfloat16_rn(dk[n][e]);
                dvbase[(size_t)j0 * a.dkv_stride + d] = __float2bfloat16_rn(dv[n][e]);
            }
            if (j1 < T) {
                dkbase[(size_t)j1 * a.dkv_stride + d] = __float2bfloat16_rn(dk[n][2 + e]);
                dvbase[(size_t)j1 * a.dkv_stride + d] = __float2bfloat16_rn(dv[n][2 + e]);
            }
        }
}

// dsum[b, h, t] = sum_d dout * out: the row term of the softmax backward (sum_j p_j dP_j).
__global__ void attention_dsum_kernel(float *dsum, const bf16 *dout, const bf16 *out, int B, int T, int NH, int HD) {
    long item = (long)blockIdx.x * NWARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (item >= (long)B * T * NH) return;
    int h = (int)(item % NH), t = (int)((item / NH) % T), b = (int)(item / ((long)NH * T));
    size_t base = (size_t)item * HD;  // [B, T, NH, HD] dense
    float s = 0.0f;
    for (int d = lane; d < HD; d += 32) s += __bfloat162float(dout[base + d]) * __bfloat162float(out[base + d]);
    s = warp_sum(s);
    if (lane == 0) dsum[((size_t)b * NH + h) * T + t] = s;
}

__global__ void attention_dq_kernel(bf16 *dq, long dq_stride, const float *dq32, long rows, int Q) {
    long n = rows * Q;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long row = i / Q;
        dq[row * dq_stride + i % Q] = __float2bfloat16_rn(dq32[i]);
    }
}

// ---- decoding: one query row per sequence, split over the cache ----

#define DEC_MAX_GROUP 8  // query heads per KV head handled by one warp
#define DEC_MAX_SPLITS 64

struct DecArgs {
    bf16 *out;    // [B, NH, HD]
    float *part;  // [B, NH, splits, HD + 2]: unnormalised output, then max and sum (base 2)
    int *count;   // [B, NKV]: the blocks of a (sequence, KV head) done with their slices; 0 between calls
    const bf16 *q, *k, *v;
    const int *kv_prev;
    int Tk, NH, NKV, HD, splits, kv_prev_rows, vec;
    long q_stride, kv_stride, kv_bstride;
    float scale_log2;
};

// One warp's slice of the cache, keys [jbeg, jend), for the G query heads in qs: writes the
// slice's unnormalised output, max and sum (base 2) to part.
template <int G>
__device__ __forceinline__ void decode_slice(const DecArgs &a, const float (*qs)[128], int b, int g, int split,
                                             int jbeg, int jend) {
    const int lane = threadIdx.x % 32, HD = a.HD;
    const bf16 *kbase = a.k + (size_t)b * a.kv_bstride + (size_t)g * HD;
    const bf16 *vbase = a.v + (size_t)b * a.kv_bstride + (size_t)g * HD;
    float m[G], l[G], acc[G][4];
#pragma unroll
    for (int hi = 0; hi < G; hi++) {
        m[hi] = -INFINITY, l[hi] = 0.0f;
        acc[hi][0] = acc[hi][1] = acc[hi][2] = acc[hi][3] = 0.0f;
    }
    for (int jb = jbeg; jb < jend; jb += 32) {
        // Scores: one key per lane.
        const int j = jb + lane;
        float sc[G];
#pragma unroll
        for (int hi = 0; hi < G; hi++) sc[hi] = 0.0f;
        if (j < jend) {
            const bf16 *kr = kbase + (size_t)j * a.kv_stride;
            if (a.vec) {
#pragma unroll 16
                for (int d = 0; d < HD; d += 8) {
                    uint4 raw = *reinterpret_cast<const uint4 *>(kr + d);
                    const bf16 *kv8 = reinterpret_cast<const bf16 *>(&raw);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float kf = __bfloat162float(kv8[e]);
#pragma unroll
                        for (int hi = 0; hi < G; hi++) sc[hi] += kf * qs[hi][d + e];
                    }
                }
            } else {
                for (int d = 0; d < HD; d++) {
                    float kf = __bfloat162float(kr[d]);
#pragma unroll
                    for (int hi = 0; hi < G; hi++) sc[hi] += kf * qs[hi][d];
                }
            }
        }
        float p[G];
#pragma unroll
        for (int hi = 0; hi < G; hi++) {
            float s = j < jend ? sc[hi] : -INFINITY;
            float mn = fmaxf(m[hi], warp_max(s));  // finite: the first key of the slice is valid
            float al = m[hi] == -INFINITY ? 0.0f : exp2f(m[hi] - mn);
            p[hi] = j < jend ? exp2f(s - mn) : 0.0f;
            l[hi] = l[hi] * al + warp_sum(p[hi]);
            m[hi] = mn;
#pragma unroll
            for (int e = 0; e < 4; e++) acc[hi][e] *= al;
        }
        // Values: lane owns head dims 4 lane .. 4 lane + 3; the keys' weights come by shuffle.
        // Unrolled over keys so that several value rows are in flight; keys past the slice have
        // weight 0 and read row jb (valid) instead.
        const int nk = min(32, jend - jb), d0 = lane * 4;
#pragma unroll 8
        for (int kk = 0; kk < 32; kk++) {
            const bf16 *vr = vbase + (size_t)(jb + (kk < nk ? kk : 0)) * a.kv_stride;
            float vf[4];
            if (a.vec) {  // HD % 8 == 0: a lane's four dims are all in the row or all past it
                uint2 raw = d0 < HD ? *reinterpret_cast<const uint2 *>(vr + d0) : make_uint2(0u, 0u);
                const bf16 *v4 = reinterpret_cast<const bf16 *>(&raw);
#pragma unroll
                for (int e = 0; e < 4; e++) vf[e] = __bfloat162float(v4[e]);
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) vf[e] = d0 + e < HD ? __bfloat162float(vr[d0 + e]) : 0.0f;
            }
#pragma unroll
            for (int hi = 0; hi < G; hi++) {
                float pk = __shfl_sync(0xffffffffu, p[hi], kk);
#pragma unroll
                for (int e = 0; e < 4; e++) acc[hi][e] += pk * vf[e];
            }
        }
    }
#pragma unroll
    for (int hi = 0; hi < G; hi++) {
        const int h = g * G + hi;
        float *pp = a.part + (((size_t)b * a.NH + h) * a.splits + split) * (HD + 2);
#pragma unroll
        for (int e = 0; e < 4; e++)
            if (lane * 4 + e < HD) pp[lane * 4 + e] = acc[hi][e];
        if (lane == 0) pp[HD] = m[hi], pp[HD + 1] = l[hi];
    }
}

// Block (g, y, b): warp w scores slice y * NWARPS + w of the cache for the G query heads of KV
// head g. The cache is cut into slices of a multiple of 32 keys; blocks whose slices are all past
// it return at once. The last block of (b, g) to finish (counted in a.count) merges the slices:
// weights 2^(m_s - max) on each slice's sum and output, added in slice order whichever block it is.
template <int G>
__global__ void __launch_bounds__(NTHREADS) decode_split_kernel(DecArgs a) {
    pdl_enter();
    __shared__ float qs[G][128];
    __shared__ float wgt[G][DEC_MAX_SPLITS], inv[G];
    __shared__ int merge;
    const int warp = threadIdx.x / 32, g = blockIdx.x, b = blockIdx.z, HD = a.HD;
    const int Tk = a.kv_prev ? a.kv_prev[a.kv_prev_rows ? b : 0] + 1 : a.Tk;
    const int chunk = ((Tk + a.splits - 1) / a.splits + 31) / 32 * 32;
    const int nsplit = (Tk + chunk - 1) / chunk;  // the slices that hold keys
    const int nblocks = (nsplit + NWARPS - 1) / NWARPS;
    if ((int)blockIdx.y >= nblocks) return;  // neither scores nor counts
    const bf16 *q = a.q + (size_t)b * a.q_stride + (size_t)g * G * HD;
    for (int i = threadIdx.x; i < G * 128; i += NTHREADS) {
        int hi = i / 128, d = i % 128;
        qs[hi][d] = d < HD ? __bfloat162float(q[(size_t)hi * HD + d]) * a.scale_log2 : 0.0f;
    }
    __syncthreads();
    const int split = blockIdx.y * NWARPS + warp;
    if (split < nsplit) decode_slice<G>(a, qs, b, g, split, split * chunk, min(Tk, (split + 1) * chunk));
    // Count this block as done once its slices are visible to the whole GPU; the fence after the
    // count orders the last block's reads of the other blocks' slices after their writes.
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *cnt = a.count + (size_t)b * a.NKV + g;
        const int done = atomicAdd(cnt, 1);
        __threadfence();
        merge = done == nblocks - 1;
        if (merge) *cnt = 0;  // every block of (b, g) has counted: ready for the next call
    }
    __syncthreads();
    if (!merge) return;
    const int lane = threadIdx.x % 32;
    for (int hi = warp; hi < G; hi += NWARPS) {  // a warp per head: the max, the weights, the sum
        const float *pp = a.part + ((size_t)b * a.NH + g * G + hi) * a.splits * (HD + 2);
        float m[DEC_MAX_SPLITS / 32], M = -INFINITY;
#pragma unroll
        for (int k = 0; k < DEC_MAX_SPLITS / 32; k++) {
            int s = lane + 32 * k;
            m[k] = s < nsplit ? __ldcg(pp + (size_t)s * (HD + 2) + HD) : -INFINITY;
            M = fmaxf(M, m[k]);
        }
        M = warp_max(M);
        float den = 0.0f;
#pragma unroll
        for (int k = 0; k < DEC_MAX_SPLITS / 32; k++) {
            int s = lane + 32 * k;
            float w = m[k] == -INFINITY ? 0.0f : exp2f(m[k] - M);  // an empty slice weighs nothing
            if (s < nsplit) wgt[hi][s] = w, den += w * __ldcg(pp + (size_t)s * (HD + 2) + HD + 1);
        }
        den = warp_sum(den);
        if (lane == 0) inv[hi] = den > 0.0f ? 1.0f / den : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += NTHREADS) {
        const int hi = i / HD, d = i % HD, h = g * G + hi;
        const float *pp = a.part + ((size_t)b * a.NH + h) * a.splits * (HD + 2) + d;
        float num = 0.0f;
#pragma unroll 8
        for (int s = 0; s < nsplit; s++) num += wgt[hi][s] * __ldcg(pp + (size_t)s * (HD + 2));
        a.out[((size_t)b * a.NH + h) * HD + d] = __float2bfloat16_rn(num * inv[hi]);
    }
}

// ---- launchers ----

// Raises the kernel's shared-memory limit once per instantiation (above 48 KB needs the opt-in).
template <typename Kernel>
static void allow_smem(Kernel kernel, size_t bytes, int *done) {
    if (*done) return;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    *done = 1;
}

static int padded_head_dim(int HD) {
    if (HD <= 32) return 32;
    if (HD <= 64) return 64;
    if (HD <= 128) return 128;
    fprintf(stderr, "paw: attention on the GPU supports head_dim <= 128 (got %d)\n", HD);
    exit(1);
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <int HDP>
static void launch_fwd(const FwdArgs &a) {
    static int done;
    size_t bytes = FwdLayout<HDP>::bytes;
    allow_smem(flash_fwd_kernel<HDP>, bytes, &done);
    dim3 grid(paw_ceil_div(a.Tq, FBQ), a.NH, a.B);
    flash_fwd_kernel<HDP><<<grid, NTHREADS, bytes, paw_cuda_stream()>>>(a);
    CUDA_CHECK_LAUNCH();
}

// The decoding scratch (the slices, the block counts), kept between calls; it may only grow
// outside graph capture (the eager step before a capture sizes it). Captured graphs hold its
// address (the single-sequence and the batched decoding steps, of any model), so a buffer that is
// outgrown is kept, not freed: a graph captured before still owns valid memory. It at least
// doubles each time, so few are kept. Counts start at zero and every call leaves them at zero.
struct DecScratch {
    void *p;
    size_t cap;
    void *outgrown[64];  // still reachable, for leak checkers
    int noutgrown;
};
static DecScratch g_dec_part, g_dec_count;

static void *dec_scratch(DecScratch *s, size_t bytes, const char *what) {
    if (bytes <= s->cap) return s->p;
    cudaStreamCaptureStatus st;
    CUDA_CHECK(cudaStreamIsCapturing(paw_cuda_stream(), &st));
    if (st != cudaStreamCaptureStatusNone) {
        fprintf(stderr, "paw: decode attention %s must grow during graph capture (run one step eagerly first)\n", what);
        exit(1);
    }
    if (bytes < 2 * s->cap) bytes = 2 * s->cap;
    if (s->p && s->noutgrown == (int)(sizeof s->outgrown / sizeof s->outgrown[0])) {
        fprintf(stderr, "paw: decode attention %s outgrown too often\n", what);  // 2^64 bytes: unreachable
        exit(1);
    }
    if (s->p) s->outgrown[s->noutgrown++] = s->p;
    s->p = paw_cuda_malloc(bytes);
    paw_cuda_memset(s->p, 0, bytes);
    s->cap = bytes;
    return s->p;
}

template <int G>
static void launch_decode(const DecArgs &a, int B) {
    dim3 grid(a.NKV, paw_ceil_div(a.splits, NWARPS), B);
    paw_launch(decode_split_kernel<G>, grid, dim3(NTHREADS), 0, a);
    CUDA_CHECK_LAUNCH();
}

// One query row per sequence, no lse: the split-KV path, one kernel. Returns 0 when it does not apply.
static int try_decode(paw_bf16 *out, const paw_bf16 *q, const paw_bf16 *k, const paw_bf16 *v, const int *kv_prev,
                      int rows, int B, int Tk, int NH, int NKV, int HD, long q_stride, long kv_stride,
                      long kv_bstride) {
    const int G = NH / NKV;
    if (HD > 128 || (G != 1 && G != 2 && G != 4 && G != 8)) return 0;
    if (!kv_prev && Tk < 1) return 0;  // no keys: the general kernel's zeros
    int splits = (int)paw_ceil_div((size_t)paw_cuda_sm_count() * 8, (size_t)NKV * B);
    if (splits > DEC_MAX_SPLITS) splits = DEC_MAX_SPLITS;
    if (splits < 1) splits = 1;
    float *part = (float *)dec_scratch(&g_dec_part, sizeof(float) * B * NH * splits * (HD + 2), "scratch");
    int *count = (int *)dec_scratch(&g_dec_count, sizeof(int) * B * NKV, "block counts");
    const int vec = HD % 8 == 0 && kv_stride % 8 == 0 && kv_bstride % 8 == 0 && aligned16(k) && aligned16(v);
    DecArgs a = {out, part, count, q, k, v, kv_prev, Tk, NH, NKV, HD, splits, rows, vec, q_stride, kv_stride,
                 kv_bstride, LOG2E / sqrtf((float)HD)};
    switch (G) {
    case 1: launch_decode<1>(a, B); break;
    case 2: launch_decode<2>(a, B); break;
    case 4: launch_decode<4>(a, B); break;
    default: launch_decode<8>(a, B); break;
    }
    return 1;
}

static void forward(const FwdArgs &a) {
    switch (padded_head_dim(a.HD)) {
    case 32: launch_fwd<32>(a); break;
    case 64: launch_fwd<64>(a); break;
    default: launch_fwd<128>(a); break;
    }
}

static int rows_vec(const void *p, long stride, int HD) { return HD % 8 == 0 && stride % 8 == 0 && aligned16(p); }

extern "C" void attention_cuda_forward(paw_bf16 *out, float *lse, const paw_bf16 *q, const paw_bf16 *k,
                                       const paw_bf16 *v, const int *lens, const int *kv_prev, int B, int Tq, int Tk,
                                       int NH, int NKV, int HD, long q_stride, long kv_stride, long kv_bstride) {
    if (B <= 0 || Tq <= 0) return;
    if (Tq == 1 && !lse && !lens &&
        try_decode(out, q, k, v, kv_prev, 0, B, Tk, NH, NKV, HD, q_stride, kv_stride, kv_bstride))
        return;
    int vec = rows_vec(q, q_stride, HD) && rows_vec(k, kv_stride, HD) && rows_vec(v, kv_stride, HD) &&
              kv_bstride % 8 == 0;
    FwdArgs a = {out, lse, q, k, v, lens, kv_prev, B, Tq, Tk, NH, NKV, HD, q_stride, kv_stride, kv_bstride,
                 LOG2E / sqrtf((float)HD), 0, NULL, vec};
    forward(a);
}

extern "C" void attention_cuda_forward_rows(paw_bf16 *out, const paw_bf16 *q, const paw_bf16 *k, const paw_bf16 *v,
                                            const int *kv_prev, const int *lens, const int *seq_row, int B, int Tq,
                                            int NH, int NKV, int HD, long q_stride, long kv_stride, long kv_bstride) {
    if (B <= 0 || Tq <= 0) return;
    // The split decode kernel takes every row in order with one query each.
    if (Tq == 1 && !lens && !seq_row &&
        try_decode(out, q, k, v, kv_prev, 1, B, 0, NH, NKV, HD, q_stride, kv_stride, kv_bstride))
        return;
    int vec = rows_vec(q, q_stride, HD) && rows_vec(k, kv_stride, HD) && rows_vec(v, kv_stride, HD) &&
              kv_bstride % 8 == 0;
    FwdArgs a = {out, NULL, q, k, v, lens, kv_prev, B, Tq, 0, NH, NKV, HD, q_stride, kv_stride, kv_bstride,
                 LOG2E / sqrtf((float)HD), 1, seq_row, vec};
    forward(a);
}

template <int HDP>
static void launch_bwd(const BwdArgs &a) {
    static int done;
    size_t bytes = BwdLayout<HDP>::bytes;
    allow_smem(flash_bwd_kernel<HDP>, bytes, &done);
    dim3 grid(paw_ceil_div(a.T, BBK), a.NKV, a.B);
    flash_bwd_kernel<HDP><<<grid, NTHREADS, bytes, paw_cuda_stream()>>>(a);
    CUDA_CHECK_LAUNCH();
}

extern "C" void attention_cuda_backward(paw_bf16 *dq, paw_bf16 *dk, paw_bf16 *dv, long dq_stride, long dkv_stride,
                                        float *dq32, float *dsum, const paw_bf16 *dout, const paw_bf16 *q,
                                        const paw_bf16 *k, const paw_bf16 *v, long q_stride, long kv_stride,
                                        const paw_bf16 *out, const float *lse, const int *lens, int B, int T, int NH,
                                        int NKV, int HD) {
    if (B <= 0 || T <= 0) return;
    long rows = (long)B * T, Q = (long)NH * HD;
    paw_cuda_memset(dq32, 0, sizeof(float) * (size_t)(rows * Q));
    attention_dsum_kernel<<<paw_ceil_div(rows * NH, NWARPS), NTHREADS, 0, paw_cuda_stream()>>>(dsum, dout, out, B, T,
                                                                                             NH, HD);
    CUDA_CHECK_LAUNCH();
    int vec = rows_vec(q, q_stride, HD) && rows_vec(k, kv_stride, HD) && rows_vec(v, kv_stride, HD) &&
              rows_vec(dout, Q, HD);
    BwdArgs a = {dk, dv, dq32, dsum, lse, dout, q, k, v, lens, q_stride, kv_stride, dkv_stride, B, T, NH, NKV, HD,
                 1.0f / sqrtf((float)HD), vec};
    switch (padded_head_dim(HD)) {
    case 32: launch_bwd<32>(a); break;
    case 64: launch_bwd<64>(a); break;
    default: launch_bwd<128>(a); break;
    }
    unsigned blocks = paw_ceil_div(rows * Q, 256), cap = (unsigned)paw_cuda_sm_count() * 32;
    attention_dq_kernel<<<blocks < cap ? blocks : cap, 256, 0, paw_cuda_stream()>>>(dq, dq_stride, dq32, rows, (int)Q);
    CUDA_CHECK_LAUNCH();
}
