#include "model/qwen3_cuda_layout.h"

#include <string.h>

static const int MEMORY_ORDER[QG_NUM] = {QG_WTE, QG_HEAD, QG_LN1, QG_QN, QG_KN, QG_LN2, QG_LNF,
                                         QG_QKV, QG_O,    QG_GU,  QG_DOWN};

void qwen3_dev_layout(Qwen3DevLayout *lay, const Qwen3Config *c) {
    memset(lay, 0, sizeof *lay);
    size_t C = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, L = (size_t)c->num_layers;
    size_t V = (size_t)c->vocab_size, HD = (size_t)c->head_dim;
    size_t Q = (size_t)c->num_heads * HD, KV = (size_t)c->num_kv_heads * HD, QKV = Q + 2 * KV;
    lay->C = C, lay->I = I, lay->L = L, lay->V = V, lay->HD = HD, lay->Q = Q, lay->KV = KV, lay->QKV = QKV;
    size_t sizes[QG_NUM] = {V * C, L * C, L * QKV * C, L * HD, L * HD, L * C * Q, L * C, L * 2 * I * C, L * C * I,
                            C, c->tie_word_embeddings ? 0 : V * C};
    size_t off = 0;
    for (int k = 0; k < QG_NUM; k++) {
        int g = MEMORY_ORDER[k];
        if (g == QG_QKV) lay->split = off;
        lay->base[g] = off;
        lay->extent[g] = (sizes[g] + 127) / 128 * 128;
        off += lay->extent[g];
    }
    lay->total = off;
    lay->tied = c->tie_word_embeddings != 0;
    if (c->tie_word_embeddings) lay->base[QG_HEAD] = lay->base[QG_WTE];  // extent 0: nothing of its own
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) lay->cpu_total += qwen3_param_info(c, i).numel;
}

size_t qwen3_dev_offset(const Qwen3DevLayout *lay, int i, int l) {
    size_t C = lay->C, I = lay->I, HD = lay->HD, Q = lay->Q, KV = lay->KV, QKV = lay->QKV, L = (size_t)l;
    switch (i) {
    case 0: return lay->base[QG_WTE];
    case 1: return lay->base[QG_LN1] + L * C;
    case 2: return lay->base[QG_QKV] + L * QKV * C;
    case 3: return lay->base[QG_QKV] + L * QKV * C + Q * C;
    case 4: return lay->base[QG_QKV] + L * QKV * C + (Q + KV) * C;
    case 5: return lay->base[QG_QN] + L * HD;
    case 6: return lay->base[QG_KN] + L * HD;
    case 7: return lay->base[QG_O] + L * C * Q;
    case 8: return lay->base[QG_LN2] + L * C;
    case 9: return lay->base[QG_GU] + L * 2 * I * C;
    case 10: return lay->base[QG_GU] + L * 2 * I * C + I * C;
    case 11: return lay->base[QG_DOWN] + L * C * I;
    case 12: return lay->base[QG_LNF];
    default: return lay->base[QG_HEAD];
    }
}

int qwen3_dev_group(int i) {
    static const int group[QWEN3_NUM_PARAMS] = {QG_WTE, QG_LN1, QG_QKV, QG_QKV, QG_QKV, QG_QN,  QG_KN,
                                                QG_O,   QG_LN2, QG_GU,  QG_GU,  QG_DOWN, QG_LNF, QG_HEAD};
    return i >= 0 && i < QWEN3_NUM_PARAMS ? group[i] : -1;
}

int qwen3_dev_is_matrix_group(int g) { return g == QG_QKV || g == QG_O || g == QG_GU || g == QG_DOWN; }
int qwen3_dev_is_norm_group(int g) { return g == QG_LN1 || g == QG_QN || g == QG_KN || g == QG_LN2 || g == QG_LNF; }

// Elements of CPU tensor i in one layer (or in all of it when it is not per layer), and its layer count.
static size_t per_layer_numel(const Qwen3DevLayout *lay, int i, size_t *layers) {
    size_t C = lay->C, I = lay->I, HD = lay->HD, Q = lay->Q, KV = lay->KV;
    *layers = (i >= 1 && i <= 11) ? lay->L : 1;
    switch (i) {
    case 0: return lay->V * C;
    case 1: case 8: case 12: return C;
    case 2: case 7: return Q * C;
    case 3: case 4: return KV * C;
    case 5: case 6: return HD;
    case 9: case 10: case 11: return I * C;
    default: return lay->tied ? 0 : lay->V * C;
    }
}

int qwen3_dev_runs(const Qwen3DevLayout *lay, size_t lo, size_t hi, Qwen3DevRun *out, int cap) {
    if (lo > hi || hi > lay->cpu_total) return -1;
    int count = 0;
    Qwen3DevRun last = {0, 0, 0, -1};
    size_t cpu = 0, layers;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        size_t per = per_layer_numel(lay, i, &layers);
        for (size_t l = 0; l < layers && per; l++, cpu += per) {
            size_t a = cpu > lo ? cpu : lo, b = cpu + per < hi ? cpu + per : hi;
            if (a >= b) continue;
            Qwen3DevRun r = {a, qwen3_dev_offset(lay, i, (int)l) + (a - cpu), b - a, qwen3_dev_group(i)};
            if (last.n && last.group == r.group && last.cpu + last.n == r.cpu && last.dev + last.n == r.dev) {
                last.n += r.n;
                continue;
            }
            if (last.n && out && count < cap) out[count] = last;
            count += last.n != 0;
            last = r;
        }
    }
    if (last.n && out && count < cap) out[count] = last;
    return count + (last.n != 0);
}

int qwen3_dev_report_slices(const Qwen3DevLayout *lay, int report, Qwen3DevSlice out[8]) {
    int k = 0;
    size_t C = lay->C, I = lay->I, Q = lay->Q, QKV = lay->QKV, HD = lay->HD;
#define SLICE(grp, off, count)                                                        \
    do {                                                                              \
        if ((count) != 0) out[k++] = (Qwen3DevSlice){lay->base[grp] + (off), (count), grp}; \
    } while (0)
    if (report == QWEN3_GRADS_HEAD) {
        SLICE(QG_LNF, 0, C);
        if (!lay->tied) SLICE(QG_HEAD, 0, lay->V * C);
    } else if (report == QWEN3_GRADS_EMBED) {
        SLICE(QG_WTE, 0, lay->V * C);
    } else if (report >= 0 && (size_t)report < lay->L) {
        size_t l = (size_t)report;
        SLICE(QG_LN1, l * C, C);
        SLICE(QG_QKV, l * QKV * C, QKV * C);
        SLICE(QG_QN, l * HD, HD);
        SLICE(QG_KN, l * HD, HD);
        SLICE(QG_O, l * C * Q, C * Q);
        SLICE(QG_LN2, l * C, C);
        SLICE(QG_GU, l * 2 * I * C, 2 * I * C);
        SLICE(QG_DOWN, l * C * I, C * I);
    }
#undef SLICE
    return k;
}
