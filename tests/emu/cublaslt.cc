// The cuBLASLt functions kernels/gemm_batched.cu calls, for the CPU emulation: a plain column-major
// GEMM with fp32 accumulation, bf16 or fp32 inputs and outputs, transposes and strided batches,
// D = alpha op(A) op(B) + beta C. Every heuristic query finds one algorithm.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "tests/emu/simt.h"

namespace {

struct Desc {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct Layout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch = 1;
    int64_t stride = 0;
};
struct Pref {
    int unused;
};

size_t elem_bytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

float load(const void *base, cudaDataType t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)base)[i];
    return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
}

// The last byte a layout's batch reaches + 1, for the device-range check.
size_t extent(const Layout &l) {
    if (l.rows == 0 || l.cols == 0) return 0;
    size_t last = (size_t)(l.rows - 1) + (size_t)(l.cols - 1) * (size_t)l.ld + (size_t)(l.batch - 1) * (size_t)l.stride;
    return (last + 1) * elem_bytes(l.type);
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    static int handle;
    *h = (cublasLtHandle_t)&handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasLtGetStatusName(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}
const char *cublasLtGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "success" : "invalid value"; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    *d = (cublasLtMatmulDesc_t) new Desc;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete (Desc *)d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t n) {
    Desc *desc = (Desc *)d;
    if (n != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA) memcpy(&desc->ta, buf, n);
    else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) memcpy(&desc->tb, buf, n);
    else return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (type != CUDA_R_32F && type != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (ld < (int64_t)rows || ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    Layout *lay = new Layout;
    lay->type = type, lay->rows = rows, lay->cols = cols, lay->ld = ld;
    *l = (cublasLtMatrixLayout_t)lay;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete (Layout *)l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t n) {
    Layout *lay = (Layout *)l;
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && n == sizeof(int32_t)) memcpy(&lay->batch, buf, n);
    else if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && n == sizeof(int64_t)) memcpy(&lay->stride, buf, n);
    else return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = (cublasLtMatmulPreference_t) new Pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete (Pref *)p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void *buf, size_t) {
    return buf ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *count) {
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    memset(&results[0], 0, sizeof results[0]);
    *count = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t stream) {
    const Desc dd = *(const Desc *)desc;
    const Layout la = *(const Layout *)Adesc, lb = *(const Layout *)Bdesc, lc = *(const Layout *)Cdesc,
                 ld = *(const Layout *)Ddesc;
    int ta = dd.ta == CUBLAS_OP_T, tb = dd.tb == CUBLAS_OP_T;
    uint64_t m = ld.rows, n = ld.cols, k = ta ? la.rows : la.cols;
    if ((ta ? la.cols : la.rows) != m || (tb ? lb.rows : lb.cols) != n || (tb ? lb.cols : lb.rows) != k ||
        lc.rows != m || lc.cols != n || la.batch != ld.batch || lb.batch != ld.batch || lc.batch != ld.batch ||
        la.type != lb.type) {
        fprintf(stderr, "emulated cublasLtMatmul: layouts do not match (m %llu n %llu k %llu)\n",
                (unsigned long long)m, (unsigned long long)n, (unsigned long long)k);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    float al = *(const float *)alpha, be = *(const float *)beta;
    const void *ranges[4] = {A, B, C, D};
    const Layout *lays[4] = {&la, &lb, &lc, &ld};
    for (int i = 0; i < 4; i++)
        if ((i != 2 || be != 0.0f) && !emu::is_device_range(ranges[i], extent(*lays[i]))) {
            fprintf(stderr, "emulated cublasLtMatmul: operand %c is not within device memory\n", "ABCD"[i]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    emu::submit(stream, [=]() {
        std::vector<float> a(m * k), b(k * n);
        for (int bi = 0; bi < ld.batch; bi++) {
            for (uint64_t i = 0; i < m; i++)  // a[i][kk] = op(A)(i, kk)
                for (uint64_t kk = 0; kk < k; kk++)
                    a[i * k + kk] = load(A, la.type, bi * la.stride + (ta ? kk + i * la.ld : i + kk * la.ld));
            for (uint64_t j = 0; j < n; j++)  // b[j][kk] = op(B)(kk, j)
                for (uint64_t kk = 0; kk < k; kk++)
                    b[j * k + kk] = load(B, lb.type, bi * lb.stride + (tb ? j + kk * lb.ld : kk + j * lb.ld));
#pragma omp parallel for schedule(static)
            for (uint64_t j = 0; j < n; j++)
                for (uint64_t i = 0; i < m; i++) {
                    // Eight partial sums: a vectorisable order (fp32 throughout, as cuBLASLt's is its own).
                    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    const float *ai = &a[i * k], *bj = &b[j * k];
                    uint64_t kk = 0;
                    for (; kk + 8 <= k; kk += 8)
                        for (int u = 0; u < 8; u++) part[u] += ai[kk + u] * bj[kk + u];
                    for (; kk < k; kk++) part[kk % 8] += ai[kk] * bj[kk];
                    float acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
                    float v = al * acc;
                    if (be != 0.0f) v += be * load(C, lc.type, bi * lc.stride + i + j * lc.ld);
                    size_t o = bi * ld.stride + i + j * ld.ld;
                    if (ld.type == CUDA_R_32F) ((float *)D)[o] = v;
                    else ((__nv_bfloat16 *)D)[o] = __float2bfloat16_rn(v);
                }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
