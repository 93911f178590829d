// Shared by the fuzz targets: the input written to a private temporary file, for the readers
// that take a path (they memory-map it, which is the code under test).
#ifndef PAW_TESTS_FUZZ_UTIL_H
#define PAW_TESTS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data/shard.h"

static inline const char *fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/paw-fuzz-%d%s", (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

// Opens a shard and reads it all, example by example (every token and text byte touched, the
// NULs included), then verifies it block by block.
static volatile uint32_t fuzz_sink;  // what the reads add up to, so that they happen
static inline void fuzz_read_shard(const char *path) {
    PawShard *s = paw_shard_open(path);
    if (!s) return;
    uint64_t n = paw_shard_num_examples(s);
    for (uint64_t i = 0; i < n && i < 4096; i++) {
        uint32_t len[PAW_SEG_COUNT], block, slot;
        paw_shard_lengths(s, i, len);
        paw_shard_locate(s, i, &block, &slot);
        PawExample ex;
        if (paw_shard_get(s, i, &ex) != 0) continue;
        for (int k = 0; k < PAW_SEG_COUNT; k++)
            for (uint32_t j = 0; j < ex.len[k]; j++) fuzz_sink += ex.seg[k][j];
        const char *texts[4] = {ex.family, ex.task_id, ex.input, ex.output};
        uint32_t tl[4] = {ex.family_len, ex.task_id_len, ex.input_len, ex.output_len};
        for (int k = 0; k < 4; k++)
            for (uint32_t j = 0; j <= tl[k]; j++) fuzz_sink += (uint8_t)texts[k][j];
    }
    (void)paw_shard_verify(s);
    paw_shard_close(s);
}

#endif
