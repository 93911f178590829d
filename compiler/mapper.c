#include "compiler/mapper.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/matmul.h"

size_t mapper_num_coef(const MapperConfig *c) { return (size_t)c->L * LORA_NUM_MODULES * c->nbases * 2; }

const char *mapper_tensor_name(int i, char *buf, size_t n) {
    static const char *fixed[4] = {"mapper.fc1.weight", "mapper.fc1.bias", "mapper.fc2.weight", "mapper.fc2.bias"};
    if (i < 4) snprintf(buf, n, "%s", fixed[i]);
    else if (i < 4 + LORA_NUM_MODULES) snprintf(buf, n, "mapper.A.%s", lora_module_names[i - 4]);
    else snprintf(buf, n, "mapper.B.%s", lora_module_names[i - 4 - LORA_NUM_MODULES]);
    return buf;
}

size_t mapper_tensor_shape(const MapperConfig *c, int i, int *ndim, int shape[3]) {
    int d = c->d, K = (int)mapper_num_coef(c);
    switch (i) {
    case 0: *ndim = 2, shape[0] = d, shape[1] = d; break;
    case 1: *ndim = 1, shape[0] = d; break;
    case 2: *ndim = 2, shape[0] = K, shape[1] = d; break;
    case 3: *ndim = 1, shape[0] = K; break;
    default: {
        int mod = (i - 4) % LORA_NUM_MODULES, din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        *ndim = 3;
        shape[0] = c->nbases;
        if (i < 4 + LORA_NUM_MODULES) shape[1] = c->rank, shape[2] = din;
        else shape[1] = dout, shape[2] = c->rank;
    }
    }
    size_t n = 1;
    for (int k = 0; k < *ndim; k++) n *= (size_t)shape[k];
    return n;
}

float **mapper_tensor_slot(MapperParams *p, int i) {
    if (i == 0) return &p->w1;
    if (i == 1) return &p->b1;
    if (i == 2) return &p->w2;
    if (i == 3) return &p->b2;
    if (i < 4 + LORA_NUM_MODULES) return &p->abase[i - 4];
    return &p->bbase[i - 4 - LORA_NUM_MODULES];
}

static size_t layout(const MapperConfig *c, MapperParams *p, float *mem) {
    size_t off = 0;
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        int nd, sh[3];
        *mapper_tensor_slot(p, i) = mem ? mem + off : NULL;
        off += mapper_tensor_shape(c, i, &nd, sh);
    }
    return off;
}

void mapper_create(Mapper *mp, const MapperConfig *cfg) {
    memset(mp, 0, sizeof *mp);
    mp->cfg = *cfg;
    mp->num_params = layout(cfg, &mp->params, NULL);
    mp->params_memory = xcalloc(mp->num_params, sizeof(float));
    mp->grads_memory = xcalloc(mp->num_params, sizeof(float));
    layout(cfg, &mp->params, mp->params_memory);
    layout(cfg, &mp->grads, mp->grads_memory);
}

static void free_acts(Mapper *mp) {
    free(mp->mean), free(mp->h1), free(mp->g), free(mp->coef);
    free(mp->dcoef), free(mp->dg), free(mp->dmean);
    mp->mean = mp->h1 = mp->g = mp->coef = mp->dcoef = mp->dg = mp->dmean = NULL;
}

void mapper_free(Mapper *mp) {
    free(mp->params_memory);
    free(mp->grads_memory);
    free_acts(mp);
    memset(mp, 0, sizeof *mp);
}

void mapper_zero_grad(Mapper *mp) { memset(mp->grads_memory, 0, sizeof(float) * mp->num_params); }

void mapper_init(Mapper *mp, unsigned long long seed) {
    const MapperConfig *c = &mp->cfg;
    PawRng rng = {seed};
    MapperParams *p = &mp->params;
    size_t K = mapper_num_coef(c);
    // fc1 ~ N(0, 1/d): the pre-activation keeps the scale of the mean hidden state.
    float s1 = 1.0f / sqrtf((float)c->d);
    for (size_t i = 0; i < (size_t)c->d * c->d; i++) p->w1[i] = s1 * paw_rng_normal(&rng);
    // fc2 ~ N(0, 1/(d N)): each module's N coefficients then form a vector of norm ~O(1), so a
    // mixed A has the scale of a single basis.
    float s2 = 1.0f / sqrtf((float)c->d * (float)c->nbases);
    for (size_t i = 0; i < K * c->d; i++) p->w2[i] = s2 * paw_rng_normal(&rng);
    memset(p->b1, 0, sizeof(float) * (size_t)c->d);
    memset(p->b2, 0, sizeof(float) * K);
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int nd, sh[3];
        // A bases ~ N(0, 1/d_in), like a LoRA A matrix: A x is O(|x| / sqrt(d_in)) per rank.
        size_t na = mapper_tensor_shape(c, 4 + mod, &nd, sh);
        float sa = 1.0f / sqrtf((float)sh[2]);
        for (size_t i = 0; i < na; i++) p->abase[mod][i] = sa * paw_rng_normal(&rng);
        // B bases = 0: every mixed B is zero, the adapters are no-ops, and the first steps start
        // from the bare interpreter (B still gets gradients, since the coefficients are not 0).
        size_t nbb = mapper_tensor_shape(c, 4 + LORA_NUM_MODULES + mod, &nd, sh);
        memset(p->bbase[mod], 0, sizeof(float) * nbb);
    }
}

void mapper_lora_alloc(const MapperConfig *c, int nb, int with_grads, Qwen3Lora *lora) {
    memset(lora, 0, sizeof *lora);
    lora->rank = c->rank;
    lora->scale = c->alpha / (float)c->rank;
    lora->nb = nb;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        size_t na = (size_t)c->L * nb * c->rank * din, nbb = (size_t)c->L * nb * dout * c->rank;
        lora->A[mod] = xmalloc(sizeof(float) * na);
        lora->B[mod] = xmalloc(sizeof(float) * nbb);
        if (with_grads) {
            lora->dA[mod] = xcalloc(na, sizeof(float));
            lora->dB[mod] = xcalloc(nbb, sizeof(float));
        }
    }
}

void mapper_lora_free(Qwen3Lora *lora) {
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        free(lora->A[mod]), free(lora->B[mod]), free(lora->dA[mod]), free(lora->dB[mod]);
    }
    memset(lora, 0, sizeof *lora);
}

void mapper_lora_select(const MapperConfig *c, const Qwen3Lora *src, int b, Qwen3Lora *dst) {
    mapper_lora_alloc(c, 1, 0, dst);
    dst->scale = src->scale;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        size_t sa = (size_t)c->rank * din, sb = (size_t)dout * c->rank;
        for (int l = 0; l < c->L; l++) {
            memcpy(dst->A[mod] + (size_t)l * sa, src->A[mod] + ((size_t)l * src->nb + b) * sa, sizeof(float) * sa);
            memcpy(dst->B[mod] + (size_t)l * sb, src->B[mod] + ((size_t)l * src->nb + b) * sb, sizeof(float) * sb);
        }
    }
}

// Exact (erf) GELU, as torch.nn.GELU() computes it.
static float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

void mapper_forward(Mapper *mp, const float *H, int nb, int P, Qwen3Lora *lora) {
    const MapperConfig *c = &mp->cfg;
    const int d = c->d, L = c->L, N = c->nbases, r = c->rank;
    const size_t K = mapper_num_coef(c);
    if (nb != mp->nb) {
        free_acts(mp);
        mp->nb = nb;
        mp->mean = xmalloc(sizeof(float) * nb * d);
        mp->h1 = xmalloc(sizeof(float) * nb * d);
        mp->g = xmalloc(sizeof(float) * nb * d);
        mp->coef = xmalloc(sizeof(float) * nb * K);
        mp->dcoef = xmalloc(sizeof(float) * nb * K);
        mp->dg = xmalloc(sizeof(float) * nb * d);
        mp->dmean = xmalloc(sizeof(float) * nb * d);
    }
    const MapperParams *p = &mp->params;
    for (int b = 0; b < nb; b++) {
        float *mb = mp->mean + (size_t)b * d;
        const float *hb = H + (size_t)b * L * P * d;
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int k = 0; k < L * P; k++) s += hb[(size_t)k * d + i];
            mb[i] = (float)(s / (L * P));
        }
    }
    matmul_forward(mp->h1, mp->mean, p->w1, nb, d, d);
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < d; i++) {
            float *h = &mp->h1[(size_t)b * d + i];
            *h += p->b1[i];
            mp->g[(size_t)b * d + i] = gelu(*h);
        }
    matmul_forward(mp->coef, mp->g, p->w2, nb, d, (int)K);
    for (int b = 0; b < nb; b++)
        for (size_t k = 0; k < K; k++) mp->coef[(size_t)b * K + k] += p->b2[k];
    // Mix the bases: A[l, b, mod] = sum_n coef * Abase[mod][n].
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        size_t sa = (size_t)r * din, sb = (size_t)dout * r;
#pragma omp parallel for collapse(2)
        for (int l = 0; l < L; l++)
            for (int b = 0; b < nb; b++) {
                float *A = lora->A[mod] + ((size_t)l * nb + b) * sa;
                float *Bm = lora->B[mod] + ((size_t)l * nb + b) * sb;
                memset(A, 0, sizeof(float) * sa);
                memset(Bm, 0, sizeof(float) * sb);
                const float *cf = mp->coef + (size_t)b * K + ((size_t)(l * LORA_NUM_MODULES + mod) * N) * 2;
                for (int n = 0; n < N; n++) {
                    float ca = cf[2 * n], cb = cf[2 * n + 1];
                    const float *ab = p->abase[mod] + (size_t)n * sa, *bb = p->bbase[mod] + (size_t)n * sb;
                    for (size_t i = 0; i < sa; i++) A[i] += ca * ab[i];
                    for (size_t i = 0; i < sb; i++) Bm[i] += cb * bb[i];
                }
            }
    }
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

void mapper_backward(Mapper *mp, int P, const Qwen3Lora *lora, float *dH) {
    const MapperConfig *c = &mp->cfg;
    const int d = c->d, L = c->L, N = c->nbases, r = c->rank, nb = mp->nb;
    const size_t K = mapper_num_coef(c);
    const MapperParams *p = &mp->params;
    MapperParams *gp = &mp->grads;
    memset(mp->dcoef, 0, sizeof(float) * nb * K);
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&c->icfg, mod, &din, &dout);
        size_t sa = (size_t)r * din, sb = (size_t)dout * r;
        // d coef = <dA, basis>; threads split (layer, example) pairs: each writes its own coefficients.
#pragma omp parallel for collapse(2)
        for (int l = 0; l < L; l++)
            for (int b = 0; b < nb; b++) {
                const float *dA = lora->dA[mod] + ((size_t)l * nb + b) * sa;
                const float *dB = lora->dB[mod] + ((size_t)l * nb + b) * sb;
                float *dc = mp->dcoef + (size_t)b * K + ((size_t)(l * LORA_NUM_MODULES + mod) * N) * 2;
                for (int n = 0; n < N; n++) {
                    dc[2 * n] = (float)dotd(dA, p->abase[mod] + (size_t)n * sa, sa);
                    dc[2 * n + 1] = (float)dotd(dB, p->bbase[mod] + (size_t)n * sb, sb);
                }
            }
        // d basis[n] += sum over (l, b) of coef * dA; threads split the bases.
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            float *ga = gp->abase[mod] + (size_t)n * sa, *gb = gp->bbase[mod] + (size_t)n * sb;
            for (int l = 0; l < L; l++)
                for (int b = 0; b < nb; b++) {
                    const float *cf = mp->coef + (size_t)b * K + ((size_t)(l * LORA_NUM_MODULES + mod) * N) * 2;
                    const float *dA = lora->dA[mod] + ((size_t)l * nb + b) * sa;
                    const float *dB = lora->dB[mod] + ((size_t)l * nb + b) * sb;
                    float ca = cf[2 * n], cb = cf[2 * n + 1];
                    for (size_t i = 0; i < sa; i++) ga[i] += ca * dA[i];
                    for (size_t i = 0; i < sb; i++) gb[i] += cb * dB[i];
                }
        }
    }
    // Through fc2, GELU, fc1 and the mean.
    memset(mp->dg, 0, sizeof(float) * nb * d);
    matmul_backward(mp->dg, gp->w2, mp->dcoef, mp->g, p->w2, nb, d, (int)K);
    for (int b = 0; b < nb; b++)
        for (size_t k = 0; k < K; k++) gp->b2[k] += mp->dcoef[(size_t)b * K + k];
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < d; i++) {
            size_t j = (size_t)b * d + i;
            mp->dg[j] *= gelu_grad(mp->h1[j]);  // now d h1
            gp->b1[i] += mp->dg[j];
        }
    memset(mp->dmean, 0, sizeof(float) * nb * d);
    matmul_backward(mp->dmean, gp->w1, mp->dg, mp->mean, p->w1, nb, d, d);
    float inv = 1.0f / (float)(L * P);
    for (int b = 0; b < nb; b++)
        for (int k = 0; k < L * P; k++)
            for (int i = 0; i < d; i++) dH[((size_t)b * L * P + k) * d + i] = mp->dmean[(size_t)b * d + i] * inv;
}
