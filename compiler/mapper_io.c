// The mapper and the prefix embeddings as one safetensors file (a trained compiler's
// mapper.safetensors, a training run's initial mapper): "prefix" [P, d], "mapper.fc1.weight",
// "mapper.fc1.bias", "mapper.fc2.weight", "mapper.fc2.bias", "mapper.A.<module>" [N, r, d_in],
// "mapper.B.<module>" [N, d_out, r]. Loading checks every name and shape.
#include <string.h>

#include "common/error.h"
#include "compiler/compiler.h"
#include "compiler/mapper.h"
#include "model/safetensors.h"

int paw_mapper_file_save(const Compiler *comp, const Mapper *mapper, const char *path) {
    StWriteTensor ts[1 + MAPPER_NUM_TENSORS];
    char names[MAPPER_NUM_TENSORS][64];
    int d = comp->model.cfg.hidden_size;
    ts[0] = (StWriteTensor){.name = "prefix", .dtype = ST_F32, .ndim = 2, .shape = {comp->P, d}, .data = comp->prefix};
    MapperParams *p = (MapperParams *)&mapper->params;
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        int nd, sh[3];
        mapper_tensor_shape(&mapper->cfg, i, &nd, sh);
        StWriteTensor *t = &ts[1 + i];
        t->name = mapper_tensor_name(i, names[i], sizeof names[i]);
        t->dtype = ST_F32;
        t->ndim = nd;
        for (int k = 0; k < nd; k++) t->shape[k] = sh[k];
        t->data = *mapper_tensor_slot(p, i);
    }
    const char *meta[] = {"format", "pt"};
    return st_write(path, ts, 1 + MAPPER_NUM_TENSORS, meta, 1);
}

static int load_exact(const SafeTensors *st, const char *name, int nd, const int *shape, float *dst) {
    const StTensor *t = st_find(st, name);
    if (!t) return paw_error("%s: missing tensor \"%s\"", st->path, name);
    int ok = t->ndim == nd;
    for (int k = 0; ok && k < nd; k++) ok = t->shape[k] == shape[k];
    if (!ok) return paw_error("%s: tensor \"%s\" does not have the shape this configuration needs", st->path, name);
    return st_to_f32(st, t, dst);
}

int paw_mapper_file_load(Compiler *comp, Mapper *mapper, const char *path) {
    SafeTensors st;
    if (st_open(&st, path) != 0) return -1;
    int shape[3] = {comp->P, comp->model.cfg.hidden_size, 0};
    int rc = load_exact(&st, "prefix", 2, shape, comp->prefix);
    for (int i = 0; i < MAPPER_NUM_TENSORS && rc == 0; i++) {
        int nd, sh[3];
        char name[64];
        mapper_tensor_shape(&mapper->cfg, i, &nd, sh);
        rc = load_exact(&st, mapper_tensor_name(i, name, sizeof name), nd, sh, *mapper_tensor_slot(&mapper->params, i));
    }
    st_close(&st);
    return rc;
}
