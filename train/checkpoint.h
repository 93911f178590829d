// Training checkpoints: OUT/checkpoints/step-NNNNNNNN/ holding params.safetensors (every trainable
// tensor, fp32), optimizer.safetensors (AdamW moments) and state.json (step, data position, ...).
// A checkpoint is written under step-NNNNNNNN.tmp, every file fsynced, a COMPLETE marker written
// last, then the directory renamed: a crash at any point leaves the previous checkpoint intact and
// never a directory that looks complete but is not.
#ifndef PAW_TRAIN_CHECKPOINT_H
#define PAW_TRAIN_CHECKPOINT_H

#include <stddef.h>

typedef struct {
    const char *name;
    float *p, *g;   // parameters and gradients
    float *m, *v;   // AdamW moments (owned by the trainer)
    size_t n;
    float lr_scale; // multiplier on the scheduled learning rate
} TrainParam;

int ckpt_save(const char *out_dir, long step, const TrainParam *ps, int np, const char *state_json, int keep_last);
// The newest complete checkpoint directory under out_dir (caller frees), or NULL when none.
char *ckpt_latest(const char *out_dir);
// Loads parameters and moments (names and sizes must match) and returns state.json's text.
int ckpt_load(const char *ckpt_dir, TrainParam *ps, int np, char **state_json);

#endif
