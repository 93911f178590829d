#include "train/train_gpu.h"

#ifdef PAW_CUDA
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int train_gpu_group(const TrainParam *p) {
    if (!strcmp(p->name, "compiler")) return PAW_GROUP_COMPILER;
    if (!strcmp(p->name, "prefix")) return PAW_GROUP_PREFIX;
    if (!strcmp(p->name, "mapper")) return PAW_GROUP_MAPPER;
    return -1;
}

static int check(PawStepCuda *s, const TrainParam *p, int *group) {
    *group = train_gpu_group(p);
    if (*group < 0) return paw_error("GPU trainer: tensor group \"%s\" is not on the device", p->name);
    size_t n = paw_step_cuda_group_size(s, *group);
    if (n != p->n) return paw_error("GPU trainer: \"%s\" has %zu elements on the device, %zu on the host", p->name, n, p->n);
    return 0;
}

int train_gpu_download(PawStepCuda *s, TrainParam *ps, int np, int with_moments) {
    for (int i = 0; i < np; i++) {
        TrainParam *p = &ps[i];
        int g;
        if (check(s, p, &g) != 0 || paw_step_cuda_get_state(s, g, 0, p->p) != 0) return -1;
        if (!with_moments) continue;
        if (paw_step_cuda_get_state(s, g, 1, p->m) != 0 || paw_step_cuda_get_state(s, g, 2, p->v) != 0) return -1;
    }
    return 0;
}

int train_gpu_upload(PawStepCuda *s, const TrainParam *ps, int np, int step) {
    if (paw_step_cuda_set_adam_step(s, step) != 0) return -1;
    for (int i = 0; i < np; i++) {
        const TrainParam *p = &ps[i];
        int g;
        if (check(s, p, &g) != 0) return -1;
        if (paw_step_cuda_set_state(s, g, 0, p->p) != 0 || paw_step_cuda_set_state(s, g, 1, p->m) != 0 ||
            paw_step_cuda_set_state(s, g, 2, p->v) != 0)
            return -1;
    }
    return 0;
}

int train_gpu_isum_slices(PawComm *c, const Qwen3CudaGradSlice *sl, int n) {
    for (int i = 0; i < n; i++) {
        int rc = sl[i].bf16 ? paw_iallreduce_bf16(c, sl[i].ptr, sl[i].n)
                            : paw_iallreduce_f32(c, (float *)sl[i].ptr, sl[i].n);
        if (rc != 0) return -1;
    }
    return 0;
}
#else
typedef int paw_train_gpu_needs_cuda;  // keeps the translation unit non-empty in CPU builds
#endif
