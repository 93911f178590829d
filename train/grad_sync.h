// Data-parallel gradient reduction overlapped with the backward. The trainable gradients are cut
// into buckets, one per group that the backward reports finished (Qwen3GradsReadyFn): the
// mapper, the final norm + LM head, each transformer layer, the embeddings, the prefix. On the
// last micro-batch of a step the backward's reports start each bucket's reduction (allreduce, or
// under ZeRO-1 a reduce of each shard piece to its owner) as soon as it is ready, and every report
// lets the reductions in flight advance; grad_sync_finish starts whatever was not reported and
// waits for all of it before clipping and the optimizer.
//
// Buckets start in one fixed order on every rank (a bucket reported early waits for the ones
// before it), so the ranks' collectives always match, whatever each rank's backward reported.
#ifndef PAW_TRAIN_GRAD_SYNC_H
#define PAW_TRAIN_GRAD_SYNC_H

#include <stddef.h>

#include "model/qwen3.h"
#include "train/checkpoint.h"
#include "train/comm.h"

typedef struct {
    int param;      // index into the trainer's TrainParam array
    size_t off, n;  // elements [off, off + n) of its gradient
} GradRange;

typedef struct {
    int group;          // the report that makes it ready
    int first, count;   // its ranges: ranges[first .. first + count)
} GradBucket;

typedef struct {
    PawComm *comm;
    const TrainParam *params;
    int nparams;
    int sharded;          // ZeRO-1: reduce to the shard owners instead of to every rank
    GradRange *ranges;
    int nranges, ranges_cap;
    GradBucket *buckets;  // in starting order
    int nbuckets, buckets_cap;
    int *ready;           // per bucket, this step
    int next;             // buckets [0, next) are started
    int active;           // between grad_sync_begin and grad_sync_finish
    int started_by_reports;  // this step: buckets started from inside the backward
    int rc;               // the first failure seen by a report (reports cannot return one)
} GradSync;

void grad_sync_init(GradSync *gs, PawComm *comm, const TrainParam *params, int nparams, int sharded);
void grad_sync_free(GradSync *gs);
// A bucket made of the given ranges, started when group is reported. Appended to the order.
void grad_sync_add_bucket(GradSync *gs, int group, const GradRange *ranges, int n);
// The buckets of a Qwen3 model whose whole gradient is params[param].g, in its backward's
// reporting order: QWEN3_GRADS_HEAD, layers L-1 .. 0, QWEN3_GRADS_EMBED.
void grad_sync_add_qwen3(GradSync *gs, int param, const Qwen3 *m);
// Checks that the buckets cover every gradient element exactly once; 0 or -1 + paw_error.
int grad_sync_check(const GradSync *gs);

// Starts a step's reduction: reports from now on start buckets.
void grad_sync_begin(GradSync *gs);
// The Qwen3GradsReadyFn to pass to the backward (ctx = the GradSync).
void grad_sync_ready(void *ctx, int group);
// Starts the buckets not started yet, in order, and waits for every reduction; 0 or -1.
int grad_sync_finish(GradSync *gs);

#endif
