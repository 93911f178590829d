// The mapper on the GPU (see mapper_cuda.h), op for op the CPU mapper (compiler/mapper.c):
// fc1/fc2 are fp32 cuBLASLt GEMMs (CUBLAS_COMPUTE_32F, no TF32) through paw_gemm_batched with
// batch 1, the basis mixing is kernels/mapper_mix.cu, and the small element-wise steps (mean,
// bias, GELU, bias gradients, the dH broadcast) are kernels here. Row-major [R, K] is
// column-major [K, R], so each product is written for its transpose.
#include <string.h>

#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/mapper_mix_cuda.h"

extern "C" {
#include "common/error.h"
}
#include "compiler/mapper_cuda.h"

struct MapperCuda {
    MapperConfig cfg;
    size_t num_params, K;  // K: coefficients per example
    float *params_memory, *grads_memory;
    MapperParams params, grads;  // device pointers into the blocks, the CPU layout
    // Activations of the last forward for nb examples (one block, reallocated when nb grows).
    int nb, P, cap_nb;
    float *acts;
    float *mean, *h1, *g, *coef, *packed;  // [nb, d] x 3, [nb, K], [7][2][L*nb][N]
    float *dpacked, *dcoef, *dg, *dmean;   // [7][2][L*nb][N], [nb, K], [nb, d] x 2
};

// Tensor i's parameter and gradient pointers in the blocks, in mapper.c's order.
static void layout(MapperCuda *m) {
    size_t off = 0;
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        int nd, sh[3];
        *mapper_tensor_slot(&m->params, i) = m->params_memory + off;
        *mapper_tensor_slot(&m->grads, i) = m->grads_memory + off;
        off += mapper_tensor_shape(&m->cfg, i, &nd, sh);
    }
}

static int config_valid(const MapperConfig *c) {
    if (c->d <= 0 || c->L <= 0 || c->nbases <= 0 || c->rank <= 0)
        return paw_error("mapper_cuda: bad mapper config, expected d, L, nbases, rank > 0 found %d, %d, %d, %d", c->d,
                         c->L, c->nbases, c->rank);
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        if (din <= 0 || dout <= 0)
            return paw_error("mapper_cuda: bad interpreter config, %s has d_in %d, d_out %d", lora_module_names[mod],
                             din, dout);
    }
    return 0;
}

static int same_config(const MapperCuda *m, const Mapper *cpu, const char *what) {
    const MapperConfig *a = &m->cfg, *b = &cpu->cfg;
    if (a->d != b->d || a->L != b->L || a->nbases != b->nbases || a->rank != b->rank ||
        m->num_params != cpu->num_params || !cpu->params_memory || !cpu->grads_memory)
        return paw_error("%s: CPU mapper does not match, expected d=%d L=%d N=%d r=%d with %zu parameters, found "
                         "d=%d L=%d N=%d r=%d with %zu",
                         what, a->d, a->L, a->nbases, a->rank, m->num_params, b->d, b->L, b->nbases, b->rank,
                         cpu->num_params);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Adapter buffers. Each module's A and B start on a 64-element boundary (256 bytes in fp32, 128 in
// bf16) so the interpreter's GEMMs see aligned matrices; the padding stays zero.
static size_t pad64(size_t n) { return (n + 63) / 64 * 64; }

extern "C" int mapper_cuda_lora_alloc(const MapperConfig *c, int nb, int with_grads, MapperCudaLora *lora) {
    memset(lora, 0, sizeof *lora);
    if (config_valid(c) != 0) return -1;
    if (nb <= 0) return paw_error("mapper_cuda_lora_alloc: expected nb > 0, found %d", nb);
    size_t off[LORA_NUM_MODULES][2], total = 0;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        off[mod][0] = total;
        total += pad64((size_t)c->L * nb * c->rank * din);
        off[mod][1] = total;
        total += pad64((size_t)c->L * nb * dout * c->rank);
    }
    lora->nb = nb, lora->L = c->L, lora->rank = c->rank, lora->scale = c->alpha / (float)c->rank;
    lora->numel = total;
    lora->f32_block = (float *)paw_cuda_malloc(sizeof(float) * total);
    lora->bf16_block = (paw_bf16 *)paw_cuda_malloc(sizeof(paw_bf16) * total);
    paw_cuda_memset(lora->f32_block, 0, sizeof(float) * total);
    paw_cuda_memset(lora->bf16_block, 0, sizeof(paw_bf16) * total);
    if (with_grads) {
        lora->grad_block = (float *)paw_cuda_malloc(sizeof(float) * total);
        paw_cuda_memset(lora->grad_block, 0, sizeof(float) * total);
    }
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        lora->A[mod] = lora->f32_block + off[mod][0];
        lora->B[mod] = lora->f32_block + off[mod][1];
        lora->A16[mod] = lora->bf16_block + off[mod][0];
        lora->B16[mod] = lora->bf16_block + off[mod][1];
        if (with_grads) {
            lora->dA[mod] = lora->grad_block + off[mod][0];
            lora->dB[mod] = lora->grad_block + off[mod][1];
        }
    }
    return 0;
}

extern "C" void mapper_cuda_lora_free(MapperCudaLora *lora) {
    paw_cuda_free(lora->f32_block);
    paw_cuda_free(lora->bf16_block);
    paw_cuda_free(lora->grad_block);
    memset(lora, 0, sizeof *lora);
}

extern "C" void mapper_cuda_lora_zero_grad(MapperCudaLora *lora) {
    if (lora->grad_block) paw_cuda_memset(lora->grad_block, 0, sizeof(float) * lora->numel);
}

extern "C" void mapper_cuda_lora_view(const MapperCudaLora *lora, Qwen3CudaLora *view) {
    memset(view, 0, sizeof *view);
    view->rank = lora->rank, view->nb = lora->nb, view->scale = lora->scale;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        view->A[mod] = lora->A16[mod], view->B[mod] = lora->B16[mod];
        view->dA[mod] = lora->dA[mod], view->dB[mod] = lora->dB[mod];
    }
}

// ---------------------------------------------------------------------------------------------
extern "C" MapperCuda *mapper_cuda_create(const Mapper *cpu) {
    if (!cpu || !cpu->params_memory) {
        paw_error("mapper_cuda_create: the CPU mapper has no parameters (not created)");
        return NULL;
    }
    if (config_valid(&cpu->cfg) != 0) return NULL;
    MapperCuda *m = (MapperCuda *)xcalloc(1, sizeof *m);
    m->cfg = cpu->cfg;
    m->num_params = cpu->num_params;
    m->K = mapper_num_coef(&cpu->cfg);
    m->params_memory = (float *)paw_cuda_malloc(sizeof(float) * m->num_params);
    m->grads_memory = (float *)paw_cuda_malloc(sizeof(float) * m->num_params);
    layout(m);
    paw_cuda_upload(m->params_memory, cpu->params_memory, sizeof(float) * m->num_params);
    mapper_cuda_zero_grad(m);
    return m;
}

extern "C" void mapper_cuda_free(MapperCuda *m) {
    if (!m) return;
    paw_cuda_free(m->params_memory);
    paw_cuda_free(m->grads_memory);
    paw_cuda_free(m->acts);
    free(m);
}

extern "C" int mapper_cuda_get_params(const MapperCuda *m, Mapper *dst) {
    if (same_config(m, dst, "mapper_cuda_get_params") != 0) return -1;
    paw_cuda_download(dst->params_memory, m->params_memory, sizeof(float) * m->num_params);
    return 0;
}

extern "C" int mapper_cuda_get_grads(const MapperCuda *m, Mapper *dst) {
    if (same_config(m, dst, "mapper_cuda_get_grads") != 0) return -1;
    paw_cuda_download(dst->grads_memory, m->grads_memory, sizeof(float) * m->num_params);
    return 0;
}

extern "C" int mapper_cuda_set_params(MapperCuda *m, const Mapper *src) {
    if (same_config(m, src, "mapper_cuda_set_params") != 0) return -1;
    paw_cuda_upload(m->params_memory, src->params_memory, sizeof(float) * m->num_params);
    return 0;
}

extern "C" void mapper_cuda_zero_grad(MapperCuda *m) {
    paw_cuda_memset(m->grads_memory, 0, sizeof(float) * m->num_params);
}

extern "C" size_t mapper_cuda_num_params(const MapperCuda *m) { return m->num_params; }
extern "C" float *mapper_cuda_params(MapperCuda *m) { return m->params_memory; }
extern "C" float *mapper_cuda_grads(MapperCuda *m) { return m->grads_memory; }

extern "C" size_t mapper_cuda_tensor(MapperCuda *m, int i, float **param, float **grad) {
    if (i < 0 || i >= MAPPER_NUM_TENSORS) {
        if (param) *param = NULL;
        if (grad) *grad = NULL;
        return 0;
    }
    int nd, sh[3];
    if (param) *param = *mapper_tensor_slot(&m->params, i);
    if (grad) *grad = *mapper_tensor_slot(&m->grads, i);
    return mapper_tensor_shape(&m->cfg, i, &nd, sh);
}

// ---------------------------------------------------------------------------------------------
// Kernels.

// Exact (erf) GELU and its derivative, as mapper.c (torch.nn.GELU()).
__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

// mean[b, i] = mean over the LP rows of H[b] ([LP, d]). Block (32, POOL_ROWS) covers 32 columns
// of one example: x runs over columns (coalesced), y splits the rows; double sums like the CPU,
// so the order of the additions does not show in the fp32 result.
#define POOL_ROWS 16
__global__ void mean_pool_kernel(float *mean, const float *H, int LP, int d) {
    __shared__ double part[POOL_ROWS][32];
    const int i = blockIdx.x * 32 + threadIdx.x, b = blockIdx.y;
    double s = 0;
    if (i < d) {
        const float *hb = H + (size_t)b * LP * d + i;
        for (int k = threadIdx.y; k < LP; k += POOL_ROWS) s += hb[(size_t)k * d];
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && i < d) {
        for (int y = 1; y < POOL_ROWS; y++) s += part[y][threadIdx.x];
        mean[(size_t)b * d + i] = (float)(s / LP);
    }
}

// h [rows, cols] += bias; with g, also g = GELU(h).
__global__ void bias_act_kernel(float *h, float *g, const float *bias, size_t rows, int cols) {
    size_t total = rows * cols;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < total; j += (size_t)gridDim.x * blockDim.x) {
        float v = h[j] + bias[j % cols];
        h[j] = v;
        if (g) g[j] = gelu(v);
    }
}

// One thread per column: with pre (the GELU input), dy *= GELU'(pre) in place first; then
// db[i] += dy[0, i] + dy[1, i] + ..., added one row at a time in the CPU's order.
__global__ void bias_grad_kernel(float *db, float *dy, const float *pre, int rows, int cols) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cols) return;
    float acc = db[i];
    for (int b = 0; b < rows; b++) {
        size_t j = (size_t)b * cols + i;
        float v = dy[j];
        if (pre) {
            v *= gelu_grad(pre[j]);
            dy[j] = v;
        }
        acc += v;
    }
    db[i] = acc;
}

// dH [nb, LP, d] = dmean [nb, d] * inv, broadcast over the LP rows.
__global__ void broadcast_kernel(float *dH, const float *dmean, int LP, int d, size_t total, float inv) {
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < total; j += (size_t)gridDim.x * blockDim.x) {
        size_t i = j % d, b = j / ((size_t)LP * d);
        dH[j] = dmean[b * d + i] * inv;
    }
}

static unsigned grid_for(size_t n) {
    unsigned blocks = paw_ceil_div(n, 256);
    if (blocks > 4096) blocks = 4096;
    return blocks ? blocks : 1;
}

// out [N, OC] = inp [N, C] @ W [OC, C]^T (matmul_forward). out^T = W^T-as-stored (col-major [C, OC],
// transposed) * inp^T (col-major [C, N]).
static void linear_forward(float *out, const float *inp, const float *W, int N, int C, int OC) {
    paw_gemm_batched(out, CUDA_R_32F, W, 1, inp, 0, CUDA_R_32F, OC, N, C, C, C, OC, 0, 0, 0, 1, 1.0f, 0.0f);
}

// dinp [N, C] = dout [N, OC] @ W [OC, C] (overwritten); dW [OC, C] += dout^T @ inp (accumulated).
static void linear_backward(float *dinp, float *dW, const float *dout, const float *inp, const float *W, int N,
                            int C, int OC) {
    // dinp^T [C, N] = W (col-major [C, OC]) * dout^T (col-major [OC, N]).
    paw_gemm_batched(dinp, CUDA_R_32F, W, 0, dout, 0, CUDA_R_32F, C, N, OC, C, OC, C, 0, 0, 0, 1, 1.0f, 0.0f);
    // dW^T [C, OC] += inp^T (col-major [C, N]) * dout (col-major [OC, N], transposed).
    paw_gemm_batched(dW, CUDA_R_32F, inp, 0, dout, 1, CUDA_R_32F, C, OC, N, C, OC, C, 0, 0, 0, 1, 1.0f, 1.0f);
}

static void ensure_acts(MapperCuda *m, int nb) {
    const size_t d = (size_t)m->cfg.d, K = m->K;
    if (nb > m->cap_nb) {
        paw_cuda_free(m->acts);
        // mean, h1, g, dg, dmean: [nb, d]; coef, packed, dpacked, dcoef: [nb, K] (packed holds the
        // same nb*K coefficients in another order).
        m->acts = (float *)paw_cuda_malloc(sizeof(float) * (size_t)nb * (5 * d + 4 * K));
        m->cap_nb = nb;
    }
    float *p = m->acts;
    m->mean = p, p += (size_t)nb * d;
    m->h1 = p, p += (size_t)nb * d;
    m->g = p, p += (size_t)nb * d;
    m->dg = p, p += (size_t)nb * d;
    m->dmean = p, p += (size_t)nb * d;
    m->coef = p, p += (size_t)nb * K;
    m->packed = p, p += (size_t)nb * K;
    m->dpacked = p, p += (size_t)nb * K;
    m->dcoef = p;
    m->nb = nb;
}

static int lora_matches(const MapperCuda *m, const MapperCudaLora *lora, int nb, const char *what) {
    if (!lora || !lora->f32_block || lora->nb != nb || lora->L != m->cfg.L || lora->rank != m->cfg.rank)
        return paw_error("%s: adapters do not match, expected nb=%d L=%d r=%d found nb=%d L=%d r=%d", what, nb,
                         m->cfg.L, m->cfg.rank, lora ? lora->nb : 0, lora ? lora->L : 0, lora ? lora->rank : 0);
    return 0;
}

extern "C" int mapper_cuda_forward(MapperCuda *m, const float *H, int nb, int P, MapperCudaLora *out) {
    const MapperConfig *c = &m->cfg;
    const int d = c->d, L = c->L, N = c->nbases, r = c->rank, K = (int)m->K;
    if (nb <= 0 || P <= 0 || !H)
        return paw_error("mapper_cuda_forward: expected nb > 0, P > 0 and states, found nb=%d P=%d", nb, P);
    if (lora_matches(m, out, nb, "mapper_cuda_forward") != 0) return -1;
    ensure_acts(m, nb);
    m->P = P;
    const MapperParams *p = &m->params;
    cudaStream_t st = paw_cuda_stream();

    dim3 pool_grid(paw_ceil_div((size_t)d, 32), (unsigned)nb), pool_block(32, POOL_ROWS);
    mean_pool_kernel<<<pool_grid, pool_block, 0, st>>>(m->mean, H, L * P, d);
    CUDA_CHECK_LAUNCH();
    linear_forward(m->h1, m->mean, p->w1, nb, d, d);
    bias_act_kernel<<<grid_for((size_t)nb * d), 256, 0, st>>>(m->h1, m->g, p->b1, (size_t)nb, d);
    CUDA_CHECK_LAUNCH();
    linear_forward(m->coef, m->g, p->w2, nb, d, K);
    bias_act_kernel<<<grid_for((size_t)nb * K), 256, 0, st>>>(m->coef, NULL, p->b2, (size_t)nb, K);
    CUDA_CHECK_LAUNCH();

    // Mixing: per module and side one GEMM over the (layer, example) rows.
    mapper_coef_pack_cuda(m->packed, m->coef, nb, L, N);
    const size_t rows = (size_t)L * nb, slice = rows * N;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        mapper_mix_cuda_forward(out->A[mod], m->packed + (size_t)(mod * 2 + 0) * slice, p->abase[mod], (int)rows, N,
                                r * din);
        mapper_mix_cuda_forward(out->B[mod], m->packed + (size_t)(mod * 2 + 1) * slice, p->bbase[mod], (int)rows, N,
                                dout * r);
    }
    // The bf16 copies the LoRA GEMMs read, one pass over the block (padding included, zeros).
    paw_cuda_f32_to_bf16(out->bf16_block, out->f32_block, out->numel);
    return 0;
}

extern "C" int mapper_cuda_backward(MapperCuda *m, int P, const MapperCudaLora *lora, float *dH) {
    const MapperConfig *c = &m->cfg;
    const int d = c->d, L = c->L, N = c->nbases, r = c->rank, K = (int)m->K, nb = m->nb;
    if (nb <= 0) return paw_error("mapper_cuda_backward: no forward to go back through");
    if (P != m->P || !dH)
        return paw_error("mapper_cuda_backward: expected P=%d (the forward's) and dH, found P=%d", m->P, P);
    if (lora_matches(m, lora, nb, "mapper_cuda_backward") != 0) return -1;
    if (!lora->grad_block) return paw_error("mapper_cuda_backward: adapters allocated without gradients");
    const MapperParams *p = &m->params;
    MapperParams *gp = &m->grads;
    cudaStream_t st = paw_cuda_stream();

    // dcoef (packed) = <dA, basis> for every (layer, example, basis); d basis += coef^T dA.
    const size_t rows = (size_t)L * nb, slice = rows * N;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        size_t oa = (size_t)(mod * 2 + 0) * slice, ob = (size_t)(mod * 2 + 1) * slice;
        mapper_mix_cuda_backward(m->dpacked + oa, gp->abase[mod], lora->dA[mod], m->packed + oa, p->abase[mod],
                                 (int)rows, N, r * din);
        mapper_mix_cuda_backward(m->dpacked + ob, gp->bbase[mod], lora->dB[mod], m->packed + ob, p->bbase[mod],
                                 (int)rows, N, dout * r);
    }
    mapper_coef_unpack_cuda(m->dcoef, m->dpacked, nb, L, N);

    // Through fc2, GELU, fc1 and the mean.
    linear_backward(m->dg, gp->w2, m->dcoef, m->g, p->w2, nb, d, K);
    bias_grad_kernel<<<paw_ceil_div((size_t)K, 256), 256, 0, st>>>(gp->b2, m->dcoef, NULL, nb, K);
    CUDA_CHECK_LAUNCH();
    bias_grad_kernel<<<paw_ceil_div((size_t)d, 256), 256, 0, st>>>(gp->b1, m->dg, m->h1, nb, d);  // dg -> d h1
    CUDA_CHECK_LAUNCH();
    linear_backward(m->dmean, gp->w1, m->dg, m->mean, p->w1, nb, d, d);
    const size_t total = (size_t)nb * L * P * d;
    broadcast_kernel<<<grid_for(total), 256, 0, st>>>(dH, m->dmean, L * P, d, total, 1.0f / (float)(L * P));
    CUDA_CHECK_LAUNCH();
    return 0;
}
