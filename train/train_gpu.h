// The bridge between the training loop's host tensors (TrainParam: the CPU layout that
// checkpoints and export use) and the GPU PAW step (train/paw_step_cuda.h), which holds the
// working copy of every weight, gradient and AdamW moment on the device. The loop keeps its
// CPU structure: the device state is copied to the host before a checkpoint or the export, and
// copied back after a resume (evaluation runs on the device). Only in CUDA builds.
#ifndef PAW_TRAIN_TRAIN_GPU_H
#define PAW_TRAIN_TRAIN_GPU_H

#ifdef PAW_CUDA
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/paw_step_cuda.h"

// The device group of a trainer tensor ("compiler", "prefix", "mapper"), or -1.
int train_gpu_group(const TrainParam *p);
// Device -> host: the fp32 weights (the AdamW master copy) into p->p and, with moments, the
// moments into p->m, p->v. Under ZeRO-1 (paw_step_cuda_create with world > 1: the blocks
// [p->lo, p->hi) of the trainer's tensors) the moments are that block, and only that block of
// p->p is sure to be written: the caller gathers the rest from the other ranks. Sizes must match.
int train_gpu_download(PawStepCuda *s, TrainParam *ps, int np, int with_moments);
// Host -> device: whole weights and the moments of [p->lo, p->hi) after a resume from the
// checkpoint of `step` (its bf16 weights rounded as that step's update rounded them).
int train_gpu_upload(PawStepCuda *s, const TrainParam *ps, int np, int step);
// Starts the in-place sums of a reported group's device gradient slices (non-blocking, bf16 or
// fp32 each); paw_comm_wait_all completes them. 0, or -1 + paw_error at the first failure.
int train_gpu_isum_slices(PawComm *c, const Qwen3CudaGradSlice *sl, int n);
#endif

#endif
