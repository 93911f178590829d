// The synthetic data driver: spec phrasing (templates, detail sentences, noise), held-out
// partitions, pseudo-programs, JSONL lines and the three split files.
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/synth_internal.h"

enum { INPUT_TRIES = 400, SPEC_TRIES = 50, MAX_PSEUDO = 8 };

void synth_options_default(SynthOptions *o) {
    o->max_input_chars = 0;
    o->max_output_chars = 0;
    o->max_spec_chars = 0;
    o->pseudo_examples = 2;
    o->noise = 0.3;
    o->detail = 0.4;
}

// Every third template (indices 2, 5, 8, ...) is reserved for the test split.
int synth_phrasing_held_out(int template_index) { return template_index % 3 == 2; }

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

int synth_input_held_out(int family, const char *input) {
    const SynthFamily *f = synth_family(family);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, f ? f->name : "");
    h = fnv1a(h * 0x100000001b3ULL, input);  // the multiply separates name from input
    return synth_splitmix64(&h) % 5 == 0;
}

int synth_solve(int family, const SynthParams *p, const char *input, char *out, size_t cap) {
    const SynthFamily *f = synth_family(family);
    if (!f) return paw_error("synth: no family %d", family);
    SynthBuf b;
    synth_buf_init(&b, out, cap);
    if (f->solve(p, input, &b) != 0) return paw_error("synth %s: input '%s' is not one this task understands", f->name, input);
    if (b.overflow) return paw_error("synth %s: output longer than %zu bytes", f->name, cap);
    return 0;
}

// ---- spec phrasing

static const char *const prefixes[] = {"", "", "", "", "Task: ", "Instruction: ", "Goal: ", NULL};
static const char *const suffixes[] = {" Output only the answer.", " Reply with just the result.", " No explanation.",
                                       " Keep the answer short.", NULL};

// Marks the characters of "{P}"/"{Q}" placeholders, which noise must leave alone.
static void placeholder_mask(const char *t, char *mask) {
    size_t n = strlen(t);
    memset(mask, 0, n + 1);
    for (size_t i = 0; i + 2 < n; i++)
        if (t[i] == '{' && (t[i + 1] == 'P' || t[i + 1] == 'Q') && t[i + 2] == '}') mask[i] = mask[i + 1] = mask[i + 2] = 1;
}

// Typos and casing changes, as people type specs: lowercase everything, swap, drop or double a
// letter, or lose the final period.
static void add_noise(SynthRng *r, char *t) {
    char mask[SYNTH_FIELD * 2];
    int ops = 1 + (synth_rng_below(r, 3) == 0);
    for (int op = 0; op < ops; op++) {
        size_t n = strlen(t);
        if (n < 4 || n >= sizeof mask) return;
        placeholder_mask(t, mask);
        int kind = (int)synth_rng_below(r, 5);
        if (kind == 0) {  // all-capital words (labels such as ERROR, formats such as HH:MM) keep their case
            for (size_t i = 0; i < n; i++) {
                int caps_word = isupper((unsigned char)t[i]) && (isupper((unsigned char)t[i + 1]) || (i && isupper((unsigned char)t[i - 1])));
                if (!mask[i] && !caps_word) t[i] = (char)tolower((unsigned char)t[i]);
            }
            continue;
        }
        if (kind == 4) {
            if (t[n - 1] == '.') t[n - 1] = 0;
            continue;
        }
        for (int tries = 0; tries < 20; tries++) {  // a letter inside a word, away from placeholders
            size_t i = 1 + synth_rng_below(r, (uint32_t)(n - 2));
            if (mask[i] || mask[i + 1] || !isalpha((unsigned char)t[i]) || !isalpha((unsigned char)t[i + 1]) ||
                !isalpha((unsigned char)t[i - 1]))
                continue;
            if (kind == 1) {
                char c = t[i];
                t[i] = t[i + 1];
                t[i + 1] = c;
            } else if (kind == 2) {
                memmove(t + i, t + i + 1, n - i);
            } else {
                memmove(t + i + 1, t + i, n - i + 1);
            }
            break;
        }
    }
}

// Appends text with {P} and {Q} replaced by the parameters.
static void add_substituted(SynthBuf *b, const char *t, const SynthParams *p) {
    for (; *t; t++) {
        if (t[0] == '{' && (t[1] == 'P' || t[1] == 'Q') && t[2] == '}') {
            synth_buf_add(b, t[1] == 'P' ? p->p : p->q);
            t += 2;
        } else synth_buf_addc(b, *t);
    }
}

static void build_spec(const SynthFamily *f, SynthSplit split, SynthRng *r, const SynthOptions *o, const SynthParams *p, SynthBuf *b) {
    int n = synth_list_len(f->phrasings), idx[64], k = 0;
    for (int i = 0; i < n && k < 64; i++)
        if (synth_phrasing_held_out(i) == (split == SYNTH_TEST)) idx[k++] = i;
    char t[SYNTH_FIELD * 2];
    snprintf(t, sizeof t, "%s", f->phrasings[idx[synth_rng_below(r, (uint32_t)k)]]);
    if (synth_rng_unit(r) < o->noise) add_noise(r, t);
    synth_buf_add(b, synth_pick(r, prefixes));
    add_substituted(b, t, p);
    if (f->details && f->details[0] && synth_rng_unit(r) < o->detail) {
        synth_buf_addc(b, ' ');
        add_substituted(b, synth_pick(r, f->details), p);
    }
    if (synth_rng_below(r, 4) == 0) synth_buf_add(b, synth_pick(r, suffixes));
}

// ---- inputs

// Draws an input from the wanted partition that fits the limits, differs from the `avoid`
// inputs, and has a ground truth; writes it and its output. -1 when none turned up.
static int draw_case(int family, const SynthParams *p, int held_out, SynthRng *r, const SynthOptions *o, char avoid[][SYNTH_FIELD],
                     int navoid, char *in, char *out) {
    const SynthFamily *f = synth_family(family);
    for (int tries = 0; tries < INPUT_TRIES; tries++) {
        SynthBuf b;
        synth_buf_init(&b, in, SYNTH_FIELD);
        f->input(r, p, o->max_input_chars, &b);
        if (b.overflow || !b.len || (o->max_input_chars > 0 && b.len > (size_t)o->max_input_chars)) continue;
        if (synth_input_held_out(family, in) != held_out) continue;
        int dup = 0;
        for (int i = 0; i < navoid && !dup; i++) dup = !strcmp(avoid[i], in);
        if (dup) continue;
        SynthBuf ob;
        synth_buf_init(&ob, out, SYNTH_FIELD);
        if (f->solve(p, in, &ob) != 0 || ob.overflow || !ob.len) continue;
        if (o->max_output_chars > 0 && ob.len > (size_t)o->max_output_chars) continue;
        return 0;
    }
    return -1;
}

void synth_example_free(SynthExample *ex) {
    if (!ex) return;
    free(ex->spec);
    free(ex->input);
    free(ex->output);
    free(ex->pseudo_program);
    free(ex->task_id);
    memset(ex, 0, sizeof *ex);
}

int synth_example(int family, SynthSplit split, SynthRng *r, const SynthOptions *o, SynthExample *ex) {
    memset(ex, 0, sizeof *ex);
    const SynthFamily *f = synth_family(family);
    if (!f) return paw_error("synth: no family %d (there are %d)", family, synth_family_count());
    ex->family = family;
    if (f->params) f->params(r, &ex->params);
    const SynthParams *p = &ex->params;

    char cases[MAX_PSEUDO + 1][SYNTH_FIELD], outs[MAX_PSEUDO + 1][SYNTH_FIELD];
    if (draw_case(family, p, split != SYNTH_TRAIN, r, o, NULL, 0, cases[0], outs[0]) != 0) {
        if (o->max_input_chars > 0 || o->max_output_chars > 0)
            return paw_error("synth %s: no input within --max-input-chars %d / --max-output-chars %d after %d tries; raise the limits or drop the family",
                             f->name, o->max_input_chars, o->max_output_chars, INPUT_TRIES);
        return paw_error("synth %s: could not draw a %s input after %d tries", f->name, split == SYNTH_TRAIN ? "train" : "held-out", INPUT_TRIES);
    }

    // Pseudo-program examples come from the train partition and differ from the example's input.
    int npseudo = o->pseudo_examples < MAX_PSEUDO ? o->pseudo_examples : MAX_PSEUDO, have = 1;
    for (int i = 0; i < npseudo; i++)
        if (draw_case(family, p, 0, r, o, cases, have, cases[have], outs[have]) == 0) have++;

    char spec[SYNTH_FIELD * 2];
    SynthBuf sb;
    int tries = 0;
    do {
        synth_buf_init(&sb, spec, sizeof spec);
        build_spec(f, split, r, o, p, &sb);
    } while ((sb.overflow || (o->max_spec_chars > 0 && sb.len > (size_t)o->max_spec_chars)) && ++tries < SPEC_TRIES);
    if (tries == SPEC_TRIES) return paw_error("synth %s: no spec within --max-spec-chars %d", f->name, o->max_spec_chars);

    char prog[SYNTH_FIELD * 12];
    SynthBuf pb;
    synth_buf_init(&pb, prog, sizeof prog);
    synth_buf_add(&pb, "[PSEUDO_PROGRAM]\nTask: ");
    add_substituted(&pb, f->task, p);
    if (have > 1) synth_buf_add(&pb, "\nExamples:");
    for (int i = 1; i < have; i++) {
        synth_buf_add(&pb, "\nInput: ");
        synth_buf_add(&pb, cases[i]);
        synth_buf_add(&pb, "\nOutput: ");
        synth_buf_add(&pb, outs[i]);
    }
    synth_buf_add(&pb, "\n[END_PSEUDO_PROGRAM]");
    if (pb.overflow) return paw_error("synth %s: pseudo-program longer than %zu bytes", f->name, sizeof prog);

    char tid[SYNTH_FIELD];
    snprintf(tid, sizeof tid, "%s%s%s%s%s", f->name, p->p[0] ? ":" : "", p->p, p->q[0] ? ":" : "", p->q);
    ex->spec = xstrdup(spec);
    ex->input = xstrdup(cases[0]);
    ex->output = xstrdup(outs[0]);
    ex->pseudo_program = xstrdup(prog);
    ex->task_id = xstrdup(tid);
    return 0;
}

char *synth_example_json(const SynthExample *ex) {
    const SynthFamily *f = synth_family(ex->family);
    cJSON *o = cJSON_CreateObject();
    if (!o || !f || !cJSON_AddStringToObject(o, "spec", ex->spec) || !cJSON_AddStringToObject(o, "input", ex->input) ||
        !cJSON_AddStringToObject(o, "output", ex->output) ||
        (ex->pseudo_program && !cJSON_AddStringToObject(o, "pseudo_program", ex->pseudo_program)) ||
        (ex->task_id && !cJSON_AddStringToObject(o, "task_id", ex->task_id)) || !cJSON_AddStringToObject(o, "family", f->name) ||
        !cJSON_AddStringToObject(o, "area", synth_area_name(f->area))) {
        cJSON_Delete(o);
        paw_error("synth: could not build the JSON object (out of memory or bad family)");
        return NULL;
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) paw_error("synth: cJSON could not print the example");
    return s;
}

// ---- dataset

static const char *const split_files[3] = {"train.jsonl", "val.jsonl", "test.jsonl"};

int synth_dataset_example(const SynthConfig *cfg, SynthSplit split, int i, SynthExample *ex) {
    int nf = cfg->families ? cfg->nfamilies : synth_family_count();
    if (nf <= 0) return paw_error("synth: no families selected");
    int family = cfg->families ? cfg->families[i % nf] : i % nf;  // round robin keeps the mix even
    uint64_t st = cfg->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(split + 1));
    st = synth_splitmix64(&st) ^ (uint64_t)i;
    SynthRng r;
    synth_rng_seed(&r, synth_splitmix64(&st));
    return synth_example(family, split, &r, &cfg->opt, ex);
}

void synth_report_free(SynthReport *rep) {
    if (!rep) return;
    free(rep->counts);
    rep->counts = NULL;
}

int synth_write_dataset(const SynthConfig *cfg, const char *dir, SynthReport *rep) {
    memset(rep, 0, sizeof *rep);
    int ntotal = synth_family_count();
    for (int s = 0; s < 3; s++)
        if (cfg->n[s] < 0) return paw_error("synth: negative example count %d for %s", cfg->n[s], split_files[s]);
    for (int i = 0; cfg->families && i < cfg->nfamilies; i++)
        if (!synth_family(cfg->families[i])) return paw_error("synth: no family %d", cfg->families[i]);
    if (paw_mkdir_p(dir) != 0) return paw_error_context("synth: creating %s: ", dir);
    rep->counts = xcalloc((size_t)ntotal * 3, sizeof(int));

    PawAtomicFile af[3];
    int opened = 0, rc = -1;
    PawProgress prog;
    int64_t total = (int64_t)cfg->n[0] + cfg->n[1] + cfg->n[2], done = 0;
    if (cfg->show_progress) paw_progress_start(&prog, "synth", total);
    for (int s = 0; s < 3; s++) {
        char *path = paw_path_join(dir, split_files[s]);
        int ok = paw_atomic_open(&af[s], path);
        free(path);
        if (ok != 0) goto out;
        opened++;
        for (int i = 0; i < cfg->n[s]; i++) {
            SynthExample ex;
            if (synth_dataset_example(cfg, (SynthSplit)s, i, &ex) != 0) goto out;
            char *line = synth_example_json(&ex);
            int fam = ex.family;
            synth_example_free(&ex);
            if (!line) goto out;
            size_t len = strlen(line);
            line[len] = '\n';  // replaces the terminator; the write takes len + 1 bytes
            int w = paw_atomic_write(&af[s], line, len + 1);
            free(line);
            if (w != 0) goto out;
            rep->counts[fam * 3 + s]++;
            rep->bytes[s] += (int64_t)len + 1;
            if (cfg->show_progress) paw_progress_update(&prog, ++done, split_files[s]);
        }
    }
    // Commit only once all three are complete, so a failure leaves any previous files whole.
    for (int s = 0; s < 3; s++) {
        if (paw_atomic_commit(&af[s]) != 0) {
            for (int k = s + 1; k < 3; k++) paw_atomic_abort(&af[k]);
            opened = 0;
            goto out;
        }
    }
    opened = 0;
    rc = 0;
out:
    for (int s = 0; s < opened; s++) paw_atomic_abort(&af[s]);
    if (cfg->show_progress) paw_progress_finish(&prog, done, rc ? "failed" : "done");
    if (rc) synth_report_free(rep);
    return rc;
}
