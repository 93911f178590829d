// Flash attention with warp-level tensor-core tiles (WMMA 16x16x16, bf16 in, fp32 accumulate).
// Every block keeps its tiles in shared memory; each product is split into 16x16 output tiles
// that the four warps take in turn, and element-wise steps (masking, softmax, dS) use all threads
// between barriers. The head dimension is padded with zeros up to a template size (32, 64, 128),
// which also covers head sizes that are not multiples of 16.
//
// Forward: a block owns 64 query rows of one (sequence, head) and streams 64-key tiles up to the
// causal limit, keeping row max m, row sum l and the unnormalised output O (fp32) in shared memory.
// Backward (FlashAttention-2 order): a block owns 64 keys of one (sequence, KV head) and loops over
// every query head of the group and every 32-row query tile at or after its keys, accumulating dK
// and dV in shared memory (no atomics: the block is their only writer) and adding dQ into an fp32
// buffer with atomics.
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>

#include <type_traits>

#include "kernels/attention_cuda.h"
#include "kernels/cuda_common.cuh"

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

#define NWARPS 4
#define NTHREADS (32 * NWARPS)
#define FBQ 64  // forward: query rows per block
#define FBK 64  // forward: keys per tile
#define BBK 64  // backward: keys per block
#define BBQ 32  // backward: query rows per tile

// C[R x NCOL] (fp32, ldc) = (or +=) A[R x K] * B[K x NCOL], all in shared memory. A_ROW: A is
// stored row-major (else A^T is stored row-major, i.e. A column-major); B_ROW likewise for B.
template <int R, int NCOL, int K, bool A_ROW, bool B_ROW, bool ACC>
__device__ __forceinline__ void smem_mma(float *Cs, int ldc, const bf16 *As, int lda, const bf16 *Bs, int ldb) {
    using LA = typename std::conditional<A_ROW, wmma::row_major, wmma::col_major>::type;
    using LB = typename std::conditional<B_ROW, wmma::row_major, wmma::col_major>::type;
    constexpr int TC = NCOL / 16, TILES = (R / 16) * TC;
    const int warp = threadIdx.x / 32;
    for (int tile = warp; tile < TILES; tile += NWARPS) {
        int tr = tile / TC, tc = tile % TC;
        float *cp = Cs + tr * 16 * ldc + tc * 16;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        if (ACC) wmma::load_matrix_sync(acc, cp, ldc, wmma::mem_row_major);
        else wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < K / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LA> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LB> fb;
            const bf16 *ap = A_ROW ? As + tr * 16 * lda + kk * 16 : As + kk * 16 * lda + tr * 16;
            const bf16 *bp = B_ROW ? Bs + kk * 16 * ldb + tc * 16 : Bs + tc * 16 * ldb + kk * 16;
            wmma::load_matrix_sync(fa, ap, lda);
            wmma::load_matrix_sync(fb, bp, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(cp, acc, ldc, wmma::mem_row_major);
    }
}

// Shared-memory layout of the forward (byte offsets; every section is a multiple of 128 bytes).
template <int HDP>
struct FwdLayout {
    static constexpr int LDB = HDP + 8;  // bf16 pitch of Q, K, V rows (16-byte pad against bank conflicts)
    static constexpr int LDS = FBK + 4;  // fp32 pitch of S
    static constexpr int LDP = FBK + 8;  // bf16 pitch of P
    static constexpr int LDO = HDP + 4;  // fp32 pitch of O
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + (size_t)FBQ * LDB * 2;
    static constexpr size_t v_off = k_off + (size_t)FBK * LDB * 2;
    static constexpr size_t s_off = v_off + (size_t)FBK * LDB * 2;
    static constexpr size_t p_off = s_off + (size_t)FBQ * LDS * 4;
    static constexpr size_t o_off = p_off + (size_t)FBQ * LDP * 2;
    static constexpr size_t stat_off = o_off + (size_t)FBQ * LDO * 4;
    static constexpr size_t bytes = stat_off + 2 * FBQ * 4;
};

struct FwdArgs {
    bf16 *out;
    float *lse;
    const bf16 *q, *k, *v;
    const int *lens, *kv_prev;
    int B, Tq, Tk, NH, NKV, HD;
    long q_stride, kv_stride, kv_bstride;
    float scale;
    int kv_prev_rows;  // kv_prev is per sequence ([B]) instead of one shared length
};

template <int HDP>
__global__ void __launch_bounds__(NTHREADS) flash_fwd_kernel(FwdArgs a) {
    using L = FwdLayout<HDP>;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)(smem + L::q_off), *Ks = (bf16 *)(smem + L::k_off), *Vs = (bf16 *)(smem + L::v_off);
    float *Ss = (float *)(smem + L::s_off), *Os = (float *)(smem + L::o_off);
    bf16 *Ps = (bf16 *)(smem + L::p_off);
    float *row_m = (float *)(smem + L::stat_off), *row_l = row_m + FBQ;

    const int tid = threadIdx.x, q0 = blockIdx.x * FBQ, h = blockIdx.y, b = blockIdx.z;
    const int HD = a.HD, Q = a.NH * HD, g = h / (a.NH / a.NKV), Tq = a.Tq;
    const int Tk = a.kv_prev ? a.kv_prev[a.kv_prev_rows ? b : 0] + Tq : a.Tk;
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
    const int ntiles = (shift + valid_end - 1) / FBK + 1;  // up to the last valid row's position

    const bf16 *qbase = a.q + (size_t)b * Tq * a.q_stride + (size_t)h * HD;
    const bf16 *kbase = a.k + (size_t)b * a.kv_bstride + (size_t)g * HD;
    const bf16 *vbase = a.v + (size_t)b * a.kv_bstride + (size_t)g * HD;
    const bf16 zero = __float2bfloat16_rn(0.0f);
    for (int i = tid; i < FBQ * HDP; i += NTHREADS) {
        int r = i / HDP, d = i % HDP, t = q0 + r;
        Qs[r * L::LDB + d] = (t < valid_end && d < HD) ? qbase[(size_t)t * a.q_stride + d] : zero;
        Os[r * L::LDO + d] = 0.0f;
    }
    if (tid < FBQ) {
        row_m[tid] = -INFINITY;
        row_l[tid] = 0.0f;
    }

    for (int kt = 0; kt < ntiles; kt++) {
        const int k0 = kt * FBK;
        __syncthreads();  // the previous tile's K, V and P are no longer read
        for (int i = tid; i < FBK * HDP; i += NTHREADS) {
            int r = i / HDP, d = i % HDP, j = k0 + r;
            bool ok = j < Tk && d < HD;
            Ks[r * L::LDB + d] = ok ? kbase[(size_t)j * a.kv_stride + d] : zero;
            Vs[r * L::LDB + d] = ok ? vbase[(size_t)j * a.kv_stride + d] : zero;
        }
        __syncthreads();
        smem_mma<FBQ, FBK, HDP, true, false, false>(Ss, L::LDS, Qs, L::LDB, Ks, L::LDB);  // S = Q K^T
        __syncthreads();
        {
            // Two threads per row (adjacent lanes), 32 columns each.
            const int r = tid / 2, half = tid % 2, t = q0 + r, qpos = shift + t;
            const bool row_ok = t < valid_end;
            float *srow = Ss + r * L::LDS + half * 32;
            bf16 *prow = Ps + r * L::LDP + half * 32;
            float mx = -INFINITY;
#pragma unroll 8
            for (int c = 0; c < 32; c++) {
                int j = k0 + half * 32 + c;
                float s = srow[c] * a.scale;
                if (!row_ok || j > qpos || j >= Tk) s = -INFINITY;
                srow[c] = s;
                mx = fmaxf(mx, s);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float m_old = row_m[r], m_new = fmaxf(m_old, mx);
            const float alpha = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
            float sum = 0.0f;
#pragma unroll 8
            for (int c = 0; c < 32; c++) {
                float s = srow[c];
                float p = s == -INFINITY ? 0.0f : __expf(s - m_new);
                sum += p;
                prow[c] = __float2bfloat16_rn(p);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            float *orow = Os + r * L::LDO + half * (HDP / 2);
            for (int d = 0; d < HDP / 2; d++) orow[d] *= alpha;
            __syncwarp();  // both threads of the row have read row_m
            if (half == 0) {
                row_m[r] = m_new;
                row_l[r] = row_l[r] * alpha + sum;
            }
        }
        __syncthreads();
        smem_mma<FBQ, HDP, FBK, true, true, true>(Os, L::LDO, Ps, L::LDP, Vs, L::LDB);  // O += P V
    }
    __syncthreads();
    for (int i = tid; i < FBQ * HD; i += NTHREADS) {
        int r = i / HD, d = i % HD, t = q0 + r;
        if (t >= Tq) continue;
        float l = row_l[r];
        float val = (t < valid_end && l > 0.0f) ? Os[r * L::LDO + d] / l : 0.0f;
        obase[(size_t)t * Q + d] = __float2bfloat16_rn(val);
    }
    if (lse && tid < FBQ && q0 + tid < Tq) {
        float l = row_l[tid];
        lse[q0 + tid] = (q0 + tid < valid_end && l > 0.0f) ? row_m[tid] + logf(l) : 0.0f;
    }
}

template <int HDP>
struct BwdLayout {
    static constexpr int LDB = HDP + 8;                          // bf16 pitch of K, V, Q, dO
    static constexpr int LDP32 = BBK + 4;                        // fp32 pitch of P
    static constexpr int LDD = (BBK > HDP ? BBK : HDP) + 4;      // fp32 pitch of dP, then dQ
    static constexpr int LDH = BBK + 8;                          // bf16 pitch of P and dS
    static constexpr int LDA = HDP + 4;                          // fp32 pitch of the dK, dV sums
    static constexpr size_t k_off = 0;
    static constexpr size_t v_off = k_off + (size_t)BBK * LDB * 2;
    static constexpr size_t q_off = v_off + (size_t)BBK * LDB * 2;
    static constexpr size_t do_off = q_off + (size_t)BBQ * LDB * 2;
    static constexpr size_t p32_off = do_off + (size_t)BBQ * LDB * 2;
    static constexpr size_t dp_off = p32_off + (size_t)BBQ * LDP32 * 4;
    static constexpr size_t p16_off = dp_off + (size_t)BBQ * LDD * 4;
    static constexpr size_t ds_off = p16_off + (size_t)BBQ * LDH * 2;
    static constexpr size_t dk_off = ds_off + (size_t)BBQ * LDH * 2;
    static constexpr size_t dv_off = dk_off + (size_t)BBK * LDA * 4;
    static constexpr size_t stat_off = dv_off + (size_t)BBK * LDA * 4;
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
};

template <int HDP>
__global__ void __launch_bounds__(NTHREADS) flash_bwd_kernel(BwdArgs a) {
    using L = BwdLayout<HDP>;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = (bf16 *)(smem + L::k_off), *Vs = (bf16 *)(smem + L::v_off);
    bf16 *Qs = (bf16 *)(smem + L::q_off), *dOs = (bf16 *)(smem + L::do_off);
    float *P32 = (float *)(smem + L::p32_off), *dPs = (float *)(smem + L::dp_off);
    bf16 *P16 = (bf16 *)(smem + L::p16_off), *dS16 = (bf16 *)(smem + L::ds_off);
    float *dKacc = (float *)(smem + L::dk_off), *dVacc = (float *)(smem + L::dv_off);
    float *lse_s = (float *)(smem + L::stat_off), *dsum_s = lse_s + BBQ;

    const int tid = threadIdx.x, k0 = blockIdx.x * BBK, g = blockIdx.y, b = blockIdx.z;
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
    for (int i = tid; i < BBK * HDP; i += NTHREADS) {
        int r = i / HDP, d = i % HDP, j = k0 + r;
        bool ok = j < len && d < HD;
        Ks[r * L::LDB + d] = ok ? kbase[(size_t)j * a.kv_stride + d] : zero;
        Vs[r * L::LDB + d] = ok ? vbase[(size_t)j * a.kv_stride + d] : zero;
        dKacc[r * L::LDA + d] = 0.0f;
        dVacc[r * L::LDA + d] = 0.0f;
    }

    for (int hi = 0; hi < group; hi++) {
        const int h = g * group + hi;
        const bf16 *qbase = a.q + (size_t)b * T * a.q_stride + (size_t)h * HD;
        const bf16 *dobase = a.dout + (size_t)b * T * Q + (size_t)h * HD;
        const float *lse_b = a.lse + ((size_t)b * NH + h) * T, *dsum_b = a.dsum + ((size_t)b * NH + h) * T;
        float *dqbase = a.dq32 + (size_t)b * T * Q + (size_t)h * HD;
        for (int qs = k0; qs < len; qs += BBQ) {  // earlier queries never see these keys
            __syncthreads();  // the previous tile's Q, dO and dQ are no longer read
            for (int i = tid; i < BBQ * HDP; i += NTHREADS) {
                int r = i / HDP, d = i % HDP, t = qs + r;
                bool ok = t < len && d < HD;
                Qs[r * L::LDB + d] = ok ? qbase[(size_t)t * a.q_stride + d] : zero;
                dOs[r * L::LDB + d] = ok ? dobase[(size_t)t * Q + d] : zero;
            }
            if (tid < BBQ) {
                int t = qs + tid;
                lse_s[tid] = t < len ? lse_b[t] : 0.0f;
                dsum_s[tid] = t < len ? dsum_b[t] : 0.0f;
            }
            __syncthreads();
            smem_mma<BBQ, BBK, HDP, true, false, false>(P32, L::LDP32, Qs, L::LDB, Ks, L::LDB);  // S = Q K^T
            __syncthreads();
            for (int i = tid; i < BBQ * BBK; i += NTHREADS) {
                int r = i / BBK, c = i % BBK, t = qs + r, j = k0 + c;
                float p = 0.0f;
                if (t < len && j <= t) p = __expf(P32[r * L::LDP32 + c] * a.scale - lse_s[r]);
                P32[r * L::LDP32 + c] = p;
                P16[r * L::LDH + c] = __float2bfloat16_rn(p);
            }
            __syncthreads();
            smem_mma<BBK, HDP, BBQ, false, true, true>(dVacc, L::LDA, P16, L::LDH, dOs, L::LDB);   // dV += P^T dO
            smem_mma<BBQ, BBK, HDP, true, false, false>(dPs, L::LDD, dOs, L::LDB, Vs, L::LDB);    // dP = dO V^T
            __syncthreads();
            for (int i = tid; i < BBQ * BBK; i += NTHREADS) {
                int r = i / BBK, c = i % BBK;
                float ds = P32[r * L::LDP32 + c] * (dPs[r * L::LDD + c] - dsum_s[r]) * a.scale;
                dS16[r * L::LDH + c] = __float2bfloat16_rn(ds);
            }
            __syncthreads();
            smem_mma<BBK, HDP, BBQ, false, true, true>(dKacc, L::LDA, dS16, L::LDH, Qs, L::LDB);   // dK += dS^T Q
            smem_mma<BBQ, HDP, BBK, true, true, false>(dPs, L::LDD, dS16, L::LDH, Ks, L::LDB);    // dQ = dS K
            __syncthreads();
            for (int i = tid; i < BBQ * HD; i += NTHREADS) {
                int r = i / HD, d = i % HD, t = qs + r;
                if (t < len) atomicAdd(&dqbase[(size_t)t * Q + d], dPs[r * L::LDD + d]);
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < BBK * HD; i += NTHREADS) {
        int r = i / HD, d = i % HD, j = k0 + r;
        if (j >= T) continue;
        dkbase[(size_t)j * a.dkv_stride + d] = __float2bfloat16_rn(dKacc[r * L::LDA + d]);
        dvbase[(size_t)j * a.dkv_stride + d] = __float2bfloat16_rn(dVacc[r * L::LDA + d]);
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

template <int HDP>
static void launch_fwd(const FwdArgs &a) {
    static int done;
    size_t bytes = FwdLayout<HDP>::bytes;
    allow_smem(flash_fwd_kernel<HDP>, bytes, &done);
    dim3 grid(paw_ceil_div(a.Tq, FBQ), a.NH, a.B);
    flash_fwd_kernel<HDP><<<grid, NTHREADS, bytes, paw_cuda_stream()>>>(a);
    CUDA_CHECK_LAUNCH();
}

extern "C" void attention_cuda_forward(paw_bf16 *out, float *lse, const paw_bf16 *q, const paw_bf16 *k,
                                       const paw_bf16 *v, const int *lens, const int *kv_prev, int B, int Tq, int Tk,
                                       int NH, int NKV, int HD, long q_stride, long kv_stride, long kv_bstride) {
    if (B <= 0 || Tq <= 0) return;
    FwdArgs a = {out, lse, q, k, v, lens, kv_prev, B, Tq, Tk, NH, NKV, HD, q_stride, kv_stride, kv_bstride,
                 1.0f / sqrtf((float)HD), 0};
    switch (padded_head_dim(HD)) {
    case 32: launch_fwd<32>(a); break;
    case 64: launch_fwd<64>(a); break;
    default: launch_fwd<128>(a); break;
    }
}

extern "C" void attention_cuda_forward_rows(paw_bf16 *out, const paw_bf16 *q, const paw_bf16 *k, const paw_bf16 *v,
                                            const int *kv_prev, int B, int Tq, int NH, int NKV, int HD, long q_stride,
                                            long kv_stride, long kv_bstride) {
    if (B <= 0 || Tq <= 0) return;
    FwdArgs a = {out, NULL, q, k, v, NULL, kv_prev, B, Tq, 0, NH, NKV, HD, q_stride, kv_stride, kv_bstride,
                 1.0f / sqrtf((float)HD), 1};
    switch (padded_head_dim(HD)) {
    case 32: launch_fwd<32>(a); break;
    case 64: launch_fwd<64>(a); break;
    default: launch_fwd<128>(a); break;
    }
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
    BwdArgs a = {dk, dv, dq32, dsum, lse, dout, q, k, v, lens, q_stride, kv_stride, dkv_stride, B, T, NH, NKV, HD,
                 1.0f / sqrtf((float)HD)};
    switch (padded_head_dim(HD)) {
    case 32: launch_bwd<32>(a); break;
    case 64: launch_bwd<64>(a); break;
    default: launch_bwd<128>(a); break;
    }
    unsigned blocks = paw_ceil_div(rows * Q, 256), cap = (unsigned)paw_cuda_sm_count() * 32;
    attention_dq_kernel<<<blocks < cap ? blocks : cap, 256, 0, paw_cuda_stream()>>>(dq, dq_stride, dq32, rows, (int)Q);
    CUDA_CHECK_LAUNCH();
}
