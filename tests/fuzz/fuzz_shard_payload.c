// libFuzzer target: token shards, past their checksums. Every zstd frame of a shard carries a
// content checksum, so mutated files stop at decompression; this target reads its input as the
// decoded index and blocks instead and wraps them into a well-formed container (header, one
// checksummed zstd frame each, trailer), patching the block table's offsets and compressed
// sizes, the index version and block count to the real ones. What is fuzzed is what the reader
// decodes: the index's counts and lengths and the blocks' records.
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "data/shard.h"
#include "tests/fuzz/fuzz_util.h"

// The next length-prefixed (u16) piece of the input; short inputs give empty pieces.
static const uint8_t *take(const uint8_t **p, size_t *left, size_t *n) {
    size_t len = 0;
    if (*left >= 2) len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8, *p += 2, *left -= 2;
    if (len > *left) len = *left;
    const uint8_t *piece = *p;
    *p += len, *left -= len, *n = len;
    return piece;
}

static size_t frame(ZSTD_CCtx *cc, uint8_t *dst, size_t cap, const void *src, size_t n) {
    size_t r = ZSTD_compress2(cc, dst, cap, src, n);
    if (ZSTD_isError(r)) abort();
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t left = size - 1, ni, nb = data[0] % 4, bn[4];
    const uint8_t *index = take(&p, &left, &ni), *blocks[4];
    for (size_t b = 0; b < nb; b++) blocks[b] = take(&p, &left, &bn[b]);

    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t cap = 16 + 24 + ZSTD_compressBound(ni + 24 + 32 * nb);
    for (size_t b = 0; b < nb; b++) cap += ZSTD_compressBound(bn[b]);
    uint8_t *file = malloc(cap), *idx = calloc(1, ni + 24 + 32 * nb);
    if (!file || !idx) abort();
    memcpy(file, "PAWSHRD\0\1\0\0\0\x10\0\0\0", 16);
    size_t off = 16;
    uint64_t offs[4];
    uint32_t csize[4];
    for (size_t b = 0; b < nb; b++) {
        offs[b] = off;
        csize[b] = (uint32_t)frame(cc, file + off, cap - off, blocks[b], bn[b]);
        off += csize[b];
    }
    // The index: the input's bytes, with the fields that only tie it to this container set.
    size_t il = ni < 24 + 32 * nb ? 24 + 32 * nb : ni;
    memcpy(idx, index, ni);
    uint32_t version = 1, nblocks = (uint32_t)nb;
    memcpy(idx + 8, &nblocks, 4);
    memcpy(idx + 12, &version, 4);
    for (size_t b = 0; b < nb; b++) {
        memcpy(idx + 24 + 32 * b, &offs[b], 8);
        memcpy(idx + 24 + 32 * b + 8, &csize[b], 4);
    }
    uint64_t ioff = off, isize = frame(cc, file + off, cap - off, idx, il);
    off += isize;
    memcpy(file + off, &ioff, 8);
    memcpy(file + off + 8, &isize, 8);
    memcpy(file + off + 16, "PAWSEND\0", 8);
    off += 24;
    const char *path = fuzz_write_temp(file, off, PAW_SHARD_SUFFIX);
    free(file), free(idx);
    ZSTD_freeCCtx(cc);

    fuzz_read_shard(path);
    return 0;
}
