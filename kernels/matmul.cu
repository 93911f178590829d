// cuBLASLt GEMMs. cuBLASLt is column-major: a row-major [R, K] matrix is a column-major [K, R]
// one, so every product below is written for the transposes (out^T = W * inp^T, and so on).
#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_common.cuh"
#include "kernels/gemm_fallback_cuda.h"
#include "kernels/matmul_cuda.h"

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

// The heuristic's choice, cached per problem (shape, layout, types and pointer alignment), so that
// steady-state calls cost no query.
typedef struct {
    int m, n, k, lda, ldb, ldd, ta, tb, dtype, beta_nonzero, align;
} GemmKey;
typedef struct {
    GemmKey key;
    cublasLtMatmulAlgo_t algo;
    int fallback;  // cuBLASLt had no algorithm: kernels/gemm_fallback_cuda.h
} GemmPlan;
static GemmPlan *g_plans;
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

// D[m, n] (column-major, ldd) = alpha * op(A) op(B) + beta * Cm, with op(A) [m, k] and op(B) [k, n].
// A and B are bf16; C and D share dtype dt (bf16 or fp32).
static void lt_gemm(void *D, cudaDataType_t dt, const void *Cm, const void *A, int ta, const void *B, int tb, int m,
                    int n, int k, int lda, int ldb, int ldd, float alpha, float beta) {
    if (m <= 0 || n <= 0) return;
    lt_init();
    if (beta == 0.0f) Cm = D;
    int al_a = ptr_alignment(A), al_b = ptr_alignment(B), al_c = ptr_alignment(Cm), al_d = ptr_alignment(D);
    GemmKey key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd, key.ta = ta, key.tb = tb;
    key.dtype = (int)dt, key.beta_nonzero = beta != 0.0f;
    key.align = al_a | (al_b << 9) | (al_c << 18) | (al_d << 27);  // each <= 256 fits in 9 bits

    cublasLtMatmulDesc_t desc;
    LT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cublasLtMatrixLayout_t la, lb, lc;
    LT_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lc, dt, m, n, ldd));

    const GemmPlan *plan = NULL;
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
        LT_CHECK(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, lc, lc, pref, 1, &res, &found));
        LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        if (found == 0)  // said once per shape: the plan remembers it
            fprintf(stderr,
                    "paw: note: cuBLASLt has no algorithm for a %dx%dx%d GEMM (op %c%c, ld %d/%d/%d, %s out, alignment "
                    "%d/%d/%d/%d bytes); using the plain fallback GEMM\n",
                    m, n, k, ta ? 'T' : 'N', tb ? 'T' : 'N', lda, ldb, ldd, dt == CUDA_R_32F ? "fp32" : "bf16", al_a,
                    al_b, al_c, al_d);
        if (g_nplans == g_cap_plans) {
            g_cap_plans = g_cap_plans ? 2 * g_cap_plans : 64;
            g_plans = (GemmPlan *)realloc(g_plans, sizeof(GemmPlan) * (size_t)g_cap_plans);
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
        paw_gemm_fallback(D, dt == CUDA_R_32F, Cm, A, ta, B, tb, 0, m, n, k, lda, ldb, ldd, 0, 0, 0, 1, alpha, beta);
    else
        LT_CHECK(cublasLtMatmul(g_lt, desc, &alpha, A, la, B, lb, &beta, Cm, lc, D, lc, &plan->algo, g_workspace,
                                WORKSPACE_BYTES, paw_cuda_stream()));
    LT_CHECK(cublasLtMatrixLayoutDestroy(la));
    LT_CHECK(cublasLtMatrixLayoutDestroy(lb));
    LT_CHECK(cublasLtMatrixLayoutDestroy(lc));
    LT_CHECK(cublasLtMatmulDescDestroy(desc));
}

extern "C" void matmul_cuda_forward(void *out, PawOutType out_type, const paw_bf16 *inp, const paw_bf16 *weight,
                                    const void *res, int N, int C, int OC, float alpha, float beta) {
    // out^T [OC, N] = W^T... : W row-major [OC, C] is column-major [C, OC]; transposed it is [OC, C].
    lt_gemm(out, out_type == PAW_OUT_F32 ? CUDA_R_32F : CUDA_R_16BF, beta != 0.0f ? res : out, weight, 1, inp, 0, OC,
            N, C, C, C, OC, alpha, beta);
}

extern "C" void matmul_cuda_backward_input(paw_bf16 *dinp, const paw_bf16 *dout, const paw_bf16 *weight, int N, int C,
                                           int OC, float beta) {
    // dinp^T [C, N] = W (column-major [C, OC]) * dout^T (column-major [OC, N]).
    lt_gemm(dinp, CUDA_R_16BF, dinp, weight, 0, dout, 0, C, N, OC, C, OC, C, 1.0f, beta);
}

extern "C" void matmul_cuda_backward_weight(float *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N, int C,
                                            int OC) {
    // dW^T [C, OC] += inp^T (column-major [C, N]) * dout (column-major [OC, N], transposed to [N, OC]).
    if (N <= 0) return;
    lt_gemm(dweight, CUDA_R_32F, dweight, inp, 0, dout, 1, C, OC, N, C, OC, C, 1.0f, 1.0f);
}

extern "C" void matmul_cuda_backward_weight_bf16(paw_bf16 *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N,
                                                 int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    lt_gemm(dweight, CUDA_R_16BF, dweight, inp, 0, dout, 1, C, OC, N, C, OC, C, 1.0f, 1.0f);
}
