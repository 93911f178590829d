#include "kernels/crossentropy.h"

#include <math.h>
#include <stddef.h>

double crossentropy_forward(float *nll, float *lse, const float *logits, const int *targets, const float *weight,
                            int N, int V, int *bad) {
#pragma omp parallel for if (N >= 4)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)(x[i] - mx));
        float l = mx + (float)log(s);
        lse[n] = l;
        float w = weight ? weight[n] : 1.0f;
        int ok = targets[n] >= 0 && targets[n] < V;
        nll[n] = (w != 0.0f && ok) ? l - x[targets[n]] : 0.0f;
    }
    // Summed in row order, so the loss has the same bits on every run.
    double total = 0;
    int nbad = 0;
    for (int n = 0; n < N; n++) {
        float w = weight ? weight[n] : 1.0f;
        if (w == 0.0f) continue;
        if (targets[n] < 0 || targets[n] >= V) nbad++;
        else total += (double)w * nll[n];
    }
    if (bad) *bad = nbad;
    return total;
}

void crossentropy_backward_inplace(float *logits, const float *lse, const int *targets, const float *weight, int N,
                                   int V, float scale) {
#pragma omp parallel for if (N >= 4)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * V;
        float w = (weight ? weight[n] : 1.0f) * scale;
        if (w == 0.0f || targets[n] < 0 || targets[n] >= V) {
            for (int i = 0; i < V; i++) x[i] = 0;
            continue;
        }
        float l = lse[n];
        for (int i = 0; i < V; i++) x[i] = w * expf(x[i] - l);
        x[targets[n]] -= w;
    }
}
