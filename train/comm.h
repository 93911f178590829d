// Collective communication for data-parallel training, behind one small interface so that the
// training loop does not know which transport it runs on:
//   - "single": one process, every collective is a copy or nothing (the default);
//   - "mpi":    OpenMPI over CPU buffers (built when mpicc is found; used when the process was
//               started by mpirun);
//   - a GPU backend (NCCL) fits behind the same operations with device buffers.
// Every operation returns 0, or -1 + paw_error() naming the operation, the rank and the cause.
// A collective that does not complete within comm->timeout_s (a rank died or hangs) does not
// return: it prints which collective timed out on which rank and aborts the whole job, so a run
// never hangs forever.
#ifndef PAW_TRAIN_COMM_H
#define PAW_TRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct PawComm PawComm;

typedef struct {
    const char *name;
    int (*allreduce_f32)(PawComm *c, float *buf, size_t n);    // in place, sum
    int (*allreduce_f64)(PawComm *c, double *buf, size_t n);   // in place, sum
    // in holds the whole vector (sum of counts); out receives this rank's block of the sum (out
    // may be this rank's block of in).
    int (*reduce_scatter_f32)(PawComm *c, const float *in, float *out, const size_t *counts);
    // buf holds the whole vector; this rank's block (at its offset) is sent, the others received.
    int (*allgather_f32)(PawComm *c, float *buf, const size_t *counts);
    // every rank's `bytes` bytes, in rank order, into all (world * bytes).
    int (*allgather_bytes)(PawComm *c, const void *mine, void *all, size_t bytes);
    int (*broadcast)(PawComm *c, void *buf, size_t bytes, int root);
    int (*barrier)(PawComm *c);
    void (*abort)(PawComm *c, int code);  // ends every rank of the job; does not return
    void (*finalize)(PawComm *c);
    // Non-blocking (see paw_iallreduce_f32 and the functions after it).
    int (*iallreduce_f32)(PawComm *c, float *buf, size_t n);
    int (*ireduce_shards_f32)(PawComm *c, float *buf, size_t n, size_t a, size_t b);
    int (*progress)(PawComm *c);
    int (*wait_all)(PawComm *c);
    // in place, sum, on bf16 elements (device buffers; NULL where the backend has no bf16 type)
    int (*allreduce_bf16)(PawComm *c, void *buf, size_t n);
    int (*iallreduce_bf16)(PawComm *c, void *buf, size_t n);  // non-blocking; NULL alike
    int (*ireduce)(PawComm *c, void *buf, size_t n, int bf16, int root);  // see paw_ireduce
    int (*ibroadcast)(PawComm *c, void *buf, size_t bytes, int root);    // see paw_ibroadcast
    int (*group_begin)(PawComm *c);  // see paw_comm_group_begin; NULL: nothing to group
    int (*group_end)(PawComm *c);
} PawCommOps;

struct PawComm {
    const PawCommOps *ops;
    int rank, world;
    double timeout_s;  // per collective
    void *impl;
};

// The communicator for this process: MPI when the build has it and the process was launched
// by mpirun (or PAW_COMM=mpi), the single-process one otherwise. NULL + paw_error() on failure.
PawComm *paw_comm_open(int *argc, char ***argv, double timeout_s);
// The single-process communicator (rank 0 of 1); never fails.
PawComm *paw_comm_single(void);
void paw_comm_close(PawComm *c);  // finalizes and frees
// 1 when this build links MPI.
int paw_comm_have_mpi(void);
// NCCL over device buffers, bootstrapped through an MPI communicator (borrowed: the caller keeps
// it for host-side collectives and closes it after this one), one GPU per rank. Only in
// `make NCCL=1` builds; run with one rank only so far, never across GPUs. The GPU trainer sums
// its gradient blocks through it under mpirun (device "cuda", "gpu_comm": "nccl"). Every
// operation runs on the communicator's own stream after an event recorded on the compute stream
// (paw_cuda_stream()), so it reads what the kernels before it wrote; paw_cuda_init() must come
// first.
PawComm *paw_comm_nccl_open(PawComm *host);

// Shorthands through c->ops.
int paw_allreduce_f32(PawComm *c, float *buf, size_t n);
int paw_allreduce_f64(PawComm *c, double *buf, size_t n);
int paw_allreduce_bf16(PawComm *c, void *buf, size_t n);  // -1 + paw_error where unsupported
int paw_reduce_scatter_f32(PawComm *c, const float *in, float *out, const size_t *counts);
int paw_allgather_f32(PawComm *c, float *buf, const size_t *counts);
int paw_allgather_bytes(PawComm *c, const void *mine, void *all, size_t bytes);
int paw_broadcast(PawComm *c, void *buf, size_t bytes, int root);
int paw_barrier(PawComm *c);
void paw_comm_abort(PawComm *c, int code);

// Non-blocking collectives, to reduce gradients while the backward still runs. A started
// operation joins the communicator's set of operations in flight; every rank must start the same
// operations in the same order (as for the blocking ones, which may be called in between), and
// nobody may touch the buffers until paw_comm_wait_all returns. Single process: nothing to do.
// Sum of buf[0..n) over all ranks, in place (buffers of any size: started in rounds).
int paw_iallreduce_f32(PawComm *c, float *buf, size_t n);
int paw_iallreduce_bf16(PawComm *c, void *buf, size_t n);  // -1 + paw_error where unsupported
// buf is a whole flat tensor of n elements split into ZeRO shards (paw_shard_begin). Sums the
// elements [a, b) over all ranks so that each rank ends with the sum of the part of [a, b) that
// lies in its own shard; its other elements keep this rank's values. The range is cut at shard
// boundaries and each piece reduced to its owner.
int paw_ireduce_shards_f32(PawComm *c, float *buf, size_t n, size_t a, size_t b);
// The sum of buf[0..n) over all ranks into root's buf, in place there (the other ranks' buf is
// left as it was); bf16 elements where the backend has the type (NCCL), else fp32. On the
// backend's kind of buffer: host memory for MPI, device memory for NCCL. What ZeRO-1 on the GPU
// sums each run of gradients to its owner with.
int paw_ireduce(PawComm *c, void *buf, size_t n, int bf16, int root);
// root's buf[0..bytes) into every rank's buf (the same kinds of buffer): how the GPU ZeRO-1
// update hands each run of new weights from its owner to the others.
int paw_ibroadcast(PawComm *c, void *buf, size_t bytes, int root);
// The non-blocking operations started between these two go out together (NCCL: one
// ncclGroupStart/End, one launch for the lot instead of one per call, after one event on the
// compute stream; others: no effect). For the hundreds of per-run operations of a ZeRO-1 step.
int paw_comm_group_begin(PawComm *c);
int paw_comm_group_end(PawComm *c);
// Lets the operations in flight advance without waiting (MPI moves them only inside its calls).
int paw_comm_progress(PawComm *c);
// Completes every operation in flight. Same watchdog as the blocking collectives: past
// comm->timeout_s (counted from this call) it names the missing rank(s) and aborts the job.
int paw_comm_wait_all(PawComm *c);

// ZeRO shards: the balanced split of n elements over world ranks (the first n % world ranks get
// one more). Rank r owns [paw_shard_begin(n, w, r), paw_shard_begin(n, w, r + 1)).
size_t paw_shard_begin(size_t n, int world, int rank);
// counts[r] for every rank (caller's array of world entries).
void paw_shard_counts(size_t n, int world, size_t *counts);

// Collectives move at most this many elements per rank in one call (MPI counts are int); larger
// buffers go in rounds. PAW_COMM_CHUNK overrides it, up to 2^27 (tests use a small value to cover
// rounds).
size_t paw_comm_chunk_elems(void);

#endif
