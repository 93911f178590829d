// The compiler on the GPU; the order of operations mirrors compiler/compiler.c.
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler_cuda.h"
#include "kernels/cuda_common.cuh"

extern "C" {
#include "common/error.h"
}

struct CompilerCuda {
    Qwen3Cuda *model;
    Qwen3Config cfg;
    int P, S, d;
    int *teacher;          // [S] compiler layer of each slot; the last slot reads the final norm
    float *prefix, *dprefix;
    // the last forward
    int B, T;
    int *ids;              // host [B*T]
    int *d_lens;           // device [B]
    float *embeds;         // device [B*T, d]: the prefix rows, zero elsewhere
    float *H;              // device [B, S, P, d]
    float *inject_mem;     // device [layers][B*T, d]: one injection buffer per distinct captured layer
    int inject_layers;     // distinct layers among the slots before the last
    float *dlnf;           // device [B*T, d]
    size_t cap_tokens;
    int cap_B;
};

static unsigned grid_for(size_t n) {
    unsigned blocks = paw_ceil_div(n, 256), cap = (unsigned)paw_cuda_sm_count() * 16;
    if (blocks > cap) blocks = cap;
    return blocks ? blocks : 1;
}

// Element i of the P*d prefix block of sequence b lives at row b*T + lens[b] + i / d.
__device__ __forceinline__ size_t prefix_elem(const int *lens, int b, int T, int d, size_t i) {
    return ((size_t)b * T + lens[b]) * d + i;
}

__global__ void prefix_scatter_kernel(float *embeds, const float *prefix, const int *lens, int B, int T, int P, int d) {
    size_t per = (size_t)P * d, n = per * B;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / per);
        size_t j = i % per;
        embeds[prefix_elem(lens, b, T, d, j)] = prefix[j];
    }
}

// H[b, s, t, :] = src[b*T + lens[b] + t, :] for one slot s.
__global__ void capture_gather_kernel(float *H, const __nv_bfloat16 *src, const int *lens, int B, int T, int P, int d,
                                      int S, int s) {
    size_t per = (size_t)P * d, n = per * B;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / per);
        size_t j = i % per;
        H[((size_t)b * S + s) * per + j] = __bfloat162float(src[prefix_elem(lens, b, T, d, j)]);
    }
}

// The inverse for the backward: dst[b*T + lens[b] + t, :] += dH[b, s, t, :].
__global__ void capture_scatter_add_kernel(float *dst, const float *dH, const int *lens, int B, int T, int P, int d,
                                           int S, int s) {
    size_t per = (size_t)P * d, n = per * B;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / per);
        size_t j = i % per;
        dst[prefix_elem(lens, b, T, d, j)] += dH[((size_t)b * S + s) * per + j];
    }
}

// dprefix[t, :] += sum over b of dx0[b*T + lens[b] + t, :], in example order (deterministic).
__global__ void prefix_grad_kernel(float *dprefix, const float *dx0, const int *lens, int B, int T, int P, int d) {
    size_t per = (size_t)P * d;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < per; j += (size_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int b = 0; b < B; b++) acc += dx0[prefix_elem(lens, b, T, d, j)];
        dprefix[j] += acc;
    }
}

extern "C" CompilerCuda *compiler_cuda_create(Qwen3Cuda *model, const Qwen3Config *cfg, const float *prefix, int P,
                                              int slots) {
    if (!model || P <= 0 || slots <= 0) {
        paw_error("compiler on the GPU: needs a model, a positive prefix length (%d) and slot count (%d)", P, slots);
        return NULL;
    }
    CompilerCuda *c = (CompilerCuda *)xcalloc(1, sizeof(CompilerCuda));
    c->model = model;
    c->cfg = *cfg;
    c->P = P, c->S = slots, c->d = cfg->hidden_size;
    c->teacher = (int *)xmalloc(sizeof(int) * (size_t)slots);
    compiler_capture_layers(cfg->num_layers, slots, c->teacher);
    for (int s = 0; s + 1 < slots; s++)  // teacher is non-decreasing: count the distinct values
        if (s == 0 || c->teacher[s] != c->teacher[s - 1]) c->inject_layers++;
    size_t n = (size_t)P * c->d;
    c->prefix = (float *)paw_cuda_malloc(sizeof(float) * n);
    c->dprefix = (float *)paw_cuda_malloc(sizeof(float) * n);
    paw_cuda_upload(c->prefix, prefix, sizeof(float) * n);
    paw_cuda_memset(c->dprefix, 0, sizeof(float) * n);
    return c;
}

extern "C" CompilerCuda *compiler_cuda_from_cpu(const Compiler *cpu, int recompute) {
    Qwen3Cuda *m = qwen3_cuda_create(&cpu->model, cpu->model.frozen, recompute);
    if (!m) return NULL;
    CompilerCuda *c = compiler_cuda_create(m, &cpu->model.cfg, cpu->prefix, cpu->P, cpu->slots);
    if (!c) qwen3_cuda_free(m);
    return c;
}

static void free_batch(CompilerCuda *c) {
    free(c->ids);
    paw_cuda_free(c->d_lens);
    paw_cuda_free(c->embeds);
    paw_cuda_free(c->H);
    paw_cuda_free(c->inject_mem);
    paw_cuda_free(c->dlnf);
    c->ids = NULL, c->d_lens = NULL, c->embeds = c->H = c->inject_mem = c->dlnf = NULL;
}

extern "C" void compiler_cuda_free(CompilerCuda *c) {
    if (!c) return;
    qwen3_cuda_free(c->model);
    free_batch(c);
    paw_cuda_free(c->prefix);
    paw_cuda_free(c->dprefix);
    free(c->teacher);
    free(c);
}

extern "C" Qwen3Cuda *compiler_cuda_model(CompilerCuda *c) { return c->model; }
extern "C" int compiler_cuda_prefix_len(const CompilerCuda *c) { return c->P; }
extern "C" float *compiler_cuda_prefix(CompilerCuda *c) { return c->prefix; }
extern "C" float *compiler_cuda_dprefix(CompilerCuda *c) { return c->dprefix; }
extern "C" const float *compiler_cuda_states(const CompilerCuda *c) { return c->H; }

extern "C" void compiler_cuda_zero_grad(CompilerCuda *c) {
    qwen3_cuda_zero_grad(c->model);
    paw_cuda_memset(c->dprefix, 0, sizeof(float) * (size_t)c->P * c->d);
}

extern "C" int compiler_cuda_forward(CompilerCuda *c, const int *const *seqs, const int *lens, int B) {
    const int d = c->d, P = c->P, S = c->S;
    if (B <= 0) return paw_error("compiler: empty batch");
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (lens[b] < 0) return paw_error("compiler: negative sequence length");
        if (lens[b] + P > T) T = lens[b] + P;
    }
    if (T > c->cfg.max_position_embeddings)
        return paw_error("compiler: %d tokens + %d prefix exceed max_position_embeddings %d", T - P, P,
                         c->cfg.max_position_embeddings);
    size_t N = (size_t)B * T;
    if (N > c->cap_tokens || B > c->cap_B) {
        free_batch(c);
        c->ids = (int *)xmalloc(sizeof(int) * N);
        c->d_lens = (int *)paw_cuda_malloc(sizeof(int) * (size_t)B);
        c->embeds = (float *)paw_cuda_malloc(sizeof(float) * N * d);
        c->H = (float *)paw_cuda_malloc(sizeof(float) * (size_t)B * S * P * d);
        c->inject_mem = (float *)paw_cuda_malloc(sizeof(float) * N * d * (size_t)(c->inject_layers ? c->inject_layers : 1));
        c->dlnf = (float *)paw_cuda_malloc(sizeof(float) * N * d);
        c->cap_tokens = N;
        c->cap_B = B;
    }
    c->B = B, c->T = T;
    // Right-padded rows as on the CPU: [tokens, prefix, pad]; the causal mask keeps padding out.
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            c->ids[row] = t < lens[b] ? seqs[b][t] : t < lens[b] + P ? -1 : 0;
        }
    paw_cuda_upload(c->d_lens, lens, sizeof(int) * (size_t)B);
    paw_cuda_memset(c->embeds, 0, sizeof(float) * N * d);
    prefix_scatter_kernel<<<grid_for((size_t)B * P * d), 256, 0, paw_cuda_stream()>>>(c->embeds, c->prefix, c->d_lens,
                                                                                     B, T, P, d);
    CUDA_CHECK_LAUNCH();
    Qwen3CudaInputs in;
    memset(&in, 0, sizeof in);
    in.ids = c->ids;
    in.embeds_dev = c->embeds;
    in.logits_mode = QWEN3_LOGITS_NONE;
    if (qwen3_cuda_forward(c->model, &in, B, T) != 0) return -1;
    for (int s = 0; s < S; s++) {
        const paw_bf16 *src = s == S - 1 ? qwen3_cuda_final_norm(c->model) : qwen3_cuda_hidden(c->model, c->teacher[s] + 1);
        capture_gather_kernel<<<grid_for((size_t)B * P * d), 256, 0, paw_cuda_stream()>>>(c->H, src, c->d_lens, B, T,
                                                                                         P, d, S, s);
        CUDA_CHECK_LAUNCH();
    }
    return 0;
}

extern "C" int compiler_cuda_backward(CompilerCuda *c, const float *dH, Qwen3GradsReadyFn on_grads_ready, void *ctx) {
    const int d = c->d, P = c->P, S = c->S, Lc = c->cfg.num_layers, B = c->B, T = c->T;
    const size_t N = (size_t)B * T;
    if (B <= 0) return paw_error("compiler backward: no forward has run");
    float **inject = (float **)xcalloc((size_t)Lc + 1, sizeof(float *));
    int used = 0;
    paw_cuda_memset(c->dlnf, 0, sizeof(float) * N * d);
    for (int s = 0; s < S; s++) {
        float *dst;
        if (s == S - 1) dst = c->dlnf;
        else {
            int layer = c->teacher[s] + 1;
            if (!inject[layer]) {
                inject[layer] = c->inject_mem + (size_t)used++ * N * d;
                paw_cuda_memset(inject[layer], 0, sizeof(float) * N * d);
            }
            dst = inject[layer];
        }
        capture_scatter_add_kernel<<<grid_for((size_t)B * P * d), 256, 0, paw_cuda_stream()>>>(dst, dH, c->d_lens, B,
                                                                                              T, P, d, S, s);
        CUDA_CHECK_LAUNCH();
    }
    Qwen3CudaBackwardArgs args = {c->dlnf, (const float *const *)inject, on_grads_ready, ctx};
    int rc = qwen3_cuda_backward_ex(c->model, &args);
    free(inject);
    if (rc != 0) return -1;
    prefix_grad_kernel<<<grid_for((size_t)P * d), 256, 0, paw_cuda_stream()>>>(
        c->dprefix, qwen3_cuda_input_grad_dev(c->model), c->d_lens, B, T, P, d);
    CUDA_CHECK_LAUNCH();
    if (on_grads_ready) on_grads_ready(ctx, COMPILER_GRADS_PREFIX);
    return 0;
}
