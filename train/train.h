// `paw train CONFIG`: the training loop around the PAW step (mode "paw") or around plain
// language-model training of the tiny interpreter (mode "pretrain"): AdamW with warmup and a
// cosine/step schedule, clipping, accumulation with token-weighted loss, periodic evaluation
// (validation loss and exact match), JSONL logging with a live terminal line, atomic
// checkpoints with bit-exact resume, and export of the trained models.
#ifndef PAW_TRAIN_TRAIN_H
#define PAW_TRAIN_TRAIN_H

int cmd_train(int argc, char **argv);
int cmd_grad(int argc, char **argv);

#endif
