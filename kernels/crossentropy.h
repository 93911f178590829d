// Softmax cross-entropy over the vocabulary with a per-position weight (the loss mask): only
// positions with weight > 0 count. The CPU reference holds the logits of all positions; the
// CUDA version fuses the LM head and chunks the vocabulary.
#ifndef PAW_KERNELS_CROSSENTROPY_H
#define PAW_KERNELS_CROSSENTROPY_H

// nll[n] = logsumexp(logits[n]) - logits[n, targets[n]] where weight[n] > 0 (else 0);
// lse[n] saved. Returns sum_n weight[n] * nll[n]. weight NULL = all ones.
// A target outside [0, V) at a weighted position is the caller's bug: it is reported as -1 in *bad.
double crossentropy_forward(float *nll, float *lse, const float *logits, const int *targets, const float *weight,
                            int N, int V, int *bad);
// In place: logits[n] becomes dlogits[n] = scale * weight[n] * (softmax(logits[n]) - onehot(target)).
// Rows with weight 0 become 0.
void crossentropy_backward_inplace(float *logits, const float *lse, const int *targets, const float *weight, int N,
                                   int V, float scale);

#endif
