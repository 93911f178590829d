// Causal grouped-query attention. Query head h reads K/V head h / (NH/NKV) in place: K and V
// are never copied per query head. The forward keeps the log-sum-exp of each query row so that
// the backward recomputes probabilities instead of storing a T x T matrix.
#ifndef PAW_KERNELS_ATTENTION_H
#define PAW_KERNELS_ATTENTION_H

#include <stddef.h>

// q: [B, Tq, NH, HD]; k, v: [B, Tcap, NKV, HD] with the first Tk rows of each sequence valid;
// out: [B, Tq, NH, HD]; lse: [B, NH, Tq] (may be NULL). Query t sits at absolute position
// Tk - Tq + t and sees keys 0..that position (Tq == Tk for a full sequence, Tq < Tk when
// decoding against a KV cache). Scale 1/sqrt(HD).
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                       int Tcap, int NH, int NKV, int HD);

// The decoding caches' layout, per sequence and KV head: the values in rows, [Tcap, HD], and the
// keys transposed in tiles of ATT_KEY_TILE positions, [Tcap / ATT_KEY_TILE, HD, ATT_KEY_TILE], so
// that the scores' products read each tile as one contiguous stream. Tcap is a multiple of
// ATT_KEY_TILE.
enum { ATT_KEY_TILE = 48 };

// Offset of key position j, dimension d within one KV head's keys.
static inline size_t attention_key_index(int j, int d, int HD) {
    return ((size_t)(j / ATT_KEY_TILE) * HD + (size_t)d) * ATT_KEY_TILE + (size_t)(j % ATT_KEY_TILE);
}

// attention_forward with K and V in the caches' layout: k and v [B, NKV, Tcap * HD], and no
// log-sum-exp. Per element the sums are those of attention_forward: decoding against a cache gives
// the full forward's bits.
void attention_forward_cache(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int Tcap,
                             int NH, int NKV, int HD);

// Full-sequence backward (Tq == Tk == Tcap == T). Accumulates into dq, dk, dv.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int B, int T, int NH, int NKV, int HD);

#endif
