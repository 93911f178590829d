#include "kernels/matmul.h"

#include <stddef.h>

// The forward is a dot product along C for every (row, output) pair. A 4x4 block of outputs
// keeps 16 running sums in registers and reads each input and weight row once per block;
// `omp simd reduction` lets the compiler vectorise the sums across C.
static void block4x4(float *out, const float *inp, const float *w, int C, int OC, float alpha, int acc) {
    const float *a0 = inp, *a1 = inp + C, *a2 = inp + 2 * (size_t)C, *a3 = inp + 3 * (size_t)C;
    const float *b0 = w, *b1 = w + C, *b2 = w + 2 * (size_t)C, *b3 = w + 3 * (size_t)C;
    float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
    for (int i = 0; i < C; i++) {
        float x0 = a0[i], x1 = a1[i], x2 = a2[i], x3 = a3[i];
        float y0 = b0[i], y1 = b1[i], y2 = b2[i], y3 = b3[i];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
    }
    float s[4][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23}, {s30, s31, s32, s33}};
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            float *o = &out[(size_t)r * OC + c];
            *o = acc ? *o + alpha * s[r][c] : alpha * s[r][c];
        }
}

static float dot(const float *a, const float *b, int C) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < C; i++) s += a[i] * b[i];
    return s;
}

static void matmul_impl(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha, int acc) {
    int N4 = N - N % 4, OC4 = OC - OC % 4;
    // Output columns are split across threads: the weight (the big operand) is then read once.
    // Column blocks of 64 keep the weight rows of a block in cache while all rows pass over them.
    const int OB = 64;
    int nob = (OC + OB - 1) / OB;
#pragma omp parallel for schedule(dynamic, 1)
    for (int ob = 0; ob < nob; ob++) {
        int o_begin = ob * OB, o_end = o_begin + OB < OC ? o_begin + OB : OC;
        for (int n = 0; n < N; n += 4) {
            for (int o = o_begin; o < o_end; o += 4) {
                if (n < N4 && o + 4 <= OC4 && o + 4 <= o_end) {
                    block4x4(out + (size_t)n * OC + o, inp + (size_t)n * C, weight + (size_t)o * C, C, OC, alpha, acc);
                } else {
                    for (int r = n; r < n + 4 && r < N; r++)
                        for (int c = o; c < o + 4 && c < o_end; c++) {
                            float v = alpha * dot(inp + (size_t)r * C, weight + (size_t)c * C, C);
                            float *dst = &out[(size_t)r * OC + c];
                            *dst = acc ? *dst + v : v;
                        }
                }
            }
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC) {
    matmul_impl(out, inp, weight, N, C, OC, 1.0f, 0);
}

void matmul_forward_acc(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha) {
    matmul_impl(out, inp, weight, N, C, OC, alpha, 1);
}

void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC) {
    if (dinp) {
        // dinp[n, :] += sum_o dout[n, o] * weight[o, :]. Threads own slices of C, so no two write
        // the same element; within a slice, blocks of weight rows are reused across all n.
        const int CB = 256, OBK = 32;
        int ncb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(dynamic, 1)
        for (int cb = 0; cb < ncb; cb++) {
            int c0 = cb * CB, c1 = c0 + CB < C ? c0 + CB : C;
            for (int o0 = 0; o0 < OC; o0 += OBK) {
                int o1 = o0 + OBK < OC ? o0 + OBK : OC;
                for (int n = 0; n < N; n++) {
                    float *di = dinp + (size_t)n * C;
                    const float *dn = dout + (size_t)n * OC;
                    for (int o = o0; o < o1; o++) {
                        float g = dn[o];
                        if (g == 0.0f) continue;
                        const float *wr = weight + (size_t)o * C;
#pragma omp simd
                        for (int c = c0; c < c1; c++) di[c] += g * wr[c];
                    }
                }
            }
        }
    }
    if (dweight) {
        // dweight[o, :] += sum_n dout[n, o] * inp[n, :]; threads own rows of dweight.
        const int OBK = 16;
        int nob = (OC + OBK - 1) / OBK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int ob = 0; ob < nob; ob++) {
            int o0 = ob * OBK, o1 = o0 + OBK < OC ? o0 + OBK : OC;
            for (int n = 0; n < N; n++) {
                const float *in = inp + (size_t)n * C;
                const float *dn = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) {
                    float g = dn[o];
                    if (g == 0.0f) continue;
                    float *dw = dweight + (size_t)o * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) dw[c] += g * in[c];
                }
            }
        }
    }
}
