// Every cuBLASLt GEMM of the project (see gemm_batched.cuh): one handle, one workspace, one plan
// cache, and the plain fallback where the heuristic has no algorithm.
#include <cublasLt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/gemm_fallback_cuda.h"

#define LT_CHECK(call) lt_check((call), #call, __FILE__, __LINE__)
static void lt_check(cublasStatus_t st, const char *what, const char *file, int line) {
    if (st == CUBLAS_STATUS_SUCCESS) return;
    fprintf(stderr, "paw: %s:%d: %s: cuBLASLt error %s (%s)\n", file, line, what, cublasLtGetStatusName(st),
            cublasLtGetStatusString(st));
    exit(1);
}

static cublasLtHandle_t g_lt;
static void *g_workspace;
static const size_t WORKSPACE_BYTES = (size_t)32 << 20;

typedef struct {
    int m, n, k, lda, ldb, ldd, ta, tb, in_type, out_type, beta_nonzero, batch, align[4];  // A, B, C, D
    long long stride_a, stride_b, stride_d;
} BatchedKey;
typedef struct {
    BatchedKey key;
    cublasLtMatmulAlgo_t algo;
    int fallback;  // cuBLASLt had no algorithm: kernels/gemm_fallback_cuda.h
} BatchedPlan;
static BatchedPlan *g_plans;
static int g_nplans, g_cap_plans;

static void lt_init(void) {
    if (g_lt) return;
    LT_CHECK(cublasLtCreate(&g_lt));
    g_workspace = paw_cuda_malloc(WORKSPACE_BYTES);
}

// Largest power of two (<= 256) dividing the address.
static int ptr_alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al >>= 1;
    return al;
}

static cublasLtMatrixLayout_t make_layout(cudaDataType_t t, int rows, int cols, int ld, int batch, long long stride) {
    cublasLtMatrixLayout_t l;
    LT_CHECK(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, (int64_t)ld));
    if (batch > 1) {
        int32_t bc = batch;
        int64_t st = stride;
        LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st, sizeof st));
    }
    return l;
}

void paw_gemm_lt(void *D, cudaDataType_t out_type, const void *C, const void *A, int ta, const void *B, int tb,
                 cudaDataType_t in_type, int m, int n, int k, int lda, int ldb, int ldd, long long stride_a,
                 long long stride_b, long long stride_d, int batch, float alpha, float beta) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    lt_init();
    if (beta == 0.0f) C = D;
    int al_a = ptr_alignment(A), al_b = ptr_alignment(B), al_c = ptr_alignment(C), al_d = ptr_alignment(D);
    BatchedKey key;
    memset(&key, 0, sizeof key);  // padding included, since keys are compared with memcmp
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd, key.ta = ta, key.tb = tb;
    key.in_type = (int)in_type, key.out_type = (int)out_type, key.beta_nonzero = beta != 0.0f, key.batch = batch;
    key.align[0] = al_a, key.align[1] = al_b, key.align[2] = al_c, key.align[3] = al_d;
    key.stride_a = stride_a, key.stride_b = stride_b, key.stride_d = stride_d;

    cublasLtMatmulDesc_t desc;
    LT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cublasLtMatrixLayout_t la = make_layout(in_type, ta ? k : m, ta ? m : k, lda, batch, stride_a);
    cublasLtMatrixLayout_t lb = make_layout(in_type, tb ? n : k, tb ? k : n, ldb, batch, stride_b);
    cublasLtMatrixLayout_t ld = make_layout(out_type, m, n, ldd, batch, stride_d);

    const BatchedPlan *plan = NULL;
    for (int i = 0; i < g_nplans && !plan; i++)
        if (memcmp(&g_plans[i].key, &key, sizeof key) == 0) plan = &g_plans[i];
    if (!plan) {
        cublasLtMatmulPreference_t pref;
        LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        uint64_t ws = WORKSPACE_BYTES;
        uint32_t aa = (uint32_t)al_a, ab = (uint32_t)al_b, ac = (uint32_t)al_c, ad = (uint32_t)al_d;
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad));
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        LT_CHECK(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &res, &found));
        LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        if (found == 0)  // said once per shape: the plan remembers it
            fprintf(stderr,
                    "paw: note: cuBLASLt has no algorithm for %d x %dx%dx%d GEMM (op %c%c, ld %d/%d/%d, %s in, "
                    "%s out, alignment %d/%d/%d/%d bytes); using the plain fallback GEMM\n",
                    batch, m, n, k, ta ? 'T' : 'N', tb ? 'T' : 'N', lda, ldb, ldd,
                    in_type == CUDA_R_32F ? "fp32" : "bf16", out_type == CUDA_R_32F ? "fp32" : "bf16", al_a, al_b,
                    al_c, al_d);
        if (g_nplans == g_cap_plans) {
            g_cap_plans = g_cap_plans ? 2 * g_cap_plans : 64;
            g_plans = (BatchedPlan *)realloc(g_plans, sizeof(BatchedPlan) * (size_t)g_cap_plans);
            if (!g_plans) {
                fprintf(stderr, "paw: out of memory for GEMM plans\n");
                exit(1);
            }
        }
        g_plans[g_nplans].key = key;
        if (found) g_plans[g_nplans].algo = res.algo;
        g_plans[g_nplans].fallback = found == 0;
        plan = &g_plans[g_nplans++];
    }
    if (plan->fallback)
        paw_gemm_fallback(D, out_type == CUDA_R_32F, C, A, ta, B, tb, in_type == CUDA_R_32F, m, n, k, lda, ldb, ldd,
                          stride_a, stride_b, stride_d, batch, alpha, beta);
    else
        LT_CHECK(cublasLtMatmul(g_lt, desc, &alpha, A, la, B, lb, &beta, C, ld, D, ld, &plan->algo, g_workspace,
                                WORKSPACE_BYTES, paw_cuda_stream()));
    LT_CHECK(cublasLtMatrixLayoutDestroy(la));
    LT_CHECK(cublasLtMatrixLayoutDestroy(lb));
    LT_CHECK(cublasLtMatrixLayoutDestroy(ld));
    LT_CHECK(cublasLtMatmulDescDestroy(desc));
}

void paw_gemm_batched(void *D, cudaDataType_t out_type, const void *A, int ta, const void *B, int tb,
                      cudaDataType_t in_type, int m, int n, int k, int lda, int ldb, int ldd, long long stride_a,
                      long long stride_b, long long stride_d, int batch, float alpha, float beta) {
    paw_gemm_lt(D, out_type, D, A, ta, B, tb, in_type, m, n, k, lda, ldb, ldd, stride_a, stride_b, stride_d, batch,
                alpha, beta);
}
