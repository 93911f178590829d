#include "compiler/trained.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/sha256.h"
#include "common/fileio.h"
#include "common/json.h"
#include "data/shard_build.h"
#include "data/template.h"
#ifdef PAW_CUDA
#include "compiler/compiler_cuda.h"
#include "compiler/mapper_cuda.h"
#endif

// The ranges of the training config that wrote the file.
static int json_int(const cJSON *o, const char *key, int *out, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it)) return paw_error("%s: missing number \"%s\"", path, key);
    if (!paw_json_is_int_in(it, 1, 4096))
        return paw_error("%s: \"%s\" is %g, expected an integer in [1, 4096]", path, key, it->valuedouble);
    *out = (int)it->valuedouble;
    return 0;
}

int paw_trained_compiler_load(PawTrainedCompiler *tc, const char *dir, int weights) {
    memset(tc, 0, sizeof *tc);
    char *pj = paw_path_join(dir, "paw.json");
    char *text = paw_read_file(pj, NULL);
    int rc = -1;
    cJSON *o = NULL;
    if (!text) {
        paw_error_context("%s is not a trained compiler directory (no paw.json)", dir);
        goto done;
    }
    o = cJSON_Parse(text);
    const cJSON *fmt = o ? cJSON_GetObjectItemCaseSensitive(o, "format") : NULL;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "paw-compiler") != 0) {
        paw_error("%s: not a paw-compiler description (\"format\": \"paw-compiler\" expected)", pj);
        goto done;
    }
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    const cJSON *iid = cJSON_GetObjectItemCaseSensitive(o, "interpreter");
    const cJSON *icfg = cJSON_GetObjectItemCaseSensitive(o, "interpreter_config");
    if (json_int(o, "lora_rank", &tc->rank, pj) || json_int(o, "mapper_bases", &tc->bases, pj) ||
        json_int(o, "prefix_steps", &tc->prefix_steps, pj))
        goto done;
    if (!cJSON_IsNumber(alpha) || !cJSON_IsString(iid) || !cJSON_IsObject(icfg)) {
        paw_error("%s: needs lora_alpha, interpreter and interpreter_config", pj);
        goto done;
    }
    tc->alpha = (float)alpha->valuedouble;
    tc->interpreter_id = xstrdup(iid->valuestring);
    char *ic = cJSON_PrintUnformatted(icfg);
    int crc = qwen3_config_parse(&tc->icfg, ic, pj);
    free(ic);
    if (crc != 0) goto done;
    Qwen3 model;
    if (qwen3_load_ex(&model, dir, 1, weights) != 0) goto done;
    compiler_init(&tc->comp, &model, tc->prefix_steps, tc->icfg.num_layers, 0);
    MapperConfig mc = {.d = tc->comp.model.cfg.hidden_size, .L = tc->icfg.num_layers, .nbases = tc->bases,
                       .rank = tc->rank, .alpha = tc->alpha, .icfg = tc->icfg};
    mapper_create(&tc->mapper, &mc);
    char *mp = paw_path_join(dir, "mapper.safetensors");
    crc = paw_mapper_file_load(&tc->comp, &tc->mapper, mp);
    if (crc == 0) crc = paw_sha256_file(mp, tc->fingerprint);
    free(mp);
    if (crc != 0) goto done;
    if (paw_vocab_map_load(&tc->vmap, dir) < 0) goto done;
    char *tk = paw_path_join(dir, "tokenizer.json");
    tc->tok = paw_tokenizer_load(paw_file_exists(tk) ? tk : paw_tokenizer_default_path());
    free(tk);
    if (!tc->tok) goto done;
    tc->im_end = paw_tokenizer_token_id(tc->tok, "<|im_end|>");
    if (tc->im_end < 0) {
        paw_error("the compiler's tokenizer has no <|im_end|>");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    free(text);
    free(pj);
    if (rc != 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", paw_last_error());
        paw_trained_compiler_free(tc);
        paw_error("%s", msg);
    }
    return rc;
}

void paw_trained_compiler_describe(const PawTrainedCompiler *tc, FILE *f) {
    const Qwen3 *m = &tc->comp.model;
    double bytes = 4.0 * (double)m->num_params + 2.0 * (double)m->num_w16 + 1.125 * (double)m->num_q8;
    fprintf(f, "compiler: %d layers, hidden %d, %s matrices (%.1f MB of weights)\n", m->cfg.num_layers,
            m->cfg.hidden_size, qwen3_weights_kind(m), bytes / 1e6);
}

int paw_trained_compiler_use_gpu(PawTrainedCompiler *tc) {
#ifdef PAW_CUDA
    if (tc->gpu_comp) return 0;
    if (paw_cuda_init() != 0) return -1;
    qwen3_set_frozen(&tc->comp.model, 1);  // inference: no gradients on either side
    tc->gpu_comp = compiler_cuda_from_cpu(&tc->comp, 0);
    if (!tc->gpu_comp) return -1;
    tc->gpu_mapper = mapper_cuda_create(&tc->mapper);
    if (!tc->gpu_mapper) {
        compiler_cuda_free(tc->gpu_comp);
        tc->gpu_comp = NULL;
        return -1;
    }
    return 0;
#else
    (void)tc;
    return paw_error("this build has no CUDA (build with nvcc on PATH)");
#endif
}

void paw_trained_compiler_free(PawTrainedCompiler *tc) {
#ifdef PAW_CUDA
    compiler_cuda_free(tc->gpu_comp);
    mapper_cuda_free(tc->gpu_mapper);
#endif
    if (tc->comp.prefix) compiler_free(&tc->comp);
    if (tc->mapper.params_memory) mapper_free(&tc->mapper);
    if (tc->tok) paw_tokenizer_free(tc->tok);
    paw_vocab_map_free(&tc->vmap);
    free(tc->interpreter_id);
    memset(tc, 0, sizeof *tc);
}

// The compiler's token sequence, as `paw data build` makes it for training:
// chat(compiler_prompt(spec)) + pseudo_program + <|im_end|>, in model ids.
static int compiler_tokens(PawTrainedCompiler *tc, const char *spec, const char *pseudo, PawIds *ids) {
    char *prompt = paw_compiler_prompt(spec);
    int rc = paw_tokenizer_encode(tc->tok, prompt, strlen(prompt), 1, ids);
    free(prompt);
    if (rc == 0) rc = paw_tokenizer_encode(tc->tok, pseudo, strlen(pseudo), 1, ids);
    if (rc == 0) paw_ids_push(ids, tc->im_end);
    if (rc == 0 && tc->vmap.n && paw_vocab_map_to_model(&tc->vmap, ids->ids, (int64_t)ids->n) != 0)
        rc = paw_error_context("the spec or pseudo-program uses tokens the compiler never saw");
    return rc;
}

#ifdef PAW_CUDA
// The adapters of one batch on the GPU, copied back as fp32 host adapters (nb = 1 each).
static int gpu_adapters(PawTrainedCompiler *tc, const int *const *seqs, const int *lens, int B, Qwen3Lora *out) {
    if (compiler_cuda_forward(tc->gpu_comp, seqs, lens, B) != 0) return -1;
    MapperCudaLora dev;
    if (mapper_cuda_lora_alloc(&tc->mapper.cfg, B, 0, &dev) != 0) return -1;
    int rc = mapper_cuda_forward(tc->gpu_mapper, compiler_cuda_states(tc->gpu_comp), B, tc->prefix_steps, &dev);
    if (rc == 0) {
        Qwen3Lora all;
        mapper_lora_alloc(&tc->mapper.cfg, B, 0, &all);
        const MapperConfig *mc = &tc->mapper.cfg;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            int din, dout;
            lora_module_dims(&mc->icfg, m, &din, &dout);
            size_t na = (size_t)mc->L * B * mc->rank * din, nbb = (size_t)mc->L * B * dout * mc->rank;
            paw_cuda_download(all.A[m], dev.A[m], sizeof(float) * na);
            paw_cuda_download(all.B[m], dev.B[m], sizeof(float) * nbb);
        }
        for (int b = 0; b < B; b++) mapper_lora_select(&tc->mapper.cfg, &all, b, &out[b]);
        mapper_lora_free(&all);
    }
    mapper_cuda_lora_free(&dev);
    return rc;
}
#endif

int paw_trained_compiler_adapters(PawTrainedCompiler *tc, const char *const *specs, const char *const *pseudo, int n,
                                  int batch, Qwen3Lora *out) {
    if (batch < 1) batch = 1;
    int rc = 0;
    for (int i0 = 0; i0 < n && rc == 0; i0 += batch) {
        int B = n - i0 < batch ? n - i0 : batch;
        PawIds *ids = xcalloc((size_t)B, sizeof(PawIds));
        const int **seqs = xmalloc(sizeof(int *) * (size_t)B);
        int *lens = xmalloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B && rc == 0; b++) {
            rc = compiler_tokens(tc, specs[i0 + b], pseudo[i0 + b], &ids[b]);
            seqs[b] = ids[b].ids;
            lens[b] = (int)ids[b].n;
        }
        int on_gpu = 0;
#ifdef PAW_CUDA
        on_gpu = tc->gpu_comp != NULL;
        if (rc == 0 && on_gpu) rc = gpu_adapters(tc, (const int *const *)seqs, lens, B, out + i0);
#endif
        if (rc == 0 && !on_gpu) rc = compiler_forward(&tc->comp, (const int *const *)seqs, lens, B);
        if (rc == 0 && !on_gpu) {
            Qwen3Lora all;
            mapper_lora_alloc(&tc->mapper.cfg, B, 0, &all);
            mapper_forward(&tc->mapper, tc->comp.H, B, tc->comp.P, &all);
            for (int b = 0; b < B; b++) mapper_lora_select(&tc->mapper.cfg, &all, b, &out[i0 + b]);
            mapper_lora_free(&all);
        }
        for (int b = 0; b < B; b++) paw_ids_free(&ids[b]);
        free(ids), free(seqs), free(lens);
    }
    return rc;
}
