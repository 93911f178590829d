// Training data: a shard directory seen as one list of examples (PawDataset), and the loader
// that turns it into batches for one rank of a multi-process run (PawLoader).
//
// Each epoch the loader shuffles all examples with a generator seeded by (seed, epoch), optionally
// sorts windows of the shuffled order by length (less padding), cuts the order greedily into
// batches that fit the token budget and the example cap, and deals the batches round-robin to
// the ranks: at step s rank r gets global batch s*world_size + r. Every rank computes the same
// plan from the lengths in the shard indexes, so no communication is needed; all ranks run the
// same number of steps per epoch; the ranks together see every example exactly once per epoch;
// in the last step of an epoch some ranks may get an empty batch (n == 0), which they must still
// step through (zero loss) to stay in lockstep.
//
// The position (epoch, step) names the next batch. Saving it with the checkpoint and seeking
// to it on resume gives exactly the batches an uninterrupted run would have seen.
#ifndef PAW_DATA_LOADER_H
#define PAW_DATA_LOADER_H

#include <stdint.h>

#include "data/shard.h"

// ---- dataset ----
typedef struct PawDataset PawDataset;

// Opens every shard named in DIR/manifest.json and checks its example count against the manifest.
PawDataset *paw_dataset_open(const char *dir);
void paw_dataset_close(PawDataset *ds);
uint64_t paw_dataset_size(const PawDataset *ds);
uint64_t paw_dataset_tokens(const PawDataset *ds);
int paw_dataset_num_shards(const PawDataset *ds);
PawShard *paw_dataset_shard(PawDataset *ds, int k);
// The manifest's tokenizer sha256 ("" when none was recorded) and max_tokens (0 = none).
const char *paw_dataset_tokenizer_sha256(const PawDataset *ds);
int paw_dataset_max_tokens(const PawDataset *ds);
void paw_dataset_lengths(const PawDataset *ds, uint64_t i, uint32_t len[PAW_SEG_COUNT]);
// A view of example i, valid until the next get on the same dataset (see paw_shard_get).
// Not thread-safe: one dataset per thread.
int paw_dataset_get(PawDataset *ds, uint64_t i, PawExample *ex);
int paw_dataset_verify(PawDataset *ds);

// ---- loader ----
typedef enum {
    PAW_BUDGET_PADDED,  // cost of a batch = n * (longest compiler sequence + longest interpreter sequence)
    PAW_BUDGET_SUM,     // cost of a batch = sum over examples of (compiler + interpreter sequence)
} PawBudgetMode;

typedef struct {
    uint64_t seed;
    int rank, world_size;
    int64_t token_budget;  // a batch costs at most this (PawBudgetMode); every example must fit alone
    int max_examples;      // at most this many examples per batch (0 = no cap)
    PawBudgetMode mode;
    int sort_window;       // > 1: sort each window of this many shuffled examples by length and
                           // shuffle the resulting batches (0 = plain shuffled order)
} PawLoaderConfig;

void paw_loader_config_default(PawLoaderConfig *c);  // seed 0, rank 0 of 1, 16384 tokens, padded

typedef struct {
    uint64_t epoch, step;
    uint64_t fingerprint;  // of the configuration and the dataset size, checked on seek
} PawLoaderPos;

// A batch with its own copies of the examples' tokens and texts.
typedef struct {
    int n;
    uint64_t epoch, step;
    int64_t cost;        // under the loader's budget mode
    uint64_t *index;     // global example indices, n of them
    PawExample *ex;      // n views into this batch's storage
    // storage
    int cap;
    uint32_t *tokens;
    size_t tokens_cap;
    char *texts;
    size_t texts_cap;
} PawBatch;
void paw_batch_free(PawBatch *b);

typedef struct PawLoader PawLoader;

// Uses (does not own) ds. NULL + paw_error() on a bad configuration or an example that does not fit
// the budget by itself.
PawLoader *paw_loader_new(PawDataset *ds, const PawLoaderConfig *cfg);
void paw_loader_free(PawLoader *l);
// Steps in the loader's current epoch (the same on every rank).
uint64_t paw_loader_steps_in_epoch(PawLoader *l);
PawLoaderPos paw_loader_tell(const PawLoader *l);
// The position to save in a checkpoint: paw_loader_tell's, except that after an epoch's last step
// (the loader moves on only at its next batch) it is the next epoch's start. Both give the same
// next batch; only the second is expressible in steps of any world size (10 batches, at the end
// of step 3 of 4 ranks, would be step 6 of 2 ranks, of an epoch of 5).
PawLoaderPos paw_loader_tell_next(PawLoader *l);
// -1 + paw_error() if the position was saved under another configuration or dataset.
int paw_loader_seek(PawLoader *l, PawLoaderPos pos);
// Fills b with this rank's next batch (indices, lengths and copies of the examples) and advances,
// moving to the next epoch after its last step. load_examples = 0 fills only index/cost and the
// lengths in ex[].len (ex[].seg stay NULL). 0, or -1 + paw_error() on a corrupt shard.
int paw_loader_next(PawLoader *l, PawBatch *b, int load_examples);

// Batch cost of examples with these lengths under a mode (exposed for tests and the trainer).
int64_t paw_batch_cost(PawBudgetMode mode, const uint32_t (*len)[PAW_SEG_COUNT], int n);

#endif
