// The NCCL communicator: collectives on GPU buffers, bootstrapped over the MPI communicator.
// Built by `make NCCL=1` (needs CUDA and MPI). Run so far with one rank only (the trainer under
// `mpirun -np 1` on one H100, overlapped sums, 2026-11-23), never across GPUs. The GPU trainer
// sums its gradient blocks through it under mpirun (train/train.c, gpu_sync_grads):
//   - one GPU per rank: the device paw_cuda_init chose (PAW_CUDA_DEVICE, else the local rank);
//   - rank 0 makes the NCCL unique id and broadcasts it over MPI;
//   - float collectives take DEVICE pointers and run on the communicator's stream; the host-side
//     operations (bytes, broadcast, barrier) go through MPI;
//   - the watchdog polls the stream and ncclCommGetAsyncError against comm_timeout_s and, on
//     timeout or error, aborts the NCCL communicator and then the MPI job.
// Blocks of unequal size (the balanced split) use grouped ncclReduce/ncclBroadcast, equal blocks
// the native reduce-scatter/all-gather.
//   - the non-blocking operations (gradient reduction overlapped with the backward) are queued on
//     the communicator's stream behind an event recorded on the compute stream, so they read each
//     gradient after the kernels that wrote it and run beside the rest of the backward;
//     paw_comm_wait_all waits for that stream under the watchdog, before the optimizer runs.
#ifdef PAW_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/progress.h"
#include "kernels/cuda_common_cuda.h"
#include "train/comm.h"

typedef struct {
    PawComm *host;  // the MPI communicator (bootstrap, host collectives, abort)
    ncclComm_t nccl;
    cudaStream_t stream;      // communication: every collective runs here
    cudaEvent_t grads_ready;  // recorded on the compute stream before each non-blocking operation
    int inflight;             // non-blocking operations queued since the last wait_all
    int grouped;              // inside paw_comm_group_begin/end: ordered after compute already
    int device;
} NcclState;

// The stream every kernel runs on (kernels/cuda_common_cuda.h).
static cudaStream_t paw_cuda_compute_stream(void) { return (cudaStream_t)paw_cuda_stream_handle(); }

static NcclState *state(PawComm *c) { return c->impl; }

static int nccl_fail(PawComm *c, const char *what, ncclResult_t r) {
    return paw_error("rank %d: %s failed: %s", c->rank, what, ncclGetErrorString(r));
}

// The watchdog: waits for the stream, checking NCCL's asynchronous errors, until the deadline.
static int wait_stream(PawComm *c, const char *what) {
    NcclState *st = state(c);
    double t0 = paw_now();
    for (long spins = 0;; spins++) {
        cudaError_t q = cudaStreamQuery(st->stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) return paw_error("rank %d: %s: %s", c->rank, what, cudaGetErrorString(q));
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(st->nccl, &async);
        if (async != ncclSuccess) {
            fprintf(stderr, "paw: rank %d: %s: NCCL reports %s; aborting the job\n", c->rank, what,
                    ncclGetErrorString(async));
            ncclCommAbort(st->nccl);
            paw_comm_abort(st->host, 3);
        }
        if (spins > 2000) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            if (paw_now() - t0 > c->timeout_s) {
                fprintf(stderr, "paw: rank %d: %s did not complete within %.0f s (comm_timeout_s): another rank died or "
                                "hangs; aborting the job\n", c->rank, what, c->timeout_s);
                ncclCommAbort(st->nccl);
                paw_comm_abort(st->host, 3);
            }
        }
    }
}

static int after_compute(PawComm *c, const char *what);

// A blocking operation inside a group would only be queued there, and its wait would return at
// once: refused.
static int not_grouped(PawComm *c, const char *what) {
    return state(c)->grouped ? paw_error("rank %d: %s inside a group of non-blocking operations", c->rank, what) : 0;
}

static int allreduce(PawComm *c, void *buf, size_t n, ncclDataType_t type) {
    NcclState *st = state(c);
    if (not_grouped(c, "allreduce") != 0 || after_compute(c, "allreduce") != 0) return -1;
    ncclResult_t r = ncclAllReduce(buf, buf, n, type, ncclSum, st->nccl, st->stream);
    return r != ncclSuccess ? nccl_fail(c, "allreduce", r) : wait_stream(c, "allreduce");
}
static int nccl_allreduce_f32(PawComm *c, float *buf, size_t n) { return allreduce(c, buf, n, ncclFloat32); }
static int nccl_allreduce_f64(PawComm *c, double *buf, size_t n) { return allreduce(c, buf, n, ncclFloat64); }
static int nccl_allreduce_bf16(PawComm *c, void *buf, size_t n) { return allreduce(c, buf, n, ncclBfloat16); }

static int equal_counts(const PawComm *c, const size_t *counts) {
    for (int r = 1; r < c->world; r++)
        if (counts[r] != counts[0]) return 0;
    return 1;
}

static int nccl_reduce_scatter(PawComm *c, const float *in, float *out, const size_t *counts) {
    NcclState *st = state(c);
    ncclResult_t r = ncclSuccess;
    if (not_grouped(c, "reduce-scatter") != 0 || after_compute(c, "reduce-scatter") != 0) return -1;
    if (equal_counts(c, counts)) {
        r = ncclReduceScatter(in, out, counts[0], ncclFloat32, ncclSum, st->nccl, st->stream);
    } else {
        size_t off = 0;
        ncclGroupStart();
        for (int k = 0; k < c->world && r == ncclSuccess; k++) {
            r = ncclReduce(in + off, k == c->rank ? out : (float *)in + off, counts[k], ncclFloat32, ncclSum, k, st->nccl,
                           st->stream);
            off += counts[k];
        }
        ncclResult_t g = ncclGroupEnd();
        if (r == ncclSuccess) r = g;
    }
    return r != ncclSuccess ? nccl_fail(c, "reduce-scatter", r) : wait_stream(c, "reduce-scatter");
}

static int nccl_allgather(PawComm *c, float *buf, const size_t *counts) {
    NcclState *st = state(c);
    ncclResult_t r = ncclSuccess;
    if (not_grouped(c, "all-gather") != 0 || after_compute(c, "all-gather") != 0) return -1;
    if (equal_counts(c, counts)) {
        r = ncclAllGather(buf + counts[0] * (size_t)c->rank, buf, counts[0], ncclFloat32, st->nccl, st->stream);
    } else {
        size_t off = 0;
        ncclGroupStart();
        for (int k = 0; k < c->world && r == ncclSuccess; k++) {
            r = ncclBroadcast(buf + off, buf + off, counts[k], ncclFloat32, k, st->nccl, st->stream);
            off += counts[k];
        }
        ncclResult_t g = ncclGroupEnd();
        if (r == ncclSuccess) r = g;
    }
    return r != ncclSuccess ? nccl_fail(c, "all-gather", r) : wait_stream(c, "all-gather");
}

// ---- non-blocking operations --------------------------------------------------------------------

// Orders the communication stream after everything queued so far on the compute stream (once for
// a group, at its start).
static int after_compute(PawComm *c, const char *what) {
    NcclState *st = state(c);
    if (st->grouped) return 0;
    cudaError_t e = cudaEventRecord(st->grads_ready, paw_cuda_compute_stream());
    if (e == cudaSuccess) e = cudaStreamWaitEvent(st->stream, st->grads_ready, 0);
    return e == cudaSuccess ? 0 : paw_error("rank %d: %s: %s", c->rank, what, cudaGetErrorString(e));
}

// A non-blocking operation just queued (r: what NCCL said): counted for wait_all, or its failure.
static int queued(PawComm *c, const char *what, ncclResult_t r) {
    if (r != ncclSuccess) return nccl_fail(c, what, r);
    state(c)->inflight++;
    return 0;
}

static int iallreduce(PawComm *c, void *buf, size_t n, ncclDataType_t type) {
    NcclState *st = state(c);
    if (after_compute(c, "overlapped allreduce") != 0) return -1;
    return queued(c, "overlapped allreduce", ncclAllReduce(buf, buf, n, type, ncclSum, st->nccl, st->stream));
}

static int nccl_iallreduce_f32(PawComm *c, float *buf, size_t n) { return iallreduce(c, buf, n, ncclFloat32); }
static int nccl_iallreduce_bf16(PawComm *c, void *buf, size_t n) { return iallreduce(c, buf, n, ncclBfloat16); }

static int nccl_ireduce(PawComm *c, void *buf, size_t n, int bf16, int root) {
    NcclState *st = state(c);
    if (after_compute(c, "overlapped reduce") != 0) return -1;
    return queued(c, "overlapped reduce",
                  ncclReduce(buf, buf, n, bf16 ? ncclBfloat16 : ncclFloat32, ncclSum, root, st->nccl, st->stream));
}

static int nccl_ibroadcast(PawComm *c, void *buf, size_t bytes, int root) {
    NcclState *st = state(c);
    if (after_compute(c, "overlapped broadcast") != 0) return -1;
    return queued(c, "overlapped broadcast", ncclBroadcast(buf, buf, bytes, ncclUint8, root, st->nccl, st->stream));
}

// One grouped ncclReduce per shard piece of [a, b), in place at its owner.
static int nccl_ireduce_shards_f32(PawComm *c, float *buf, size_t n, size_t a, size_t b) {
    NcclState *st = state(c);
    if (after_compute(c, "overlapped reduce") != 0) return -1;
    ncclResult_t r = ncclGroupStart();
    for (int owner = 0; owner < c->world && r == ncclSuccess; owner++) {
        size_t lo = paw_shard_begin(n, c->world, owner), hi = paw_shard_begin(n, c->world, owner + 1);
        if (lo < a) lo = a;
        if (hi > b) hi = b;
        if (lo < hi) r = ncclReduce(buf + lo, buf + lo, hi - lo, ncclFloat32, ncclSum, owner, st->nccl, st->stream);
    }
    ncclResult_t g = ncclGroupEnd();
    return queued(c, "overlapped reduce", r == ncclSuccess ? g : r);
}

static int nccl_group_begin(PawComm *c) {
    NcclState *st = state(c);
    if (st->grouped) return paw_error("rank %d: NCCL groups do not nest here", c->rank);
    if (after_compute(c, "grouped operations") != 0) return -1;
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return nccl_fail(c, "group start", r);
    st->grouped = 1;
    return 0;
}

static int nccl_group_end(PawComm *c) {
    NcclState *st = state(c);
    if (!st->grouped) return paw_error("rank %d: NCCL group end without a start", c->rank);
    st->grouped = 0;
    ncclResult_t r = ncclGroupEnd();
    return r != ncclSuccess ? nccl_fail(c, "grouped operations", r) : 0;
}

// NCCL moves its operations by itself; only its asynchronous errors are worth a look here.
static int nccl_progress(PawComm *c) {
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(state(c)->nccl, &async);
    return async == ncclSuccess || async == ncclInProgress ? 0 : nccl_fail(c, "overlapped reduction", async);
}

// The host returns only once the communication stream is done, so the optimizer kernels queued
// after this on the compute stream see the reduced gradients.
static int nccl_wait_all(PawComm *c) {
    NcclState *st = state(c);
    if (not_grouped(c, "wait for the operations in flight") != 0) return -1;
    if (!st->inflight) return 0;
    st->inflight = 0;
    return wait_stream(c, "overlapped gradient reduction");
}

static int host_allgather_bytes(PawComm *c, const void *mine, void *all, size_t bytes) {
    return paw_allgather_bytes(state(c)->host, mine, all, bytes);
}
static int host_broadcast(PawComm *c, void *buf, size_t bytes, int root) { return paw_broadcast(state(c)->host, buf, bytes, root); }
static int host_barrier(PawComm *c) { return paw_barrier(state(c)->host); }
static void nccl_abort(PawComm *c, int code) {
    ncclCommAbort(state(c)->nccl);
    paw_comm_abort(state(c)->host, code);
}
static void nccl_finalize(PawComm *c) {
    NcclState *st = state(c);
    if (!st) return;
    ncclCommDestroy(st->nccl);
    cudaEventDestroy(st->grads_ready);
    cudaStreamDestroy(st->stream);
    free(st);  // the host communicator is the caller's
    c->impl = NULL;
}

static const PawCommOps nccl_ops = {"nccl", nccl_allreduce_f32, nccl_allreduce_f64, nccl_reduce_scatter, nccl_allgather,
                                    host_allgather_bytes, host_broadcast, host_barrier, nccl_abort, nccl_finalize,
                                    nccl_iallreduce_f32, nccl_ireduce_shards_f32, nccl_progress, nccl_wait_all,
                                    nccl_allreduce_bf16, nccl_iallreduce_bf16, nccl_ireduce, nccl_ibroadcast,
                                    nccl_group_begin, nccl_group_end};

PawComm *paw_comm_nccl_open(PawComm *host) {
    // NCCL runs on the device the kernels use (paw_cuda_init's choice: PAW_CUDA_DEVICE, else the
    // local rank modulo the GPU count); choosing another here would split the compute stream and
    // the communication stream across GPUs.
    int local = -1;
    if (paw_cuda_init() != 0) return NULL;
    if (cudaGetDevice(&local) != cudaSuccess) {
        paw_error("rank %d: no current CUDA device for NCCL", host->rank);
        return NULL;
    }
    NcclState *st = xcalloc(1, sizeof *st);
    st->host = host;
    st->device = local;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = ncclSuccess;
    if (cudaSetDevice(local) != cudaSuccess || cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking) != cudaSuccess) {
        paw_error("rank %d: cannot use GPU %d", host->rank, local);
        free(st);
        return NULL;
    }
    if (cudaEventCreateWithFlags(&st->grads_ready, cudaEventDisableTiming) != cudaSuccess) {
        paw_error("rank %d: cannot create a CUDA event on GPU %d", host->rank, local);
        cudaStreamDestroy(st->stream);
        free(st);
        return NULL;
    }
    if (host->rank == 0) r = ncclGetUniqueId(&id);
    // Every rank takes part in the broadcast, even if rank 0 failed, so nobody waits for nothing.
    int ok = r == ncclSuccess;
    if (paw_broadcast(host, &ok, sizeof ok, 0) != 0 || !ok || paw_broadcast(host, &id, sizeof id, 0) != 0 ||
        (r = ncclCommInitRank(&st->nccl, host->world, id, host->rank)) != ncclSuccess) {
        if (!ok) paw_error("rank %d: rank 0 could not make the NCCL unique id", host->rank);
        if (r != ncclSuccess)
            paw_error("rank %d: NCCL initialisation on GPU %d failed: %s (NCCL needs one GPU per rank: check "
                      "PAW_CUDA_DEVICE and the GPU count per node)", host->rank, local, ncclGetErrorString(r));
        cudaEventDestroy(st->grads_ready);
        cudaStreamDestroy(st->stream);
        free(st);
        return NULL;
    }
    PawComm *c = xcalloc(1, sizeof *c);
    c->ops = &nccl_ops;
    c->rank = host->rank, c->world = host->world, c->timeout_s = host->timeout_s;
    c->impl = st;
    return c;
}

#else
// Built without NCCL (`make NCCL=1` builds it).
typedef int paw_comm_nccl_unused;
#endif
