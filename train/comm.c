#include "train/comm.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

// ---- the single-process communicator ------------------------------------------------------------

static int single_noop_f32(PawComm *c, float *buf, size_t n) { return (void)c, (void)buf, (void)n, 0; }
static int single_noop_f64(PawComm *c, double *buf, size_t n) { return (void)c, (void)buf, (void)n, 0; }
static int single_reduce_scatter(PawComm *c, const float *in, float *out, const size_t *counts) {
    (void)c;
    if (out != in) memmove(out, in, sizeof(float) * counts[0]);
    return 0;
}
static int single_allgather(PawComm *c, float *buf, const size_t *counts) { return (void)c, (void)buf, (void)counts, 0; }
static int single_allgather_bytes(PawComm *c, const void *mine, void *all, size_t bytes) {
    (void)c;
    if (all != mine) memmove(all, mine, bytes);
    return 0;
}
static int single_broadcast(PawComm *c, void *buf, size_t bytes, int root) {
    return (void)c, (void)buf, (void)bytes, root == 0 ? 0 : paw_error("broadcast: root %d of 1 rank", root);
}
static int single_barrier(PawComm *c) { return (void)c, 0; }
static void single_abort(PawComm *c, int code) {
    (void)c;
    exit(code);
}
static void single_finalize(PawComm *c) { (void)c; }
// One rank owns every shard: the sum over ranks is the buffer itself.
static int single_ireduce_shards(PawComm *c, float *buf, size_t n, size_t a, size_t b) {
    return (void)c, (void)buf, (void)n, (void)a, (void)b, 0;
}
static int single_nothing_in_flight(PawComm *c) { return (void)c, 0; }

static int single_noop_bf16(PawComm *c, void *buf, size_t n) { return (void)c, (void)buf, (void)n, 0; }
// Root 0 (checked by the shorthands) holds the only copy: nothing moves.
static int single_ireduce(PawComm *c, void *buf, size_t n, int bf16, int root) {
    return (void)c, (void)buf, (void)n, (void)bf16, (void)root, 0;
}
static int single_ibroadcast(PawComm *c, void *buf, size_t bytes, int root) {
    return (void)c, (void)buf, (void)bytes, (void)root, 0;
}

static const PawCommOps single_ops = {"single", single_noop_f32, single_noop_f64, single_reduce_scatter, single_allgather,
                                      single_allgather_bytes, single_broadcast, single_barrier, single_abort,
                                      single_finalize, single_noop_f32, single_ireduce_shards,
                                      single_nothing_in_flight, single_nothing_in_flight, single_noop_bf16,
                                      single_noop_bf16, single_ireduce, single_ibroadcast,
                                      NULL, NULL /* nothing to group */};

PawComm *paw_comm_single(void) {
    PawComm *c = xcalloc(1, sizeof *c);
    c->ops = &single_ops;
    c->rank = 0, c->world = 1, c->timeout_s = 60;
    return c;
}

// ---- choosing ----------------------------------------------------------------------------------

#ifdef PAW_MPI
PawComm *paw_comm_mpi_open(int *argc, char ***argv, double timeout_s);  // train/comm_mpi.c
int paw_comm_have_mpi(void) { return 1; }
#else
int paw_comm_have_mpi(void) { return 0; }
#endif

// The world size the launcher announced (OpenMPI, PMIx, MPICH/Hydra), or 0 when not launched by one.
static int launcher_world_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

PawComm *paw_comm_open(int *argc, char ***argv, double timeout_s) {
    const char *want = getenv("PAW_COMM");
    int launched = launcher_world_size();
    if (want && strcmp(want, "single") && strcmp(want, "mpi")) {
        paw_error("PAW_COMM=%s: expected \"single\" or \"mpi\"", want);
        return NULL;
    }
    int use_mpi = want ? !strcmp(want, "mpi") : launched > 0;
#ifdef PAW_MPI
    if (use_mpi) return paw_comm_mpi_open(argc, argv, timeout_s);
#else
    (void)argc, (void)argv;
    if (use_mpi && (launched > 1 || want)) {
        // N copies of a single-process run would all write the same out_dir.
        paw_error("started by mpirun with %d ranks, but this paw was built without MPI (install libopenmpi-dev and "
                  "rebuild)", launched);
        return NULL;
    }
#endif
    PawComm *c = paw_comm_single();
    c->timeout_s = timeout_s;
    return c;
}

void paw_comm_close(PawComm *c) {
    if (!c) return;
    c->ops->finalize(c);
    free(c);
}

int paw_allreduce_f32(PawComm *c, float *buf, size_t n) { return c->ops->allreduce_f32(c, buf, n); }
int paw_allreduce_f64(PawComm *c, double *buf, size_t n) { return c->ops->allreduce_f64(c, buf, n); }
int paw_allreduce_bf16(PawComm *c, void *buf, size_t n) {
    if (!c->ops->allreduce_bf16)
        return paw_error("the %s communicator cannot sum bf16 buffers (MPI has no bf16 type): use NCCL, or fp32 gradients",
                         c->ops->name);
    return c->ops->allreduce_bf16(c, buf, n);
}
int paw_reduce_scatter_f32(PawComm *c, const float *in, float *out, const size_t *counts) {
    return c->ops->reduce_scatter_f32(c, in, out, counts);
}
int paw_allgather_f32(PawComm *c, float *buf, const size_t *counts) { return c->ops->allgather_f32(c, buf, counts); }
int paw_allgather_bytes(PawComm *c, const void *mine, void *all, size_t bytes) {
    return c->ops->allgather_bytes(c, mine, all, bytes);
}
int paw_broadcast(PawComm *c, void *buf, size_t bytes, int root) { return c->ops->broadcast(c, buf, bytes, root); }
int paw_barrier(PawComm *c) { return c->ops->barrier(c); }
void paw_comm_abort(PawComm *c, int code) { c->ops->abort(c, code); }
int paw_iallreduce_f32(PawComm *c, float *buf, size_t n) { return c->ops->iallreduce_f32(c, buf, n); }
int paw_iallreduce_bf16(PawComm *c, void *buf, size_t n) {
    if (!c->ops->iallreduce_bf16)
        return paw_error("the %s communicator cannot sum bf16 buffers (MPI has no bf16 type): use NCCL, or fp32 gradients",
                         c->ops->name);
    return c->ops->iallreduce_bf16(c, buf, n);
}
int paw_ireduce_shards_f32(PawComm *c, float *buf, size_t n, size_t a, size_t b) {
    if (a > b || b > n) return paw_error("reduce of elements [%zu, %zu) of a tensor of %zu", a, b, n);
    return a == b ? 0 : c->ops->ireduce_shards_f32(c, buf, n, a, b);
}
int paw_ireduce(PawComm *c, void *buf, size_t n, int bf16, int root) {
    if (root < 0 || root >= c->world) return paw_error("reduce to rank %d of %d", root, c->world);
    return n == 0 ? 0 : c->ops->ireduce(c, buf, n, bf16, root);
}
int paw_ibroadcast(PawComm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->world) return paw_error("broadcast from rank %d of %d", root, c->world);
    return bytes == 0 ? 0 : c->ops->ibroadcast(c, buf, bytes, root);
}
int paw_comm_group_begin(PawComm *c) { return c->ops->group_begin ? c->ops->group_begin(c) : 0; }
int paw_comm_group_end(PawComm *c) { return c->ops->group_end ? c->ops->group_end(c) : 0; }
int paw_comm_progress(PawComm *c) { return c->ops->progress(c); }
int paw_comm_wait_all(PawComm *c) { return c->ops->wait_all(c); }

// ---- shards -------------------------------------------------------------------------------------

size_t paw_shard_begin(size_t n, int world, int rank) {
    size_t w = (size_t)world, r = (size_t)rank, q = n / w, extra = n % w;
    return q * r + (r < extra ? r : extra);
}

void paw_shard_counts(size_t n, int world, size_t *counts) {
    for (int r = 0; r < world; r++) counts[r] = paw_shard_begin(n, world, r + 1) - paw_shard_begin(n, world, r);
}

size_t paw_comm_chunk_elems(void) {
    const char *e = getenv("PAW_COMM_CHUNK");
    long v = e ? atol(e) : 0;
    // At most 2^27 elements, so that a round of doubles stays under 2 GiB: MPI counts are ints, and
    // OpenMPI's non-blocking collectives before 4.1.2 computed byte offsets in an int too.
    const size_t most = (size_t)1 << 27;
    return v <= 0 ? (size_t)1 << 26 : (size_t)v > most ? most : (size_t)v;  // 256 MB of fp32 by default
}
