// Per-head q/k RMSNorm followed by rotary position embedding (Qwen3 applies q_norm/k_norm over
// head_dim before RoPE). RoPE uses the rotate-half layout: for i < hd/2,
//   y[i] = x[i] cos - x[i+hd/2] sin,   y[i+hd/2] = x[i+hd/2] cos + x[i] sin,
// with angle pos * theta^(-2i/hd).
#ifndef PAW_KERNELS_ROPE_H
#define PAW_KERNELS_ROPE_H

// cos/sin tables [max_pos, hd/2], computed in fp32 as transformers does.
void rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta);

// x: [N tokens, nh heads, hd]; pos[N]: each token's position. In place.
void rope_forward(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int hd);
// The inverse rotation applied to a gradient, in place.
void rope_backward(float *dx, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int hd);

// out = rope(rmsnorm_head(inp) * normw); rstd[N*nh] saved for the backward.
void qknorm_rope_forward(float *out, float *rstd, const float *inp, const float *normw, const float *cos_t,
                         const float *sin_t, const int *pos, int N, int nh, int hd, float eps);
// dinp += gradient w.r.t. the pre-norm input; dnormw += gradient of the norm weight (may be NULL).
// dout is used as scratch (rotated back in place).
void qknorm_rope_backward(float *dinp, float *dnormw, float *dout, const float *inp, const float *normw,
                          const float *rstd, const float *cos_t, const float *sin_t, const int *pos, int N, int nh,
                          int hd);

#endif
