// Training checkpoints: OUT/checkpoints/step-NNNNNNNN/ holding
//   params.safetensors     every trainable tensor, fp32 (written by rank 0)
//   optimizer.safetensors  the AdamW moments "<name>.m", "<name>.v" (rank 0), or, under ZeRO-1,
//   optimizer-RRRRR-of-WWWWW.safetensors  rank R's shard of the moments (every rank its own)
//   state.json             step, data position, world size, zero (rank 0)
//   COMPLETE               written last, by rank 0, after every rank reported its files written
// A checkpoint is written under step-NNNNNNNN.tmp, every file fsynced, COMPLETE written, then the
// directory renamed: a crash of any rank at any point leaves the previous checkpoint intact and
// never a directory that looks complete but is not. Multi-rank runs need out_dir on a file system
// that every rank sees.
#ifndef PAW_TRAIN_CHECKPOINT_H
#define PAW_TRAIN_CHECKPOINT_H

#include <stddef.h>

#include "train/comm.h"

typedef struct {
    const char *name;
    float *p, *g;   // parameters and gradients (n elements)
    float *m, *v;   // AdamW moments (owned by the trainer) for elements [lo, hi) only
    size_t n;
    float lr_scale; // multiplier on the scheduled learning rate
    size_t lo, hi;  // this rank's optimizer shard: [0, n) unless ZeRO-1
} TrainParam;

// Collective when comm has several ranks (every rank calls it); comm NULL = one process.
// zero: the moments are sharded (one optimizer file per rank).
int ckpt_save(const char *out_dir, long step, const TrainParam *ps, int np, const char *state_json, int keep_last,
              PawComm *comm, int zero);
// About the bytes one checkpoint of these parameters takes on disk: fp32 weights and two fp32 moments.
unsigned long long ckpt_size_estimate(const TrainParam *ps, int np);
// 0 when the file system that holds dir (or its nearest existing parent) has `bytes` free for an
// unprivileged writer; else -1 + paw_error naming the directory, the bytes needed and the bytes free.
int ckpt_check_space(const char *dir, unsigned long long bytes);
// The newest complete checkpoint directory under out_dir (caller frees) in *path, NULL when none;
// -1 + paw_error when the checkpoints directory exists but cannot be read. ckpt_latest: the
// same, NULL for both.
int ckpt_find_latest(const char *out_dir, char **path);
char *ckpt_latest(const char *out_dir);
// Removes out_dir/checkpoints (--overwrite) by renaming it away first, so that an interrupted
// removal leaves no checkpoint that looks complete.
int ckpt_remove_all(const char *out_dir);
// World sizes a checkpoint may have (keeps the re-sharding arithmetic within 64 bits).
#define CKPT_MAX_WORLD (1 << 20)
// Loads parameters and this rank's moments (names and sizes must match) and returns state.json's
// text. The checkpoint's layout must be the run's (zero, and under ZeRO-1 the world size).
int ckpt_load(const char *ckpt_dir, TrainParam *ps, int np, char **state_json, int rank, int world, int zero);
// Rewrites a checkpoint for another world size and/or zero setting (offline): moments gathered
// and split again, the data position re-expressed in steps of the new world size. out_dir must
// not exist; it is written atomically (OUT.tmp, COMPLETE, rename).
int ckpt_reshard(const char *in_dir, const char *out_dir, int world, int zero);

#endif
