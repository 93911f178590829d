// `paw data synth`: writes procedural FuzzyBench-style train/val/test JSONL files.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/progress.h"
#include "data/synth.h"

static void list_families(uint64_t seed, const SynthOptions *o) {
    int n = synth_family_count();
    printf("%-20s %-9s %-9s %s\n", "family", "area", "phrasings", "sample (input -> output)");
    for (int i = 0; i < n; i++) {
        const SynthFamily *f = synth_family(i);
        SynthRng r;
        synth_rng_seed(&r, seed + (uint64_t)i);
        SynthExample ex;
        if (synth_example(i, SYNTH_TRAIN, &r, o, &ex) == 0) {
            printf("%-20s %-9s %-9d \"%s\" -> \"%s\"\n", f->name, synth_area_name(f->area), synth_phrasing_count(i), ex.input, ex.output);
            printf("%-20s %-9s %-9s spec: %s\n", "", "", "", ex.spec);
            synth_example_free(&ex);
        } else {
            printf("%-20s %-9s %-9d (no sample: %s)\n", f->name, synth_area_name(f->area), synth_phrasing_count(i), paw_last_error());
        }
    }
    printf("\n%d families in %d areas:", n, SYNTH_NAREAS);
    for (int a = 0; a < SYNTH_NAREAS; a++) printf("%s %s (%s)", a ? "," : "", synth_area_name((SynthArea)a), synth_area_description((SynthArea)a));
    printf("\n");
}

// Parses "a,b,c" into family indices (duplicates dropped).
static int parse_families(const char *s, int **out, int *n) {
    int cap = synth_family_count(), k = 0;
    int *v = malloc(sizeof(int) * (size_t)cap);
    if (!v) return paw_error("out of memory");
    char *copy = strdup(s);
    if (!copy) {
        free(v);
        return paw_error("out of memory");
    }
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        size_t L = strlen(tok);
        while (L && tok[L - 1] == ' ') tok[--L] = 0;
        if (!L) continue;
        int id = synth_find_family(tok);
        if (id < 0) {
            paw_error("unknown family '%s' (paw data synth --list shows the %d families)", tok, cap);
            free(copy);
            free(v);
            return -1;
        }
        int dup = 0;
        for (int i = 0; i < k; i++) dup |= v[i] == id;
        if (!dup) v[k++] = id;
    }
    free(copy);
    if (!k) {
        free(v);
        return paw_error("--families '%s' names no family", s);
    }
    *out = v;
    *n = k;
    return 0;
}

static void print_report(const SynthConfig *cfg, const SynthReport *rep, const char *dir, double secs) {
    int n = synth_family_count();
    int area[SYNTH_NAREAS][3] = {{0}}, tot[3] = {0};
    printf("%-20s %-9s %8s %8s %8s\n", "family", "area", "train", "val", "test");
    for (int i = 0; i < n; i++) {
        const int *c = &rep->counts[i * 3];
        if (!c[0] && !c[1] && !c[2]) continue;
        const SynthFamily *f = synth_family(i);
        printf("%-20s %-9s %8d %8d %8d\n", f->name, synth_area_name(f->area), c[0], c[1], c[2]);
        for (int s = 0; s < 3; s++) area[f->area][s] += c[s], tot[s] += c[s];
    }
    printf("\n%-30s %8s %8s %8s\n", "area", "train", "val", "test");
    for (int a = 0; a < SYNTH_NAREAS; a++)
        if (area[a][0] || area[a][1] || area[a][2])
            printf("%-30.30s %8d %8d %8d\n", synth_area_description((SynthArea)a), area[a][0], area[a][1], area[a][2]);
    printf("%-30s %8d %8d %8d\n", "total", tot[0], tot[1], tot[2]);
    printf("\nwrote %s/{train,val,test}.jsonl (%lld, %lld, %lld bytes) in %.2fs, seed %llu\n", dir, (long long)rep->bytes[0],
           (long long)rep->bytes[1], (long long)rep->bytes[2], secs, (unsigned long long)cfg->seed);
}

int cmd_data_synth(int argc, char **argv) {
    int seed = 1, ntrain = 10000, nval = 500, ntest = 500, list = 0;
    const char *families = NULL, *out = NULL;
    SynthOptions o;
    synth_options_default(&o);
    float noise = (float)o.noise, detail = (float)o.detail;
    PawOpt opts[] = {
        {"out", PAW_OPT_STR, &out, "output directory (also -o DIR)"},
        {"seed", PAW_OPT_INT, &seed, "random seed; the same seed gives the same bytes"},
        {"train", PAW_OPT_INT, &ntrain, "train examples"},
        {"val", PAW_OPT_INT, &nval, "validation examples (train phrasings, held-out inputs)"},
        {"test", PAW_OPT_INT, &ntest, "test examples (held-out phrasings and inputs)"},
        {"families", PAW_OPT_STR, &families, "comma-separated family names (default: all; see --list)"},
        {"max-input-chars", PAW_OPT_INT, &o.max_input_chars, "longest input in bytes, 0 = no limit"},
        {"max-output-chars", PAW_OPT_INT, &o.max_output_chars, "longest output in bytes, 0 = no limit"},
        {"max-spec-chars", PAW_OPT_INT, &o.max_spec_chars, "longest spec in bytes, 0 = no limit"},
        {"pseudo-examples", PAW_OPT_INT, &o.pseudo_examples, "input/output examples in each pseudo-program (0-8)"},
        {"noise", PAW_OPT_FLOAT, &noise, "probability of typo/casing noise in a spec"},
        {"detail", PAW_OPT_FLOAT, &detail, "probability of an extra detail sentence in a spec"},
        {"list", PAW_OPT_FLAG, &list, "list the families with their area and a sample, then exit"},
    };
    PawCommandSpec spec = {
        "paw data synth -o DIR [--train N] [--val N] [--test N] [--families a,b] [options]",
        "Generates FuzzyBench-style JSONL (spec, input, output, pseudo_program, task_id, family, area) from\n"
        "procedural task families with ground truth computed in C. train uses train phrasings and inputs;\n"
        "val uses train phrasings with held-out inputs; test uses held-out phrasings and held-out inputs.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0};

    // Accept the short "-o DIR" as well as --out.
    char **args = xmalloc(sizeof(char *) * (size_t)(argc + 1));
    for (int i = 0; i < argc; i++) args[i] = !strcmp(argv[i], "-o") ? "--out" : argv[i];
    char *pos[1];
    int npos, prc = paw_parse_args(&spec, argc, args, pos, &npos);
    free(args);
    if (prc != 0) return prc > 0 ? 0 : 2;
    o.noise = noise;
    o.detail = detail;

    if (list) {
        list_families((uint64_t)(unsigned)seed, &o);
        return 0;
    }
    const char *bad = NULL;
    if (ntrain < 0 || nval < 0 || ntest < 0) bad = "--train, --val and --test must be >= 0";
    else if (o.max_input_chars < 0 || o.max_output_chars < 0 || o.max_spec_chars < 0) bad = "--max-*-chars must be >= 0";
    else if (o.pseudo_examples < 0 || o.pseudo_examples > 8) bad = "--pseudo-examples must be in 0..8";
    else if (!(noise >= 0 && noise <= 1) || !(detail >= 0 && detail <= 1)) bad = "--noise and --detail must be in [0, 1]";
    else if (!out) bad = "an output directory is required (-o DIR)";
    if (bad) {
        fprintf(stderr, "paw data synth: %s\n", bad);
        return 2;
    }
    SynthConfig cfg = {.seed = (uint64_t)(unsigned)seed, .n = {ntrain, nval, ntest}, .opt = o, .show_progress = 1};
    int *fam = NULL;
    if (families) {
        if (parse_families(families, &fam, &cfg.nfamilies) != 0) {
            fprintf(stderr, "paw data synth: %s\n", paw_last_error());
            return 2;
        }
        cfg.families = fam;
    }
    SynthReport rep;
    double t0 = paw_now();
    int rc = synth_write_dataset(&cfg, out, &rep);
    if (rc != 0) {
        fprintf(stderr, "paw data synth: %s\n", paw_last_error());
        free(fam);
        return 1;
    }
    print_report(&cfg, &rep, out, paw_now() - t0);
    synth_report_free(&rep);
    free(fam);
    return 0;
}
