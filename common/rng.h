// Deterministic random numbers (splitmix64 state advance, xorshift-free and portable), so that
// weights, data and shuffles are reproducible from a seed on every machine.
#ifndef PAW_COMMON_RNG_H
#define PAW_COMMON_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} PawRng;

static inline uint64_t paw_rng_u64(PawRng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// Uniform in [0, 1) with 24 random bits.
static inline float paw_rng_uniform(PawRng *r) { return (float)(paw_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
// Uniform integer in [0, n).
static inline uint64_t paw_rng_below(PawRng *r, uint64_t n) { return n ? paw_rng_u64(r) % n : 0; }
// Standard normal (Box-Muller).
static inline float paw_rng_normal(PawRng *r) {
    float u1 = ((float)(paw_rng_u64(r) >> 40) + 1.0f) * (1.0f / 16777217.0f);
    float u2 = paw_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

#endif
