// Tests for interpreter/program.c (.paw bundles).
//
// tests/fixtures/gguf/published.paw is laid out like a published program and its adapter is
// written by gguf-py (python3 tests/make_gguf_fixtures.py); published_expected.safetensors holds
// gguf-py's dequantization of it. The reverse direction, that gguf-py reads what we write with
// the names and ggml shapes llama.cpp's LoRA loader expects, is checked by hand:
//   PAW_PROGRAM_EXPORT=/tmp/c.paw ./build/test_paw --filter 'program/python_*'
//   python3 tests/make_gguf_fixtures.py --check-paw /tmp/c.paw
// (the export uses Q4_0; PAW_PROGRAM_EXPORT_DTYPE=f16|f32|q8_0 picks another).
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "data/template.h"
#include "interpreter/program.h"
#include "kernels/quant.h"
#include "model/gguf.h"
#include "model/safetensors.h"

#define PUBLISHED "tests/fixtures/gguf/published.paw"
#define PUBLISHED_EXPECTED "tests/fixtures/gguf/published_expected.safetensors"

// The tiny Qwen3 shape of tests/make_gguf_fixtures.py (TINY).
static Qwen3Config tiny_shape(void) {
    Qwen3Config c = {0};
    c.num_layers = 2;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 32;
    c.vocab_size = 1000;
    return c;
}

// A program whose weights follow the formula the Python check recomputes.
static void make_program(PawProgram *p, const Qwen3Config *shape, int rank) {
    memset(p, 0, sizeof *p);
    p->spec = xstrdup("Echo the input in upper case.");
    p->interpreter = xstrdup("Qwen/Qwen3-0.6B");
    p->pseudo_program = xstrdup("[PSEUDO_PROGRAM]\nUpper-case the input.\n[END_PSEUDO_PROGRAM]");
    p->template_text = paw_interpreter_prompt_template(p->pseudo_program);
    p->compiler = xstrdup("test-compiler@0");
    p->created_at = xstrdup("2025-01-02T03:04:05Z");
    p->rank = rank;
    p->alpha = 16.0f;
    p->prefix_steps = 64;
    p->shape = *shape;
    int L = shape->num_layers;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(shape, m, &din, &dout);
        p->A[m] = xmalloc(sizeof(float) * (size_t)L * rank * din);
        p->B[m] = xmalloc(sizeof(float) * (size_t)L * dout * rank);
        for (int l = 0; l < L; l++) {
            for (int i = 0; i < rank; i++)
                for (int j = 0; j < din; j++)
                    p->A[m][((size_t)l * rank + i) * din + j] = 0.05f * sinf(0.37f * i + 0.11f * j + 1.3f * m + 2.1f * l);
            for (int i = 0; i < dout; i++)
                for (int j = 0; j < rank; j++)
                    p->B[m][((size_t)l * dout + i) * rank + j] = -0.05f * sinf(0.37f * i + 0.11f * j + 1.3f * m + 2.1f * l);
        }
    }
}

static char *tmpdir_new(void) {
    char *dir = strdup("/tmp/paw_prog_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

// Removes the directory and frees its name.
static void rm_tree(char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

// What writing then reading one row of n values in type gives back.
static void through_type(int type, const float *x, float *y, int n) {
    uint8_t buf[4096];
    switch (type) {
    case GGML_TYPE_F32: memcpy(y, x, sizeof(float) * n); break;
    case GGML_TYPE_F16:
        for (int i = 0; i < n; i++) y[i] = st_f16_to_f32(st_f32_to_f16(x[i]));
        break;
    case GGML_TYPE_Q8_0:
        quantize_q8_0(x, buf, n);
        dequantize_q8_0(buf, y, n);
        break;
    case GGML_TYPE_Q4_0:
        quantize_q4_0(x, buf, n);
        dequantize_q4_0(buf, y, n);
        break;
    }
}

// Every value of got equals the round trip of want through the per-row types.
static void check_weights(const PawProgram *want, const PawProgram *got, int type_a, int type_b) {
    int L = want->shape.num_layers, r = want->rank;
    float y[4096];
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(&want->shape, m, &din, &dout);
        cr_assert_eq(got->d_in[m], din);
        cr_assert_eq(got->d_out[m], dout);
        for (int row = 0; row < L * r; row++) {
            through_type(type_a, want->A[m] + (size_t)row * din, y, din);
            cr_assert_eq(memcmp(y, got->A[m] + (size_t)row * din, sizeof(float) * din), 0, "A module %d row %d", m, row);
        }
        for (int row = 0; row < L * dout; row++) {
            through_type(type_b, want->B[m] + (size_t)row * r, y, r);
            cr_assert_eq(memcmp(y, got->B[m] + (size_t)row * r, sizeof(float) * r), 0, "B module %d row %d", m, row);
        }
    }
}

Test(program, round_trip_every_dtype) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    PawProgram p, q;
    make_program(&p, &shape, 32);
    int types[4] = {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_F32};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(paw_program_write(path, &p, types[k]), 0, "%s", paw_last_error());
        cr_assert_eq(paw_program_read(path, &q), 0, "%s", paw_last_error());
        cr_assert_str_eq(q.spec, p.spec);
        cr_assert_str_eq(q.interpreter, p.interpreter);
        cr_assert_str_eq(q.template_text, p.template_text);
        cr_assert_str_eq(q.pseudo_program, p.pseudo_program);
        cr_assert_str_eq(q.compiler, p.compiler);
        cr_assert_str_eq(q.created_at, p.created_at);
        cr_assert_eq(strlen(q.program_id), 64);
        cr_assert_eq(q.rank, 32);
        cr_assert_eq(q.alpha, 16.0f);
        cr_assert_eq(q.prefix_steps, 64);
        cr_assert_eq(q.L, 2);
        cr_assert_eq(q.adapter_dtype, types[k]);
        cr_assert_eq(q.shape.hidden_size, 64);
        cr_assert_eq(q.shape.intermediate_size, 96);
        cr_assert_eq(q.shape.num_kv_heads, 1);
        cr_assert_eq(q.shape.vocab_size, 1000);
        check_weights(&p, &q, types[k], types[k]);
        cr_assert_eq(paw_program_check_interpreter(&q, &shape), 0, "%s", paw_last_error());
        Qwen3Lora lora;
        paw_program_lora_view(&q, &lora);
        cr_assert_eq(lora.nb, 1);
        cr_assert_eq(lora.scale, 0.5f);
        cr_assert_eq(lora.A[LORA_V], q.A[LORA_V]);
        paw_program_free(&q);
    }
    paw_program_free(&p);
    free(path);
    rm_tree(dir);
}

// Read for CPU inference (PAW_PROGRAM_Q8_ADAPTER), Q4_0 and Q8_0 adapters stay in Q8 blocks whose
// values are exactly the fp32 read's, and an interpreter with them gives the same logits, bit for
// bit; F16 and F32 adapters read as fp32 as before. Such a program is for inference only: no
// backward through it, no writing it back.
Test(program, q8_adapters_for_cpu_inference) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    shape.rms_norm_eps = 1e-6, shape.rope_theta = 1e6, shape.max_position_embeddings = 64;
    shape.tie_word_embeddings = 1;
    Qwen3 model;
    qwen3_create(&model, &shape, 1);
    qwen3_init_random(&model, 7, 0.05f);
    PawProgram p, f, q;
    make_program(&p, &shape, 32);
    int types[4] = {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_F32};
    int ids[2 * 9], targets[2 * 9];
    for (int i = 0; i < 18; i++) ids[i] = (37 * i + 5) % shape.vocab_size, targets[i] = (ids[i] + 1) % shape.vocab_size;
    size_t nl = (size_t)18 * shape.vocab_size;
    float *want = malloc(sizeof(float) * nl);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(paw_program_write(path, &p, types[k]), 0, "%s", paw_last_error());
        cr_assert_eq(paw_program_read(path, &f), 0, "%s", paw_last_error());
        cr_assert_eq(paw_program_read_ex(path, &q, PAW_PROGRAM_Q8_ADAPTER), 0, "%s", paw_last_error());
        int held_q8 = types[k] == GGML_TYPE_Q4_0 || types[k] == GGML_TYPE_Q8_0;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            size_t na = (size_t)q.L * q.rank * q.d_in[m], nb = (size_t)q.L * q.d_out[m] * q.rank;
            cr_assert_eq(q.qA[m] != NULL, held_q8, "type %d module %d", types[k], m);
            cr_assert_eq(q.A[m] == NULL, held_q8);
            if (!held_q8) continue;
            for (size_t i = 0; i < na; i++) {
                float v = q.qAd[m][i / 32] * (float)q.qA[m][i];
                cr_assert(memcmp(&v, &f.A[m][i], 4) == 0, "A module %d value %zu", m, i);
            }
            for (size_t i = 0; i < nb; i++) {
                float v = q.qBd[m][i / 32] * (float)q.qB[m][i];
                cr_assert(memcmp(&v, &f.B[m][i], 4) == 0, "B module %d value %zu", m, i);
            }
        }
        Qwen3Lora lf, lq;
        paw_program_lora_view(&f, &lf);
        paw_program_lora_view(&q, &lq);
        Qwen3Inputs in = {.ids = ids, .targets = targets, .lora = &lf};
        cr_assert_eq(qwen3_forward(&model, &in, 2, 9), 0, "%s", paw_last_error());
        memcpy(want, model.acts.logits, sizeof(float) * nl);
        in.lora = &lq;
        cr_assert_eq(qwen3_forward(&model, &in, 2, 9), 0, "%s", paw_last_error());
        cr_assert(memcmp(want, model.acts.logits, sizeof(float) * nl) == 0, "logits with the adapter of type %d", types[k]);
        if (held_q8) {
            cr_assert_eq(qwen3_backward(&model, 0), -1);
            cr_assert(strstr(paw_last_error(), "Q8 inference weights"), "%s", paw_last_error());
            char *again = paw_path_join(dir, "again.paw");
            cr_assert_eq(paw_program_write(again, &q, GGML_TYPE_Q4_0), -1);
            cr_assert(strstr(paw_last_error(), "Q8 blocks"), "%s", paw_last_error());
            free(again);
        }
        paw_program_free(&f);
        paw_program_free(&q);
    }
    free(want);
    qwen3_free(&model);
    paw_program_free(&p);
    free(path);
    rm_tree(dir);
}

// The program id is sha256(adapter.gguf + prompt_template.txt), and the bundle holds the four
// members with the adapter stored uncompressed.
static uint8_t *member(const char *path, const char *name, size_t *n) {
    int err;
    zip_t *za = zip_open(path, ZIP_RDONLY, &err);
    cr_assert_not_null(za);
    zip_stat_t st;
    cr_assert_eq(zip_stat(za, name, 0, &st), 0, "%s missing", name);
    uint8_t *buf = malloc(st.size + 1);
    zip_file_t *f = zip_fopen(za, name, 0);
    cr_assert_eq(zip_fread(f, buf, st.size), (zip_int64_t)st.size);
    buf[st.size] = 0;
    zip_fclose(f);
    zip_close(za);
    *n = st.size;
    return buf;
}

Test(program, members_and_content_hash) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    PawProgram p, q;
    make_program(&p, &shape, 32);
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_Q4_0), 0, "%s", paw_last_error());
    size_t na, nt, nm, nc;
    uint8_t *adapter = member(path, "adapter.gguf", &na), *tmpl = member(path, "prompt_template.txt", &nt);
    char *meta = (char *)member(path, "meta.json", &nm), *peft = (char *)member(path, "adapter_config.json", &nc);
    PawSha256 s;
    uint8_t d[32];
    char hex[65];
    paw_sha256_init(&s);
    paw_sha256_update(&s, adapter, na);
    paw_sha256_update(&s, tmpl, nt);
    paw_sha256_final(&s, d);
    paw_sha256_hex(d, hex);
    cr_assert_eq(paw_program_read(path, &q), 0, "%s", paw_last_error());
    cr_assert_str_eq(q.program_id, hex);
    cr_assert(strstr(meta, hex));
    cr_assert(strstr(meta, "\"adapter_dtype\":\t\"Q4_0\""), "%s", meta);
    cr_assert(strstr(meta, "\"num_hidden_layers\":\t2"));
    cr_assert(strstr(peft, "\"peft_type\":\t\"LORA\""));
    cr_assert(strstr(peft, "\"r\":\t32"));
    cr_assert(strstr(peft, "\"q_proj\""));
    cr_assert(strstr(peft, "\"task_type\":\t\"CAUSAL_LM\""));

    // The adapter as llama.cpp reads it: metadata, names, ggml shapes, Q4_0 everywhere.
    Gguf g;
    cr_assert_eq(gguf_parse(&g, adapter, na, "adapter.gguf"), 0, "%s", paw_last_error());
    cr_assert_str_eq(gguf_get_str(&g, "general.type"), "adapter");
    cr_assert_str_eq(gguf_get_str(&g, "adapter.type"), "lora");
    cr_assert_str_eq(gguf_get_str(&g, "general.architecture"), "qwen3");
    const GgufKV *alpha = gguf_find_kv(&g, "adapter.lora.alpha");
    cr_assert_eq(alpha->type, GGUF_TYPE_FLOAT32);
    cr_assert_eq(alpha->f64, 16.0);
    cr_assert_eq(g.ntensors, 2 * 7 * 2);
    const GgufTensor *t = gguf_find_tensor(&g, "blk.1.ffn_down.weight.lora_a");
    cr_assert_eq(t->type, GGML_TYPE_Q4_0);
    cr_assert_eq(t->ne[0], 96);  // d_in = intermediate
    cr_assert_eq(t->ne[1], 32);
    t = gguf_find_tensor(&g, "blk.0.attn_k.weight.lora_b");
    cr_assert_eq(t->ne[0], 32);
    cr_assert_eq(t->ne[1], 32);  // d_out = kv heads * head_dim
    t = gguf_find_tensor(&g, "blk.0.attn_output.weight.lora_a");
    cr_assert_eq(t->ne[0], 64);
    cr_assert_not_null(gguf_find_tensor(&g, "blk.1.attn_q.weight.lora_b"));
    gguf_close(&g);

    int err;
    zip_t *za = zip_open(path, ZIP_RDONLY, &err);
    zip_stat_t st;
    cr_assert_eq(zip_stat(za, "adapter.gguf", 0, &st), 0);
    cr_assert_eq(st.comp_method, ZIP_CM_STORE);
    zip_close(za);

    paw_program_free(&q);
    paw_program_free(&p);
    free(adapter);
    free(tmpl);
    free(meta);
    free(peft);
    free(path);
    rm_tree(dir);
}

// Rows not a multiple of 32 (hidden 48, rank 16) fall back to F16 for those tensors only.
Test(program, quantized_fallback_to_f16) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    shape.hidden_size = 48;
    PawProgram p, q;
    make_program(&p, &shape, 32);
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_Q8_0), 0, "%s", paw_last_error());
    cr_assert_eq(paw_program_read(path, &q), 0, "%s", paw_last_error());
    // lora_a of modules with d_in = hidden (48) is F16; down_proj (d_in 96) and o_proj (64) stay Q8_0.
    int L = 2, r = 32;
    float y[128];
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din = q.d_in[m];
        int type = din % 32 ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;
        for (int row = 0; row < L * r; row++) {
            through_type(type, p.A[m] + (size_t)row * din, y, din);
            cr_assert_eq(memcmp(y, q.A[m] + (size_t)row * din, sizeof(float) * din), 0, "module %d", m);
        }
    }
    size_t nm;
    char *meta = (char *)member(path, "meta.json", &nm);
    cr_assert(strstr(meta, "adapter_dtype_note"), "%s", meta);
    cr_assert(strstr(meta, "stored as F16"));
    free(meta);
    paw_program_free(&q);
    paw_program_free(&p);

    make_program(&p, &shape, 16);  // rank 16: every lora_b falls back too
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_Q4_0), 0, "%s", paw_last_error());
    cr_assert_eq(paw_program_read(path, &q), 0, "%s", paw_last_error());
    for (int m = 0; m < LORA_NUM_MODULES; m++)
        for (int row = 0; row < L * q.d_out[m]; row++) {
            through_type(GGML_TYPE_F16, p.B[m] + (size_t)row * 16, y, 16);
            cr_assert_eq(memcmp(y, q.B[m] + (size_t)row * 16, sizeof(float) * 16), 0);
        }
    paw_program_free(&q);
    paw_program_free(&p);
    free(path);
    rm_tree(dir);
}

Test(program, reads_published_layout) {
    PawProgram p;
    cr_assert_eq(paw_program_read(PUBLISHED, &p), 0, "%s", paw_last_error());
    cr_assert_str_eq(p.interpreter, "Qwen/Qwen3-0.6B");
    cr_assert_str_eq(p.spec, "Echo the input in upper case.");
    cr_assert_eq(p.rank, 32);
    cr_assert_eq(p.alpha, 16.0f);
    cr_assert_eq(p.prefix_steps, 64);
    cr_assert_eq(p.L, 2);
    cr_assert_eq(p.adapter_dtype, GGML_TYPE_Q4_0);
    cr_assert_eq(strlen(p.program_id), 64);  // no program_id in its meta.json: the content hash
    char *pre, *suf;
    cr_assert_eq(paw_prompt_template_split(p.template_text, &pre, &suf), 0);
    cr_assert(strstr(pre, "Echo the input"));
    free(pre);
    free(suf);
    Qwen3Config shape = tiny_shape();
    cr_assert_eq(paw_program_check_interpreter(&p, &shape), 0, "%s", paw_last_error());

    SafeTensors st;
    cr_assert_eq(st_open(&st, PUBLISHED_EXPECTED), 0, "%s", paw_last_error());
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        char name[64];
        for (int ab = 0; ab < 2; ab++) {
            snprintf(name, sizeof name, "%s.%s", ab ? "B" : "A", lora_module_names[m]);
            const StTensor *t = st_find(&st, name);
            cr_assert_not_null(t, "%s", name);
            size_t n = ab ? (size_t)p.L * p.d_out[m] * p.rank : (size_t)p.L * p.rank * p.d_in[m];
            cr_assert_eq((size_t)t->numel, n, "%s", name);
            cr_assert_eq(memcmp(t->data, ab ? p.B[m] : p.A[m], n * sizeof(float)), 0, "%s differs from gguf-py", name);
        }
    }
    st_close(&st);
    paw_program_free(&p);
}

Test(program, python_export) {
    const char *path = getenv("PAW_PROGRAM_EXPORT");
    if (!path) return;
    const char *dt = getenv("PAW_PROGRAM_EXPORT_DTYPE");
    int type = dt ? ggml_type_from_name(dt) : GGML_TYPE_Q4_0;
    Qwen3Config shape = tiny_shape();
    PawProgram p;
    make_program(&p, &shape, 32);
    cr_assert_eq(paw_program_write(path, &p, type), 0, "%s", paw_last_error());
    paw_program_free(&p);
}

Test(program, interpreter_mismatch) {
    PawProgram p;
    cr_assert_eq(paw_program_read(PUBLISHED, &p), 0, "%s", paw_last_error());
    Qwen3Config c = tiny_shape();
    c.num_layers = 28;
    cr_assert_eq(paw_program_check_interpreter(&p, &c), -1);
    cr_assert(strstr(paw_last_error(), "layers expected 28, found 2"), "%s", paw_last_error());
    c = tiny_shape();
    c.hidden_size = 1024;
    cr_assert_eq(paw_program_check_interpreter(&p, &c), -1);
    cr_assert(strstr(paw_last_error(), "expected d_in 96, d_out 1024, found 96, 64"), "%s", paw_last_error());
    paw_program_free(&p);

    // A program that records its shape also catches fields the dims do not show (vocabulary).
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    c = tiny_shape();
    make_program(&p, &c, 32);
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_F16), 0, "%s", paw_last_error());
    paw_program_free(&p);
    cr_assert_eq(paw_program_read(path, &p), 0, "%s", paw_last_error());
    c.vocab_size = 151936;
    cr_assert_eq(paw_program_check_interpreter(&p, &c), -1);
    cr_assert(strstr(paw_last_error(), "vocab_size expected 151936, found 1000"), "%s", paw_last_error());
    paw_program_free(&p);
    free(path);
    rm_tree(dir);
}

Test(program, writer_refusals) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    PawProgram p;
    make_program(&p, &shape, 32);
    char *good = p.template_text;
    p.template_text = "no placeholder here";
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_Q4_0), -1);
    cr_assert(strstr(paw_last_error(), "found none"), "%s", paw_last_error());
    p.template_text = "{INPUT_PLACEHOLDER} and {INPUT_PLACEHOLDER}";
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_Q4_0), -1);
    cr_assert(strstr(paw_last_error(), "more than one"), "%s", paw_last_error());
    p.template_text = good;
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_BF16), -1);
    cr_assert(strstr(paw_last_error(), "BF16"));
    p.A[LORA_Q][17] = NAN;
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_F32), -1);
    cr_assert(strstr(paw_last_error(), "q_proj: A holds a non-finite value at index 17"), "%s", paw_last_error());
    p.A[LORA_Q][17] = 0;
    p.B[LORA_DOWN][3] = 1e5f;  // past fp16: written as infinity in F16, Q8_0 or Q4_0 blocks
    for (int t = 0; t < 3; t++) {
        const int dt[3] = {GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
        cr_assert_eq(paw_program_write(path, &p, dt[t]), -1);
        cr_assert(strstr(paw_last_error(), "down_proj: B holds 100000, past fp16's range"), "%s", paw_last_error());
    }
    char big[600];
    snprintf(big, sizeof big, "%s.f32", path);  // F32 holds it
    cr_assert_eq(paw_program_write(big, &p, GGML_TYPE_F32), 0, "%s", paw_last_error());
    unlink(big);
    p.B[LORA_DOWN][3] = 0;
    p.shape.head_dim = 0;
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_F32), -1);
    cr_assert(strstr(paw_last_error(), "incomplete"));
    p.shape = shape;
    char *interp = p.interpreter;
    p.interpreter = NULL;
    cr_assert_eq(paw_program_write(path, &p, GGML_TYPE_F32), -1);
    p.interpreter = interp;
    cr_assert_eq(paw_file_exists(path), 0);  // nothing written by the refused calls
    paw_program_free(&p);
    free(path);
    rm_tree(dir);
}

// ---------------------------------------------------------------------------------------------
// Bad bundles

typedef struct {
    const char *name;
    const void *data;  // NULL: drop the member
    size_t size;
} Replace;

// Copies src to dst, applying the replacements (a name not in src is added).
static void rezip(const char *src, const char *dst, const Replace *rep, int nrep) {
    int err;
    zip_t *in = zip_open(src, ZIP_RDONLY, &err);
    cr_assert_not_null(in);
    zip_t *out = zip_open(dst, ZIP_CREATE | ZIP_TRUNCATE, &err);
    cr_assert_not_null(out);
    void *keep[16];
    int nkeep = 0;
    zip_int64_t n = zip_get_num_entries(in, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(in, (zip_uint64_t)i, 0);
        int replaced = 0;
        for (int k = 0; k < nrep; k++) replaced |= strcmp(rep[k].name, name) == 0;
        if (replaced) continue;
        zip_source_t *s = zip_source_zip(out, in, (zip_uint64_t)i, 0, 0, -1);
        cr_assert_not_null(s);
        cr_assert(zip_file_add(out, name, s, 0) >= 0);
    }
    for (int k = 0; k < nrep; k++) {
        if (!rep[k].data) continue;
        void *copy = malloc(rep[k].size + 1);
        memcpy(copy, rep[k].data, rep[k].size);
        keep[nkeep++] = copy;
        zip_source_t *s = zip_source_buffer(out, copy, rep[k].size, 0);
        cr_assert(zip_file_add(out, rep[k].name, s, 0) >= 0);
    }
    cr_assert_eq(zip_close(out), 0);
    zip_close(in);
    for (int k = 0; k < nkeep; k++) free(keep[k]);
}

static void expect_read_fails(const char *path, const char *needle) {
    PawProgram p;
    memset(&p, 0x5a, sizeof p);
    cr_assert_eq(paw_program_read(path, &p), -1, "accepted a bundle that should fail with '%s'", needle);
    cr_assert(strstr(paw_last_error(), needle), "'%s' not in: %s", needle, paw_last_error());
    cr_assert_null(p.interpreter);  // left empty
    cr_assert_null(p.A[0]);
    paw_program_free(&p);
}

// A minimal meta.json without a content hash, so that edits of the adapter reach its checks.
static const char kLooseMeta[] = "{\"interpreter\": \"Qwen/Qwen3-0.6B\", \"lora_rank\": 32, \"lora_alpha\": 16}";

// An adapter for the tiny shape with one thing changed: mode 0 intact, 1 a wrong rank in one
// tensor, 2 a missing lora_b, 3 general.type "model", 4 a wrong d_in in one layer, 5 a foreign tensor.
static void bad_adapter(int mode, uint8_t **out, size_t *n) {
    Qwen3Config s = tiny_shape();
    GgufWriter w;
    gguf_writer_init(&w);
    gguf_writer_set_str(&w, "general.architecture", "qwen3");
    gguf_writer_set_str(&w, "general.type", mode == 3 ? "model" : "adapter");
    gguf_writer_set_str(&w, "adapter.type", "lora");
    gguf_writer_set_f32(&w, "adapter.lora.alpha", 16.0f);
    static float zeros[96 * 64];
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            int din, dout;
            lora_module_dims(&s, m, &din, &dout);
            char name[64];
            int r = mode == 1 && l == 1 && m == LORA_UP ? 64 : 32;
            if (mode == 4 && l == 1 && m == LORA_GATE) din = 32;
            int64_t ne_a[2] = {din, r}, ne_b[2] = {32, dout};
            paw_lora_gguf_name(l, m, ".lora_a", name, sizeof name);
            cr_assert_eq(gguf_writer_add_tensor_f32(&w, name, GGML_TYPE_F16, 2, ne_a, zeros), 0);
            if (mode == 2 && l == 0 && m == LORA_O) continue;
            paw_lora_gguf_name(l, m, ".lora_b", name, sizeof name);
            cr_assert_eq(gguf_writer_add_tensor_f32(&w, name, GGML_TYPE_F16, 2, ne_b, zeros), 0);
        }
    if (mode == 5) cr_assert_eq(gguf_writer_add_tensor_f32(&w, "output.weight.lora_a", GGML_TYPE_F32, 1, (int64_t[]){4}, zeros), 0);
    cr_assert_eq(gguf_writer_serialize(&w, out, n), 0);
    gguf_writer_free(&w);
}

Test(program, bad_bundles) {
    char *dir = tmpdir_new();
    char *good = paw_path_join(dir, "good.paw"), *bad = paw_path_join(dir, "bad.paw");
    Qwen3Config shape = tiny_shape();
    PawProgram p;
    make_program(&p, &shape, 32);
    cr_assert_eq(paw_program_write(good, &p, GGML_TYPE_F32), 0, "%s", paw_last_error());
    paw_program_free(&p);
    size_t n;
    uint8_t *bytes = (uint8_t *)paw_read_file(good, &n);

    // Not a ZIP at all; an empty file; a missing file.
    cr_assert_eq(paw_write_file_atomic(bad, "definitely not a zip file, just text", 36), 0);
    expect_read_fails(bad, "not a ZIP");
    cr_assert_eq(paw_write_file_atomic(bad, "", 0), 0);
    expect_read_fails(bad, "bad.paw");
    expect_read_fails("tests/fixtures/gguf/absent.paw", "absent.paw");

    // Truncated: every cut loses the central directory at the end.
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        cr_assert_eq(paw_write_file_atomic(bad, bytes, cut), 0);
        expect_read_fails(bad, "bad.paw");
    }
    cr_assert_eq(paw_write_file_atomic(bad, bytes, n - 1), 0);
    expect_read_fails(bad, "bad.paw");

    // A member that claims far more bytes than its compressed size can give (the central
    // directory's uncompressed size of adapter.gguf set to 4 GB): refused before allocating.
    {
        uint8_t *lie = malloc(n);
        memcpy(lie, bytes, n);
        int patched = 0;
        for (size_t i = 0; i + 46 + 12 <= n; i++)
            if (!memcmp(lie + i, "PK\x01\x02", 4) && !memcmp(lie + i + 46, "adapter.gguf", 12)) {
                const uint8_t big[4] = {0x00, 0x00, 0x00, 0xf0};
                uint32_t local = (uint32_t)lie[i + 42] | (uint32_t)lie[i + 43] << 8 | (uint32_t)lie[i + 44] << 16 |
                                 (uint32_t)lie[i + 45] << 24;
                cr_assert(local + 30 <= n && !memcmp(lie + local, "PK\x03\x04", 4));
                memcpy(lie + i + 24, big, 4), memcpy(lie + local + 22, big, 4), patched = 1;  // both headers
            }
        cr_assert(patched, "the central directory entry of adapter.gguf");
        cr_assert_eq(paw_write_file_atomic(bad, lie, n), 0);
        expect_read_fails(bad, "more than deflate can give");
        free(lie);
    }

    // A flipped byte inside the stored adapter's tensor data: the CRC catches it.
    uint8_t *at = memmem(bytes, n, "GGUF", 4);
    cr_assert_not_null(at);
    uint8_t *copy = malloc(n);
    memcpy(copy, bytes, n);
    copy[(at - bytes) + 5000] ^= 0x10;
    cr_assert_eq(paw_write_file_atomic(bad, copy, n), 0);
    expect_read_fails(bad, "CRC");
    free(copy);

    // Missing members.
    const char *needed[3] = {"adapter.gguf", "prompt_template.txt", "meta.json"};
    for (int k = 0; k < 3; k++) {
        Replace r = {needed[k], NULL, 0};
        rezip(good, bad, &r, 1);
        expect_read_fails(bad, "missing member");
        expect_read_fails(bad, needed[k]);
    }
    // Without the optional PEFT config it still reads.
    Replace drop_peft = {"adapter_config.json", NULL, 0};
    rezip(good, bad, &drop_peft, 1);
    cr_assert_eq(paw_program_read(bad, &p), 0, "%s", paw_last_error());
    paw_program_free(&p);

    // Templates without and with two placeholders.
    Replace t0 = {"prompt_template.txt", "no placeholder", 14};
    rezip(good, bad, &t0, 1);
    expect_read_fails(bad, "found none");
    const char *two = "a {INPUT_PLACEHOLDER} b {INPUT_PLACEHOLDER}";
    Replace t2 = {"prompt_template.txt", two, strlen(two)};
    rezip(good, bad, &t2, 1);
    expect_read_fails(bad, "more than one");
    Replace tnul = {"prompt_template.txt", "{INPUT_PLACEHOLDER}\0x", 21};
    rezip(good, bad, &tnul, 1);
    expect_read_fails(bad, "NUL");

    // A template edited without updating the hash.
    const char *other = "other {INPUT_PLACEHOLDER}";
    Replace t3 = {"prompt_template.txt", other, strlen(other)};
    rezip(good, bad, &t3, 1);
    expect_read_fails(bad, "content hash mismatch");

    // meta.json problems.
    Replace m1 = {"meta.json", "{not json", 9};
    rezip(good, bad, &m1, 1);
    expect_read_fails(bad, "meta.json: not a JSON object");
    const char *noint = "{\"spec\": \"x\"}";
    Replace m2 = {"meta.json", noint, strlen(noint)};
    rezip(good, bad, &m2, 1);
    expect_read_fails(bad, "missing string 'interpreter'");
    const char *wrong_shape =
        "{\"interpreter\": \"x\", \"interpreter_config\": {\"num_hidden_layers\": 2, \"hidden_size\": 128, "
        "\"intermediate_size\": 96, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 32}}";
    Replace m3 = {"meta.json", wrong_shape, strlen(wrong_shape)};
    rezip(good, bad, &m3, 1);
    expect_read_fails(bad, "interpreter_config implies");
    const char *wrong_rank = "{\"interpreter\": \"x\", \"lora_rank\": 16}";
    Replace m4 = {"meta.json", wrong_rank, strlen(wrong_rank)};
    rezip(good, bad, &m4, 1);
    expect_read_fails(bad, "meta.json lora_rank is 16");
    const char *wrong_alpha = "{\"interpreter\": \"x\", \"lora_alpha\": 8}";
    Replace m5 = {"meta.json", wrong_alpha, strlen(wrong_alpha)};
    rezip(good, bad, &m5, 1);
    expect_read_fails(bad, "adapter.lora.alpha is 16 but meta.json lora_alpha is 8");
    const char *fewer_layers = "{\"interpreter\": \"x\", \"interpreter_config\": {\"num_hidden_layers\": 1}}";
    Replace m6 = {"meta.json", fewer_layers, strlen(fewer_layers)};
    rezip(good, bad, &m6, 1);
    expect_read_fails(bad, "tensor for layer 1 but the interpreter has 1 layers");

    // Adapters with inconsistent tensors.
    const char *needles[6] = {NULL, "has rank 64, other tensors have 32", "missing its lora_b", "expected 'adapter'",
                              "has d_in 32, other layers have 64", "not a supported LoRA tensor"};
    for (int mode = 0; mode < 6; mode++) {
        uint8_t *ad;
        size_t nad;
        bad_adapter(mode, &ad, &nad);
        Replace r[2] = {{"adapter.gguf", ad, nad}, {"meta.json", kLooseMeta, strlen(kLooseMeta)}};
        rezip(good, bad, r, 2);
        if (mode == 0) {
            cr_assert_eq(paw_program_read(bad, &p), 0, "%s", paw_last_error());
            cr_assert_eq(p.A[LORA_Q][0], 0.0f);
            paw_program_free(&p);
        } else {
            expect_read_fails(bad, needles[mode]);
            expect_read_fails(bad, "adapter.gguf");
        }
        free(ad);
    }
    // A truncated adapter inside an intact ZIP.
    uint8_t *ad;
    size_t nad;
    bad_adapter(0, &ad, &nad);
    Replace r[2] = {{"adapter.gguf", ad, nad - 100}, {"meta.json", kLooseMeta, strlen(kLooseMeta)}};
    rezip(good, bad, r, 2);
    expect_read_fails(bad, "outside");
    free(ad);
    // A PEFT config that disagrees.
    const char *peft = "{\"r\": 8}";
    Replace pc = {"adapter_config.json", peft, strlen(peft)};
    rezip(good, bad, &pc, 1);
    expect_read_fails(bad, "r is 8 but the adapter tensors have rank 32");

    free(bytes);
    free(good);
    free(bad);
    rm_tree(dir);
}

Test(program, atomic_replace) {
    char *dir = tmpdir_new();
    char *path = paw_path_join(dir, "p.paw");
    Qwen3Config shape = tiny_shape();
    PawProgram a, b, q;
    make_program(&a, &shape, 32);
    make_program(&b, &shape, 32);
    free(b.spec);
    b.spec = xstrdup("A second program.");
    b.A[LORA_O][3] = 0.75f;
    cr_assert_eq(paw_program_write(path, &a, GGML_TYPE_F32), 0, "%s", paw_last_error());
    cr_assert_eq(paw_program_write(path, &b, GGML_TYPE_F32), 0, "%s", paw_last_error());
    cr_assert_eq(paw_program_read(path, &q), 0, "%s", paw_last_error());
    cr_assert_str_eq(q.spec, "A second program.");
    cr_assert_eq(q.A[LORA_O][3], 0.75f);
    paw_program_free(&q);
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            files++;
            cr_assert_str_eq(e->d_name, "p.paw");  // no temporary left behind
        }
    closedir(d);
    cr_assert_eq(files, 1);
    paw_program_free(&a);
    paw_program_free(&b);
    free(path);
    rm_tree(dir);
}
