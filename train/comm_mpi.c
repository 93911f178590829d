// The MPI communicator (OpenMPI, CPU buffers). Collectives are started non-blocking and polled
// against a deadline: that is the watchdog that turns a dead or hung rank into a bounded, named
// exit instead of a hang. Errors are returned (MPI_ERRORS_RETURN), not fatal inside MPI.
#ifdef PAW_MPI

#include <limits.h>
#include <mpi.h>
#if defined(OPEN_MPI) && OPEN_MPI
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "train/comm.h"

// To name a rank that hangs, every rank tells rank 0 which collective it has reached (a tiny
// message per collective); rank 0 reads them as they come and, when a collective times out, names
// the ranks that never arrived. Other ranks wait a little longer than rank 0 so that it speaks first.
#define ARRIVAL_TAG 30571
#define ARRIVAL_RING 1024

typedef struct {
    long seq;                  // collectives entered by this rank
    long ring[ARRIVAL_RING];   // send buffers of the arrival messages (rank != 0)
    long *seen;                // rank 0: the last collective each rank reported
    MPI_Request *inflight;     // started non-blocking operations not yet complete
    const char **inflight_what;
    int ninflight, inflight_cap;
} MpiState;

static void drain_arrivals(PawComm *c) {
    MpiState *st = c->impl;
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, ARRIVAL_TAG, MPI_COMM_WORLD, &flag, &status) != MPI_SUCCESS || !flag) return;
        long v;
        if (MPI_Recv(&v, 1, MPI_LONG, status.MPI_SOURCE, ARRIVAL_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
        if (v > st->seen[status.MPI_SOURCE]) st->seen[status.MPI_SOURCE] = v;
    }
}

static void note_arrival(PawComm *c) {
    MpiState *st = c->impl;
    st->seq++;
    if (c->rank == 0) {
        st->seen[0] = st->seq;
        drain_arrivals(c);
        return;
    }
    long *buf = &st->ring[st->seq % ARRIVAL_RING];
    *buf = st->seq;
    MPI_Request req;
    if (MPI_Isend(buf, 1, MPI_LONG, 0, ARRIVAL_TAG, MPI_COMM_WORLD, &req) == MPI_SUCCESS) MPI_Request_free(&req);
}

static int fail(PawComm *c, const char *what, int code) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", code);
    return paw_error("rank %d: %s failed: %s", c->rank, what, msg);
}

static void die_timed_out(PawComm *c, const char *what, double waited) {
    MpiState *st = c->impl;
    char names[256] = "";
    if (c->rank == 0) {
        drain_arrivals(c);
        size_t k = 0;
        for (int r = 1; r < c->world && k + 16 < sizeof names; r++)
            if (st->seen[r] < st->seq) k += (size_t)snprintf(names + k, sizeof names - k, "%s%d", k ? ", " : "", r);
    }
    if (names[0])
        fprintf(stderr, "paw: rank(s) %s did not reach collective #%ld (%s) within %.0f s (comm_timeout_s): they died "
                        "or hang; aborting the job\n", names, st->seq, what, waited);
    else if (c->rank == 0)
        fprintf(stderr, "paw: rank 0: %s did not complete within %.0f s (comm_timeout_s): another rank died or hangs; "
                        "aborting the job\n", what, waited);
    else
        fprintf(stderr, "paw: rank %d: %s did not complete within %.0f s (comm_timeout_s) and rank 0 did not end the "
                        "job first: rank 0 died or hangs; aborting the job\n", c->rank, what, waited);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}

// Polls a request until done or the deadline: spins briefly (collectives are usually quick once
// every rank has arrived), then sleeps 100 us between tests so a waiting rank leaves its core to
// the ranks still computing.
static int wait_done(PawComm *c, MPI_Request *req, const char *what) {
    double t0 = MPI_Wtime(), limit = c->rank == 0 ? c->timeout_s : c->timeout_s + 5;
    for (long spins = 0;; spins++) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return fail(c, what, rc);
        if (done) return 0;
        if (spins > 2000) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            double waited = MPI_Wtime() - t0;
            if (waited > limit) die_timed_out(c, what, waited);
        }
    }
}

static int mpi_allreduce(PawComm *c, void *buf, size_t n, MPI_Datatype type, size_t elem, const char *what) {
    size_t chunk = paw_comm_chunk_elems();
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Request req;
        note_arrival(c);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * elem, cnt, type, MPI_SUM, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return fail(c, what, rc);
        if (wait_done(c, &req, what) != 0) return -1;
    }
    return 0;
}
static int mpi_allreduce_f32(PawComm *c, float *buf, size_t n) { return mpi_allreduce(c, buf, n, MPI_FLOAT, 4, "allreduce"); }
static int mpi_allreduce_f64(PawComm *c, double *buf, size_t n) { return mpi_allreduce(c, buf, n, MPI_DOUBLE, 8, "allreduce"); }

static int ireduce_to(PawComm *c, const float *send, float *recv, size_t n, int root, const char *what);
static int ibcast(PawComm *c, void *buf, size_t bytes, int root, const char *what);
static int mpi_wait_all(PawComm *c);

// Each block reduced to its owner, then all waited for. Measured with `paw bench comm` (2 ranks,
// 64 MiB): 85 ms where MPI_Ireduce_scatter took 255, and no staging copy.
static int mpi_reduce_scatter(PawComm *c, const float *in, float *out, const size_t *counts) {
    size_t off = 0;
    for (int q = 0; q < c->world; q++) {
        if (ireduce_to(c, in + off, q == c->rank ? out : NULL, counts[q], q, "reduce-scatter") != 0) return -1;
        off += counts[q];
    }
    return mpi_wait_all(c);
}

// Each block broadcast from its owner: 40-60 ms where MPI_Iallgatherv took 115 (same bench).
static int mpi_allgather(PawComm *c, float *buf, const size_t *counts) {
    size_t off = 0;
    for (int q = 0; q < c->world; q++) {
        if (ibcast(c, buf + off, sizeof(float) * counts[q], q, "all-gather") != 0) return -1;
        off += counts[q];
    }
    return mpi_wait_all(c);
}

static int mpi_allgather_bytes(PawComm *c, const void *mine, void *all, size_t bytes) {
    if (bytes > INT_MAX) return paw_error("all-gather of %zu bytes per rank: too large", bytes);
    MPI_Request req;
    note_arrival(c);
    int rc = MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &req);
    return rc != MPI_SUCCESS ? fail(c, "all-gather", rc) : wait_done(c, &req, "all-gather");
}

static int mpi_broadcast(PawComm *c, void *buf, size_t bytes, int root) {
    if (bytes > INT_MAX) return paw_error("broadcast of %zu bytes: too large", bytes);
    MPI_Request req;
    note_arrival(c);
    int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req);
    return rc != MPI_SUCCESS ? fail(c, "broadcast", rc) : wait_done(c, &req, "broadcast");
}

static int mpi_barrier(PawComm *c) {
    MPI_Request req;
    note_arrival(c);
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
    return rc != MPI_SUCCESS ? fail(c, "barrier", rc) : wait_done(c, &req, "barrier");
}

// ---- non-blocking operations --------------------------------------------------------------------

static void inflight_push(PawComm *c, MPI_Request req, const char *what) {
    MpiState *st = c->impl;
    if (st->ninflight == st->inflight_cap) {
        st->inflight_cap = st->inflight_cap ? 2 * st->inflight_cap : 64;
        st->inflight = xrealloc(st->inflight, sizeof(MPI_Request) * (size_t)st->inflight_cap);
        st->inflight_what = xrealloc(st->inflight_what, sizeof(char *) * (size_t)st->inflight_cap);
    }
    st->inflight[st->ninflight] = req;
    st->inflight_what[st->ninflight++] = what;
}

// Tests every operation in flight once (which is what moves them forward) and drops the
// completed ones, keeping the others in starting order.
static int inflight_test(PawComm *c) {
    MpiState *st = c->impl;
    int kept = 0, rc = 0;
    for (int i = 0; i < st->ninflight; i++) {
        int done = 0;
        if (rc == 0) {
            int mrc = MPI_Test(&st->inflight[i], &done, MPI_STATUS_IGNORE);
            if (mrc != MPI_SUCCESS) rc = fail(c, st->inflight_what[i], mrc);
        }
        if (!done) {
            st->inflight[kept] = st->inflight[i];
            st->inflight_what[kept++] = st->inflight_what[i];
        }
    }
    st->ninflight = kept;
    return rc;
}

static int mpi_iallreduce_f32(PawComm *c, float *buf, size_t n) {
    size_t chunk = paw_comm_chunk_elems();
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Request req;
        note_arrival(c);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return fail(c, "overlapped allreduce", rc);
        inflight_push(c, req, "overlapped allreduce");
    }
    return 0;
}

// The sum of send[0..n) over all ranks into recv at the root (recv == send: in place; other ranks
// pass no recv), in rounds of at most paw_comm_chunk_elems, as operations in flight.
static int ireduce_to(PawComm *c, const float *send, float *recv, size_t n, int root, const char *what) {
    size_t chunk = paw_comm_chunk_elems();
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Request req;
        note_arrival(c);
        int rc = root != c->rank ? MPI_Ireduce(send + off, NULL, cnt, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD, &req)
                 : recv == send  ? MPI_Ireduce(MPI_IN_PLACE, recv + off, cnt, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD, &req)
                                 : MPI_Ireduce(send + off, recv + off, cnt, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return fail(c, what, rc);
        inflight_push(c, req, what);
    }
    return 0;
}

static int ibcast(PawComm *c, void *buf, size_t bytes, int root, const char *what) {
    size_t chunk = paw_comm_chunk_elems() * sizeof(float);
    for (size_t off = 0; off < bytes; off += chunk) {
        int cnt = (int)(bytes - off < chunk ? bytes - off : chunk);
        MPI_Request req;
        note_arrival(c);
        int rc = MPI_Ibcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return fail(c, what, rc);
        inflight_push(c, req, what);
    }
    return 0;
}

static int mpi_ireduce(PawComm *c, void *buf, size_t n, int bf16, int root) {
    if (bf16) return paw_error("rank %d: MPI has no bf16 type to sum (use NCCL, or fp32 gradients)", c->rank);
    return ireduce_to(c, buf, buf, n, root, "overlapped reduce to the shard owner");
}

static int mpi_ibroadcast(PawComm *c, void *buf, size_t bytes, int root) {
    return ibcast(c, buf, bytes, root, "overlapped broadcast from the shard owner");
}

// Each shard's piece of [a, b) goes to its owner.
static int mpi_ireduce_shards_f32(PawComm *c, float *buf, size_t n, size_t a, size_t b) {
    for (int owner = 0; owner < c->world; owner++) {
        size_t lo = paw_shard_begin(n, c->world, owner), hi = paw_shard_begin(n, c->world, owner + 1);
        if (lo < a) lo = a;
        if (hi > b) hi = b;
        if (lo < hi && mpi_ireduce(c, buf + lo, hi - lo, 0, owner) != 0) return -1;
    }
    return 0;
}

static int mpi_progress(PawComm *c) {
    if (c->rank == 0) drain_arrivals(c);
    return inflight_test(c);
}

// Like wait_done, over the whole set: the deadline runs from this call, the first operation
// still in flight names what timed out.
static int mpi_wait_all(PawComm *c) {
    MpiState *st = c->impl;
    double t0 = MPI_Wtime(), limit = c->rank == 0 ? c->timeout_s : c->timeout_s + 5;
    for (long spins = 0; st->ninflight > 0; spins++) {
        if (inflight_test(c) != 0) {
            st->ninflight = 0;  // the job is about to end; nothing waits for these any more
            return -1;
        }
        if (st->ninflight > 0 && spins > 2000) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            double waited = MPI_Wtime() - t0;
            if (waited > limit) die_timed_out(c, st->inflight_what[0], waited);
        }
    }
    return 0;
}

static void mpi_abort(PawComm *c, int code) {
    (void)c;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

static void mpi_finalize(PawComm *c) {
    MpiState *st = c->impl;
    if (st && c->rank == 0) drain_arrivals(c);
    if (st) free(st->seen), free(st->inflight), free(st->inflight_what), free(st);
    c->impl = NULL;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

static const PawCommOps mpi_ops = {"mpi", mpi_allreduce_f32, mpi_allreduce_f64, mpi_reduce_scatter, mpi_allgather,
                                   mpi_allgather_bytes, mpi_broadcast, mpi_barrier, mpi_abort, mpi_finalize,
                                   mpi_iallreduce_f32, mpi_ireduce_shards_f32, mpi_progress, mpi_wait_all,
                                   NULL, NULL /* no bf16 type in MPI */, mpi_ireduce, mpi_ibroadcast,
                                   NULL, NULL /* no groups: each operation starts at once */};

PawComm *paw_comm_mpi_open(int *argc, char ***argv, double timeout_s) {
    // OpenMPI's non-blocking collectives (libnbc) move one step of their schedule per MPI_Test,
    // and the algorithms they pick by default suit that badly: for a large reduce a segmented
    // chain (2 ranks reduced 64 MiB at 0.05 GB/s; a binomial tree took 77 ms instead of 1346),
    // for a large allreduce 270 ms where the ring takes 142 (`paw bench comm`, 2-core machine).
    // Values the user set in the environment win.
    setenv("OMPI_MCA_coll_libnbc_ireduce_algorithm", "2", 0);     // binomial
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);  // ring
    int init = 0;
    MPI_Initialized(&init);
    if (!init && MPI_Init(argc, argv) != MPI_SUCCESS) {
        paw_error("MPI_Init failed");
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    PawComm *c = xcalloc(1, sizeof *c);
    c->ops = &mpi_ops;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    c->timeout_s = timeout_s;
    MpiState *st = xcalloc(1, sizeof *st);
    st->seen = xcalloc((size_t)c->world, sizeof(long));
    c->impl = st;
    return c;
}

#else
// Built without MPI: train/comm.c refuses runs launched by mpirun.
typedef int paw_comm_mpi_unused;
#endif
