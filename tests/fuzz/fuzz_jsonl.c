// libFuzzer target: FuzzyBench JSONL through `paw data build`'s pipeline (line splitting, JSON
// parsing and field checks, bad-line accounting, shard writing), in skip mode, with a stand-in
// encoder (one token per byte: the tokenizer has its own target); every shard written is read
// back, and the examples counted must be the ones stored.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/shard_build.h"
#include "tests/fuzz/fuzz_util.h"

static void bytes_to_ids(PawIds *v, const char *t) {
    for (; *t; t++) paw_ids_push(v, (int32_t)(unsigned char)*t);
}

static int byte_encode(void *ctx, const PawRawExample *ex, PawIds seg[PAW_SEG_COUNT]) {
    (void)ctx;
    bytes_to_ids(&seg[0], ex->spec);
    bytes_to_ids(&seg[1], ex->pseudo_program);
    bytes_to_ids(&seg[2], ex->input);
    bytes_to_ids(&seg[3], ex->output);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char in[256], dir[256], shard[300];
    const char *tmp = fuzz_write_temp(data, size, ".jsonl");
    snprintf(in, sizeof in, "%s", tmp);
    snprintf(dir, sizeof dir, "/tmp/paw-fuzz-%d-out", (int)getpid());
    PawBuildOptions o;
    paw_build_options_default(&o);
    o.out_dir = dir, o.encode = byte_encode, o.skip_errors = 1, o.threads = 1, o.max_tokens = 512;
    o.examples_per_block = 2, o.max_messages = 0, o.progress = 0;
    FILE *devnull = fopen("/dev/null", "w");
    o.log = devnull;
    const char *inputs[1] = {in};
    PawBuildSummary sum;
    int rc = paw_build_shards(inputs, 1, &o, &sum);
    if (devnull) fclose(devnull);
    uint64_t stored = 0;
    for (int k = 0; rc == 0 && k < sum.shards; k++) {
        snprintf(shard, sizeof shard, "%s/shard-%05d.pawshard", dir, k);
        PawShard *s = paw_shard_open(shard);
        if (!s) abort();  // what the build wrote must read back
        stored += paw_shard_num_examples(s);
        paw_shard_close(s);
        fuzz_read_shard(shard);
    }
    if (rc == 0 && stored != sum.examples) abort();
    for (int k = 0; k < sum.shards + 1; k++) {
        snprintf(shard, sizeof shard, "%s/shard-%05d.pawshard", dir, k);
        unlink(shard);
    }
    snprintf(shard, sizeof shard, "%s/manifest.json", dir);
    unlink(shard);
    rmdir(dir);
    return 0;
}
