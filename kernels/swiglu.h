// SwiGLU gate of the Qwen3 MLP: out = silu(gate) * up, silu(x) = x * sigmoid(x).
#ifndef PAW_KERNELS_SWIGLU_H
#define PAW_KERNELS_SWIGLU_H

#include <stddef.h>

void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
// dgate += dout * up * silu'(gate), dup += dout * silu(gate).
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

#endif
