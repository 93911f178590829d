// The horizontal sum of 8 floats in one fixed order, shared by the CPU kernels whose results
// must not depend on which of them reduced a vector.
#ifndef PAW_KERNELS_HSUM_H
#define PAW_KERNELS_HSUM_H

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hsum8(__m256 t) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
#endif

#endif
