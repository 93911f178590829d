// FuzzyBench JSONL -> token shards: reading and checking the lines, the (narrow) tokenization
// step, shard rolling and the manifest. `paw data build` (data/build_cli.c) drives it.
//
// Output directory:
//   DIR/shard-00000.pawshard, ...   (format in data/shard.h)
//   DIR/manifest.json               {"format": "paw-shards", "version": 1, "examples": N, "tokens": T,
//                                    "max_tokens": M, "tokenizer": {"path": P, "sha256": H},
//                                    "shards": [{"file", "examples", "tokens", "bytes"}...],
//                                    "inputs": [{"file", "lines", "examples"}...], "skipped": {...}}
// Every shard is written under a temporary name and all are renamed only when the whole build
// has succeeded; the manifest is written last. The manifest is the list of record: readers
// ignore other files in DIR.
#ifndef PAW_DATA_SHARD_BUILD_H
#define PAW_DATA_SHARD_BUILD_H

#include <stdint.h>
#include <stdio.h>

#include "common/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"

// The texts of one JSONL line (NUL-terminated; optional ones are "" when absent).
// pseudo_program is filled with paw_default_pseudo_program(spec) when the line has none.
typedef struct {
    const char *spec, *input, *output, *pseudo_program, *task_id, *family;
} PawRawExample;

// The tokenization step: texts in, the four segments of data/shard.h out (appended to the
// empty lists in seg). Called from several threads at once. 0, or -1 + paw_error().
typedef int (*PawSegmentEncoder)(void *ctx, const PawRawExample *ex, PawIds seg[PAW_SEG_COUNT]);

// The minimal pseudo-program made for a line without one:
//   "[PSEUDO_PROGRAM]\n" + spec + "\n[END_PSEUDO_PROGRAM]"     (caller frees)
char *paw_default_pseudo_program(const char *spec);

typedef enum {
    PAW_BAD_JSON,           // not valid JSON, or not a JSON object
    PAW_BAD_MISSING_FIELD,  // spec, input or output absent
    PAW_BAD_WRONG_TYPE,     // a field that is not a string
    PAW_BAD_TOO_LONG,       // a sequence longer than max_tokens
    PAW_BAD_ENCODE,         // the tokenizer refused the text
    PAW_BAD_KINDS
} PawBadKind;
const char *paw_bad_kind_name(PawBadKind k);

typedef struct {
    const char *out_dir;
    PawSegmentEncoder encode;
    void *encode_ctx;
    const char *tokenizer_path;  // recorded in the manifest with its sha256 (may be NULL)
    int max_tokens;              // an example is too long when its compiler sequence (seg 0+1) or its
                                 // interpreter sequence (seg 2+3) has more tokens; 0 = no limit
    int skip_errors;             // 0: the first bad line aborts the build, nothing is written
    int examples_per_block;
    int64_t examples_per_shard;
    int threads;
    int zstd_level;
    int max_messages;            // FILE:LINE messages printed (the counts are always complete)
    FILE *log;                   // where messages go (stderr when NULL)
    int progress;                // draw the progress bar (on a terminal)
} PawBuildOptions;

void paw_build_options_default(PawBuildOptions *o);

typedef struct {
    uint64_t lines, blank_lines, examples, tokens;
    uint64_t bad[PAW_BAD_KINDS];
    uint64_t bad_total;
    int shards;
    int aborted;  // failed on bad input (fail mode)
    double seconds;
} PawBuildSummary;

// Builds DIR from the JSONL files. 0 on success; -1 + paw_error() on failure (bad input in fail
// mode, I/O errors). The summary is filled either way.
int paw_build_shards(const char *const *inputs, int ninputs, const PawBuildOptions *opt, PawBuildSummary *sum);
void paw_build_summary_print(FILE *f, const PawBuildSummary *sum);

#endif
