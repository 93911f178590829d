#include "train/grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void grad_sync_init(GradSync *gs, PawComm *comm, const TrainParam *params, int nparams, int sharded) {
    memset(gs, 0, sizeof *gs);
    gs->comm = comm;
    gs->params = params;
    gs->nparams = nparams;
    gs->sharded = sharded;
}

void grad_sync_free(GradSync *gs) {
    free(gs->ranges), free(gs->buckets), free(gs->ready);
    memset(gs, 0, sizeof *gs);
}

void grad_sync_add_bucket(GradSync *gs, int group, const GradRange *ranges, int n) {
    if (gs->nranges + n > gs->ranges_cap) {
        gs->ranges_cap = 2 * (gs->nranges + n) + 16;
        gs->ranges = xrealloc(gs->ranges, sizeof(GradRange) * (size_t)gs->ranges_cap);
    }
    if (gs->nbuckets == gs->buckets_cap) {
        gs->buckets_cap = 2 * gs->buckets_cap + 16;
        gs->buckets = xrealloc(gs->buckets, sizeof(GradBucket) * (size_t)gs->buckets_cap);
        gs->ready = xrealloc(gs->ready, sizeof(int) * (size_t)gs->buckets_cap);
    }
    memcpy(gs->ranges + gs->nranges, ranges, sizeof(GradRange) * (size_t)n);
    gs->buckets[gs->nbuckets] = (GradBucket){group, gs->nranges, n};
    gs->ready[gs->nbuckets++] = 0;
    gs->nranges += n;
}

void grad_sync_add_qwen3(GradSync *gs, int param, const Qwen3 *m) {
    const Qwen3Config *cfg = &m->cfg;
    const int L = cfg->num_layers;
    GradRange r[QWEN3_NUM_PARAMS];
    Qwen3Params grads = m->grads;
    // Where tensor i starts in the flat gradient (the layout is qwen3.c's business).
#define START(i) ((size_t)(*qwen3_param_slot(&grads, i) - m->grads_memory))
    int n = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        if (!info.per_layer && i != 0 && info.numel > 0) r[n++] = (GradRange){param, START(i), info.numel};
    }
    grad_sync_add_bucket(gs, QWEN3_GRADS_HEAD, r, n);
    for (int l = L - 1; l >= 0; l--) {
        n = 0;
        for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(cfg, i);
            size_t per = info.numel / (size_t)L;
            if (info.per_layer) r[n++] = (GradRange){param, START(i) + (size_t)l * per, per};
        }
        grad_sync_add_bucket(gs, l, r, n);
    }
    r[0] = (GradRange){param, START(0), qwen3_param_info(cfg, 0).numel};
    grad_sync_add_bucket(gs, QWEN3_GRADS_EMBED, r, 1);
#undef START
}

static int cmp_range(const void *a, const void *b) {
    const GradRange *x = a, *y = b;
    if (x->param != y->param) return x->param < y->param ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

int grad_sync_check(const GradSync *gs) {
    GradRange *s = xmalloc(sizeof(GradRange) * (size_t)(gs->nranges + 1));
    memcpy(s, gs->ranges, sizeof(GradRange) * (size_t)gs->nranges);
    qsort(s, (size_t)gs->nranges, sizeof *s, cmp_range);
    int rc = 0, k = 0;
    for (int p = 0; p < gs->nparams && rc == 0; p++) {
        size_t covered = 0;
        for (; k < gs->nranges && s[k].param == p && rc == 0; k++) {
            if (s[k].off != covered)
                rc = paw_error("gradient buckets of %s: element %zu is %s", gs->params[p].name, covered,
                               s[k].off > covered ? "in no bucket" : "in two buckets");
            covered = s[k].off + s[k].n;
        }
        if (rc == 0 && covered != gs->params[p].n)
            rc = paw_error("gradient buckets of %s cover %zu of its %zu elements", gs->params[p].name, covered,
                           gs->params[p].n);
    }
    if (rc == 0 && k != gs->nranges) rc = paw_error("gradient buckets name a tensor that is not trained");
    free(s);
    return rc;
}

void grad_sync_begin(GradSync *gs) {
    memset(gs->ready, 0, sizeof(int) * (size_t)gs->nbuckets);
    gs->next = 0;
    gs->started_by_reports = 0;
    gs->rc = 0;
    gs->active = 1;
}

static int start_bucket(GradSync *gs, const GradBucket *b) {
    for (int i = 0; i < b->count; i++) {
        const GradRange *r = &gs->ranges[b->first + i];
        const TrainParam *p = &gs->params[r->param];
        int rc = gs->sharded ? paw_ireduce_shards_f32(gs->comm, p->g, p->n, r->off, r->off + r->n)
                             : paw_iallreduce_f32(gs->comm, p->g + r->off, r->n);
        if (rc != 0) return -1;
    }
    return 0;
}

// Starts the ready buckets at the head of the order.
static void start_ready(GradSync *gs) {
    while (gs->rc == 0 && gs->next < gs->nbuckets && gs->ready[gs->next])
        gs->rc = start_bucket(gs, &gs->buckets[gs->next++]);
}

void grad_sync_ready(void *ctx, int group) {
    GradSync *gs = ctx;
    if (!gs->active) return;
    for (int b = 0; b < gs->nbuckets; b++)
        if (gs->buckets[b].group == group) gs->ready[b] = 1;
    start_ready(gs);
    gs->started_by_reports = gs->next;
    if (gs->rc == 0) gs->rc = paw_comm_progress(gs->comm);
}

int grad_sync_finish(GradSync *gs) {
    for (int b = 0; b < gs->nbuckets; b++) gs->ready[b] = 1;
    start_ready(gs);
    gs->active = 0;
    int rc = gs->rc;
    // Started operations are completed even after a failure, so that none outlives its buffers.
    if (paw_comm_wait_all(gs->comm) != 0 && rc == 0) rc = -1;
    return rc;
}
