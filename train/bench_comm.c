// `paw bench comm`: the collectives of train/comm.h, each one's result checked exactly and its
// time measured, under mpirun (or in one process). Every rank fills its buffer with small
// integers, whose fp32 sums are exact, so any lost, doubled or misplaced element fails the
// check. Bandwidth is reported as nccl-tests does: the algorithm bandwidth (bytes per rank over
// time) and the bus bandwidth (times 2(W-1)/W for an allreduce, (W-1)/W for the others), which
// is what compares with a link's speed. --device cuda runs them on device buffers through NCCL
// (a `make NCCL=1` build, one GPU per rank): the transport of the GPU trainer.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/error.h"
#include "common/progress.h"
#include "train/comm.h"
#ifdef PAW_NCCL
#include "kernels/cuda_common_cuda.h"
#endif

int bench_comm(int argc, char **argv);

enum { OP_ALLREDUCE, OP_REDUCE_SCATTER, OP_ALLGATHER, OP_REDUCE_OWNERS, OP_BCAST_OWNERS, OP_COUNT };
static const char *const OP_NAMES[OP_COUNT] = {"allreduce", "reduce-scatter", "all-gather",
                                               "reduce to block owners (ZeRO-1 GPU)",
                                               "broadcast from block owners (ZeRO-1 GPU)"};

typedef struct {
    PawComm *c;       // the communicator measured
    PawComm *host;    // host-side agreement (the same one, or MPI under NCCL)
    int cuda;         // buf is device memory
    float *buf, *h;   // the buffer, and its host image for filling and checking
    size_t n, *counts, *offs;
} Bench;

// What rank r puts at element i, and what the sum over all ranks is there.
static float value(int r, size_t i) { return (float)((i % 7) + 1 + (size_t)r); }
static float sum_value(int world, size_t i) { return (float)(world * (int)((i % 7) + 1) + world * (world - 1) / 2); }

// Every element, or only this rank's block (gather inputs: the others hold -1).
static void fill(Bench *b, int own_block_only) {
    int r = b->c->rank;
    for (size_t i = 0; i < b->n; i++) b->h[i] = value(r, i);
    if (own_block_only)
        for (size_t i = 0; i < b->n; i++)
            if (i < b->offs[r] || i >= b->offs[r] + b->counts[r]) b->h[i] = -1.0f;
#ifdef PAW_NCCL
    if (b->cuda) paw_cuda_upload(b->buf, b->h, sizeof(float) * b->n);
#endif
}

static int run_op(Bench *b, int op) {
    PawComm *c = b->c;
    switch (op) {
    case OP_ALLREDUCE: return paw_allreduce_f32(c, b->buf, b->n);
    case OP_REDUCE_SCATTER: return paw_reduce_scatter_f32(c, b->buf, b->buf + b->offs[c->rank], b->counts);
    case OP_ALLGATHER: return paw_allgather_f32(c, b->buf, b->counts);
    case OP_REDUCE_OWNERS:
    case OP_BCAST_OWNERS: {  // grouped, as the trainer issues its runs
        if (paw_comm_group_begin(c) != 0) return -1;
        int rc = 0;
        for (int q = 0; q < c->world && rc == 0; q++)
            rc = op == OP_REDUCE_OWNERS ? paw_ireduce(c, b->buf + b->offs[q], b->counts[q], 0, q)
                                        : paw_ibroadcast(c, b->buf + b->offs[q], sizeof(float) * b->counts[q], q);
        if (paw_comm_group_end(c) != 0 || rc != 0) return -1;
        return paw_comm_wait_all(c);
    }
    }
    return -1;
}

// Elements that differ from what the operation must leave on this rank.
static size_t check(Bench *b, int op) {
#ifdef PAW_NCCL
    if (b->cuda) paw_cuda_download(b->h, b->buf, sizeof(float) * b->n);
#endif
    int r = b->c->rank, W = b->c->world;
    size_t lo = b->offs[r], hi = lo + b->counts[r], bad = 0;
    for (size_t i = 0; i < b->n; i++) {
        int mine = i >= lo && i < hi, owner = 0;
        while (owner + 1 < W && i >= b->offs[owner + 1]) owner++;
        float want;
        switch (op) {
        case OP_ALLREDUCE: want = sum_value(W, i); break;
        case OP_REDUCE_SCATTER:
        case OP_REDUCE_OWNERS:
            if (!mine) continue;  // the other blocks are the backend's business
            want = sum_value(W, i);
            break;
        default: want = value(owner, i); break;  // the gathers: every block from its owner
        }
        bad += b->h[i] != want;
    }
    return bad;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_comm(int argc, char **argv) {
    float mib = 64;
    int iters = 5;
    const char *device = "cpu";
    PawOpt opts[] = {
        {"mib", PAW_OPT_FLOAT, &mib, "buffer size per rank, MiB of fp32"},
        {"iters", PAW_OPT_INT, &iters, "timed repetitions of each operation (median reported), after one untimed"},
        {"device", PAW_OPT_STR, &device, "cpu (MPI on host buffers) or cuda (NCCL on device buffers; make NCCL=1)"},
    };
    PawCommandSpec spec = {"paw bench comm [--mib N] [--iters K] [--device cpu|cuda]   (mpirun -np N paw bench comm)",
                           "Runs each collective of the trainer's communicator, checks every element of its result on "
                           "every rank, and prints the median time with the algorithm and bus bandwidth (the "
                           "nccl-tests convention). Exits 1 when any rank saw a wrong element.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!(mib > 0) || mib > 16384 || iters < 1) {
        fprintf(stderr, "paw bench comm: --mib must be in (0, 16384] and --iters >= 1\n");
        return 2;
    }
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "paw bench comm: --device %s: expected cpu or cuda\n", device);
        return 2;
    }
    Bench b;
    memset(&b, 0, sizeof b);
    b.cuda = !strcmp(device, "cuda");
#ifndef PAW_NCCL
    if (b.cuda) {
        fprintf(stderr, "paw bench comm: --device cuda needs a build with NCCL (make NCCL=1)\n");
        return 2;
    }
#endif
    b.host = paw_comm_open(NULL, NULL, 120);
    if (!b.host) {
        fprintf(stderr, "paw bench comm: %s\n", paw_last_error());
        return 1;
    }
    b.c = b.host;
#ifdef PAW_NCCL
    if (b.cuda && !(b.c = paw_comm_nccl_open(b.host))) {
        fprintf(stderr, "paw bench comm: %s\n", paw_last_error());
        paw_comm_close(b.host);
        return 1;
    }
#endif
    int W = b.c->world, rank0 = b.c->rank == 0;
    b.n = (size_t)(mib * 1048576.0 / sizeof(float));
    if (b.n < (size_t)W) b.n = (size_t)W;
    b.counts = xmalloc(sizeof(size_t) * (size_t)W);
    b.offs = xmalloc(sizeof(size_t) * (size_t)W);
    paw_shard_counts(b.n, W, b.counts);
    for (int q = 0; q < W; q++) b.offs[q] = paw_shard_begin(b.n, W, q);
    b.h = xmalloc(sizeof(float) * b.n);
    b.buf = b.h;
#ifdef PAW_NCCL
    if (b.cuda) b.buf = paw_cuda_malloc(sizeof(float) * b.n);
#endif
    if (rank0)
        printf("paw bench comm: %d rank%s, %s, %.1f MiB of fp32 per rank, median of %d\n"
               "| operation | ms | algorithm GB/s | bus GB/s | elements wrong (all ranks) |\n|---|---|---|---|---|\n",
               W, W > 1 ? "s" : "", b.cuda ? "NCCL on device buffers" : b.c->ops->name[0] == 'm' ? "MPI on host buffers"
                                                                                               : "one process",
               b.n * sizeof(float) / 1048576.0, iters);
    double *times = xmalloc(sizeof(double) * (size_t)iters), total_bad = 0;
    for (int op = 0; op < OP_COUNT && rc == 0; op++) {
        double bad = 0;
        for (int it = -1; it < iters && rc == 0; it++) {
            fill(&b, op == OP_ALLGATHER || op == OP_BCAST_OWNERS);
            if ((rc = paw_barrier(b.host)) != 0) break;
            double t0 = paw_now();
            rc = run_op(&b, op);
            double dt = paw_now() - t0;  // the blocking operations and wait_all return once done
            if (it >= 0) times[it] = dt;
            if (rc == 0) bad += (double)check(&b, op);
        }
        if (rc != 0 || (rc = paw_allreduce_f64(b.host, &bad, 1)) != 0) break;
        total_bad += bad;
        qsort(times, (size_t)iters, sizeof(double), cmp_double);
        double t = times[iters / 2], alg = b.n * sizeof(float) / t / 1e9;
        double factor = op == OP_ALLREDUCE ? 2.0 * (W - 1) / W : (double)(W - 1) / W;
        if (rank0) printf("| %s | %.3f | %.2f | %.2f | %.0f |\n", OP_NAMES[op], 1e3 * t, alg, alg * factor, bad);
    }
    if (rc != 0) fprintf(stderr, "paw bench comm: rank %d: %s\n", b.c->rank, paw_last_error());
    else if (rank0 && total_bad == 0) printf("every element of every result checked on every rank: all correct\n");
    else if (rank0) printf("WRONG RESULTS: %.0f elements differ from the expected sums and copies\n", total_bad);
#ifdef PAW_NCCL
    if (b.cuda) paw_cuda_free(b.buf);
#endif
    if (b.c != b.host) paw_comm_close(b.c);
    paw_comm_close(b.host);
    free(b.h), free(b.counts), free(b.offs), free(times);
    return rc != 0 || total_bad != 0 ? 1 : 0;
}
