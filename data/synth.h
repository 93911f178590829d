// Procedural FuzzyBench-style data: (spec, input, output, pseudo_program) examples from task
// families whose ground truth is computed in C from the generated input. Each family has many
// spec phrasings (templates x detail sentences x noise); some templates are held out for the test
// split, and inputs are partitioned by a hash so that val/test inputs never occur in train.
//
// Splits:
//   train: train phrasings, train-partition inputs
//   val:   train phrasings, held-out inputs        (measures generalisation to new inputs)
//   test:  held-out phrasings, held-out inputs     (new inputs and new wordings of the spec)
// Pseudo-program examples always use train-partition inputs different from the example's own.
#ifndef PAW_DATA_SYNTH_H
#define PAW_DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

// xoshiro256** seeded through splitmix64: small, fast, the same on every platform.
typedef struct {
    uint64_t s[4];
} SynthRng;
void synth_rng_seed(SynthRng *r, uint64_t seed);
uint64_t synth_rng_next(SynthRng *r);
uint32_t synth_rng_below(SynthRng *r, uint32_t n);  // uniform in [0, n); 0 when n == 0
double synth_rng_unit(SynthRng *r);                 // uniform in [0, 1)
uint64_t synth_splitmix64(uint64_t *state);

typedef enum {
    SYNTH_AREA_TEXT,
    SYNTH_AREA_SEARCH,
    SYNTH_AREA_CLASSIFY,
    SYNTH_AREA_CODE,
    SYNTH_AREA_SAFETY,
    SYNTH_AREA_AGENT,
    SYNTH_AREA_FORMAT,
    SYNTH_NAREAS
} SynthArea;
const char *synth_area_name(SynthArea a);         // short name: "text", "search", ...
const char *synth_area_description(SynthArea a);  // "text processing / NLP", ...

enum { SYNTH_FIELD = 256 };  // capacity of every input, output and parameter buffer

// A family's parameters, substituted for {P} and {Q} in its spec templates (e.g. a key name).
typedef struct {
    char p[64], q[64];
} SynthParams;

// Bounded string builder over a caller buffer; `overflow` is set instead of writing past cap.
typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} SynthBuf;
void synth_buf_init(SynthBuf *b, char *buf, size_t cap);
void synth_buf_add(SynthBuf *b, const char *s);
void synth_buf_addn(SynthBuf *b, const char *s, size_t n);
void synth_buf_addc(SynthBuf *b, char c);
void synth_buf_addf(SynthBuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

typedef struct {
    const char *name;
    SynthArea area;
    const char *task;                // clean restatement for the pseudo-program ({P}, {Q} allowed)
    const char *const *phrasings;    // spec templates, NULL-terminated ({P}, {Q} allowed)
    const char *const *details;      // optional extra sentences, NULL-terminated, or NULL
    void (*params)(SynthRng *r, SynthParams *p);  // NULL when the family takes none
    // Writes one input; max_chars (0 = no limit) is a hint, the caller checks and retries.
    void (*input)(SynthRng *r, const SynthParams *p, int max_chars, SynthBuf *out);
    // The ground truth: 0, or -1 when the input is not one this family understands.
    int (*solve)(const SynthParams *p, const char *input, SynthBuf *out);
} SynthFamily;

int synth_family_count(void);
const SynthFamily *synth_family(int i);   // NULL when out of range
int synth_find_family(const char *name);  // index, or -1
int synth_phrasing_count(int family);
int synth_phrasing_held_out(int template_index);       // 1 for the test-only templates
int synth_input_held_out(int family, const char *input);  // 1 for val/test inputs (~20%)
// Runs the family's ground truth into out[cap]; 0, or -1 with paw_error().
int synth_solve(int family, const SynthParams *p, const char *input, char *out, size_t cap);

typedef enum { SYNTH_TRAIN, SYNTH_VAL, SYNTH_TEST } SynthSplit;

typedef struct {
    int max_input_chars;   // 0 = no limit
    int max_output_chars;  // 0 = no limit
    int max_spec_chars;    // 0 = no limit
    int pseudo_examples;   // input/output pairs in the pseudo-program
    double noise;          // probability that a spec gets typo/casing noise
    double detail;         // probability of a family detail sentence
} SynthOptions;
void synth_options_default(SynthOptions *o);

typedef struct {
    int family;
    SynthParams params;
    char *spec;
    char *input;
    char *output;
    char *pseudo_program;
    char *task_id;  // family[:p[:q]]: examples with the same task_id compute the same function
} SynthExample;
void synth_example_free(SynthExample *ex);

// One example of family `family` for `split`, drawn from r. 0, or -1 with paw_error() when the
// limits in o cannot be met.
int synth_example(int family, SynthSplit split, SynthRng *r, const SynthOptions *o, SynthExample *ex);
// The JSONL line (no newline) for ex, written with cJSON; caller frees. NULL on failure.
char *synth_example_json(const SynthExample *ex);

typedef struct {
    uint64_t seed;
    int n[3];             // examples per split: train, val, test
    const int *families;  // indices; NULL = all
    int nfamilies;
    SynthOptions opt;
    int show_progress;
} SynthConfig;

// Counts per family (rows) and split (columns) of what synth_write_dataset wrote.
typedef struct {
    int *counts;  // [nfamilies_total * 3]
    int64_t bytes[3];
} SynthReport;
void synth_report_free(SynthReport *rep);

// Writes train.jsonl, val.jsonl and test.jsonl into dir (created if missing), each atomically.
int synth_write_dataset(const SynthConfig *cfg, const char *dir, SynthReport *rep);
// Generates example i of a split exactly as synth_write_dataset does (for tests and tools).
int synth_dataset_example(const SynthConfig *cfg, SynthSplit split, int i, SynthExample *ex);

#endif
