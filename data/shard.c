// Shard writer and reader; the format is described at the top of data/shard.h.
#include "data/shard.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fileio.h"

// The on-disk structs are written as they sit in memory.
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "shards are little-endian");

static const char HEADER_MAGIC[8] = "PAWSHRD";  // with its NUL: 8 bytes
static const char TRAILER_MAGIC[8] = "PAWSEND";
enum { HEADER_SIZE = 16, TRAILER_SIZE = 24 };

typedef struct {
    uint64_t n_examples;
    uint32_t n_blocks, version, examples_per_block, reserved;
} IndexHeader;

typedef struct {
    uint64_t offset;
    uint32_t csize, usize;
    uint64_t first_example;
    uint32_t n_examples, reserved;
} BlockEntry;

typedef struct {
    uint32_t len[PAW_SEG_COUNT];
    uint32_t token_offset, text_offset;
    uint32_t family_len, task_id_len, input_len, output_len;
} ExampleRecord;

_Static_assert(sizeof(IndexHeader) == 24 && sizeof(BlockEntry) == 32 && sizeof(ExampleRecord) == 40, "packed layout");

// ------------------------------------------------------------------------------------------
// Writer

typedef struct {
    uint8_t *data;
    size_t n, cap;
} Bytes;

static void bytes_append(Bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->n, p, n);
    b->n += n;
}

// A serialized block waiting for compression.
typedef struct {
    uint8_t *raw;
    size_t raw_size;
    uint8_t *comp;
    size_t comp_size;
    uint64_t first_example;
    uint32_t n_examples;
    int failed;
    char error[160];
} PendingBlock;

struct PawShardWriter {
    PawAtomicFile af;
    int examples_per_block, level, threads;
    // the block being filled
    Bytes records, tokens, texts;
    uint32_t block_n;
    // full blocks not yet compressed
    PendingBlock *pending;
    int npending, max_pending;
    ZSTD_CCtx **cctx;  // one per thread
    // index
    Bytes block_entries, lengths;
    uint64_t n_examples, n_tokens, offset;
    int finished;
};

PawShardWriter *paw_shard_writer_open(const char *path, int examples_per_block, int zstd_level, int threads) {
    if (examples_per_block < 1) {
        paw_error("%s: examples per block must be at least 1, found %d", path, examples_per_block);
        return NULL;
    }
    if (threads < 1) threads = 1;
    PawShardWriter *w = xcalloc(1, sizeof *w);
    if (paw_atomic_open(&w->af, path) != 0) {
        free(w);
        return NULL;
    }
    w->examples_per_block = examples_per_block;
    w->level = zstd_level;
    w->threads = threads;
    w->max_pending = 2 * threads;
    w->pending = xcalloc((size_t)w->max_pending, sizeof *w->pending);
    w->cctx = xcalloc((size_t)threads, sizeof *w->cctx);
    for (int t = 0; t < threads; t++) {
        w->cctx[t] = ZSTD_createCCtx();
        if (!w->cctx[t]) paw_die("out of memory creating a zstd context");
        ZSTD_CCtx_setParameter(w->cctx[t], ZSTD_c_compressionLevel, zstd_level);
        ZSTD_CCtx_setParameter(w->cctx[t], ZSTD_c_checksumFlag, 1);
    }
    char header[HEADER_SIZE] = {0};
    uint32_t version = PAW_SHARD_VERSION, hsize = HEADER_SIZE;
    memcpy(header, HEADER_MAGIC, 8);
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &hsize, 4);
    if (paw_atomic_write(&w->af, header, sizeof header) != 0) {
        paw_shard_writer_abort(w);
        return NULL;
    }
    w->offset = HEADER_SIZE;
    return w;
}

// Compresses the pending blocks in parallel and appends them to the file in order.
static int flush_pending(PawShardWriter *w) {
    int np = w->npending;
    if (np == 0) return 0;
#pragma omp parallel for num_threads(w->threads) schedule(dynamic, 1)
    for (int i = 0; i < np; i++) {
        PendingBlock *pb = &w->pending[i];
        int t = omp_get_thread_num();
        size_t bound = ZSTD_compressBound(pb->raw_size);
        pb->comp = xmalloc(bound);
        size_t r = ZSTD_compress2(w->cctx[t], pb->comp, bound, pb->raw, pb->raw_size);
        if (ZSTD_isError(r)) {
            pb->failed = 1;
            snprintf(pb->error, sizeof pb->error, "%s", ZSTD_getErrorName(r));
        } else {
            pb->comp_size = r;
        }
    }
    int rc = 0;
    for (int i = 0; i < np; i++) {
        PendingBlock *pb = &w->pending[i];
        if (rc == 0 && pb->failed) rc = paw_error("%s: compressing a block: %s", w->af.path, pb->error);
        if (rc == 0 && pb->comp_size > UINT32_MAX)
            rc = paw_error("%s: a compressed block is %zu bytes, over the 4 GiB limit", w->af.path, pb->comp_size);
        if (rc == 0 && paw_atomic_write(&w->af, pb->comp, pb->comp_size) != 0) rc = -1;
        if (rc == 0) {
            BlockEntry e = {w->offset, (uint32_t)pb->comp_size, (uint32_t)pb->raw_size, pb->first_example, pb->n_examples, 0};
            bytes_append(&w->block_entries, &e, sizeof e);
            w->offset += pb->comp_size;
        }
        free(pb->raw);
        free(pb->comp);
        memset(pb, 0, sizeof *pb);
    }
    w->npending = 0;
    return rc;
}

// Serializes the block being filled into a pending block.
static int close_block(PawShardWriter *w) {
    if (w->block_n == 0) return 0;
    size_t head = 4 + w->records.n;
    size_t raw_size = head + w->tokens.n + w->texts.n;
    if (raw_size > UINT32_MAX)
        return paw_error("%s: a block of %u examples is %zu bytes, over the 4 GiB limit (use fewer examples per block)",
                         w->af.path, w->block_n, raw_size);
    PendingBlock *pb = &w->pending[w->npending++];
    pb->raw = xmalloc(raw_size);
    memcpy(pb->raw, &w->block_n, 4);
    memcpy(pb->raw + 4, w->records.data, w->records.n);
    if (w->tokens.n) memcpy(pb->raw + head, w->tokens.data, w->tokens.n);
    if (w->texts.n) memcpy(pb->raw + head + w->tokens.n, w->texts.data, w->texts.n);
    pb->raw_size = raw_size;
    pb->n_examples = w->block_n;
    pb->first_example = w->n_examples - w->block_n;
    w->records.n = w->tokens.n = w->texts.n = 0;
    w->block_n = 0;
    if (w->npending == w->max_pending) return flush_pending(w);
    return 0;
}

static uint32_t text_len(const char *s, uint32_t n) { return s ? n : 0; }

int paw_shard_writer_add(PawShardWriter *w, const PawExample *ex) {
    if (w->finished) return paw_error("%s: add after finish", w->af.path);
    ExampleRecord r = {0};
    uint64_t ntok = 0;
    for (int k = 0; k < PAW_SEG_COUNT; k++) {
        r.len[k] = ex->len[k];
        ntok += ex->len[k];
    }
    if (w->tokens.n / 4 + ntok > UINT32_MAX || w->texts.n > UINT32_MAX)
        return paw_error("%s: block too large (use fewer examples per block)", w->af.path);
    r.token_offset = (uint32_t)(w->tokens.n / 4);
    r.text_offset = (uint32_t)w->texts.n;
    r.family_len = text_len(ex->family, ex->family_len);
    r.task_id_len = text_len(ex->task_id, ex->task_id_len);
    r.input_len = text_len(ex->input, ex->input_len);
    r.output_len = text_len(ex->output, ex->output_len);
    for (int k = 0; k < PAW_SEG_COUNT; k++) bytes_append(&w->tokens, ex->seg[k], (size_t)ex->len[k] * 4);
    const char *texts[4] = {ex->family, ex->task_id, ex->input, ex->output};
    uint32_t lens[4] = {r.family_len, r.task_id_len, r.input_len, r.output_len};
    for (int k = 0; k < 4; k++) {
        bytes_append(&w->texts, texts[k], lens[k]);
        bytes_append(&w->texts, "", 1);
    }
    bytes_append(&w->records, &r, sizeof r);
    bytes_append(&w->lengths, r.len, sizeof r.len);
    w->block_n++;
    w->n_examples++;
    w->n_tokens += ntok;
    if (w->block_n == (uint32_t)w->examples_per_block) return close_block(w);
    return 0;
}

int paw_shard_writer_finish(PawShardWriter *w) {
    if (w->finished) return 0;
    if (close_block(w) != 0 || flush_pending(w) != 0) return -1;
    IndexHeader h = {w->n_examples, (uint32_t)(w->block_entries.n / sizeof(BlockEntry)), PAW_SHARD_VERSION,
                     (uint32_t)w->examples_per_block, 0};
    Bytes index = {0};
    bytes_append(&index, &h, sizeof h);
    bytes_append(&index, w->block_entries.data, w->block_entries.n);
    bytes_append(&index, w->lengths.data, w->lengths.n);
    size_t bound = ZSTD_compressBound(index.n);
    uint8_t *comp = xmalloc(bound);
    size_t csize = ZSTD_compress2(w->cctx[0], comp, bound, index.data, index.n);
    int rc = 0;
    if (ZSTD_isError(csize)) rc = paw_error("%s: compressing the index: %s", w->af.path, ZSTD_getErrorName(csize));
    if (rc == 0) rc = paw_atomic_write(&w->af, comp, csize);
    if (rc == 0) {
        uint8_t trailer[TRAILER_SIZE];
        uint64_t off = w->offset, cs = csize;
        memcpy(trailer, &off, 8);
        memcpy(trailer + 8, &cs, 8);
        memcpy(trailer + 16, TRAILER_MAGIC, 8);
        rc = paw_atomic_write(&w->af, trailer, sizeof trailer);
        w->offset += csize + TRAILER_SIZE;
    }
    free(comp);
    free(index.data);
    if (rc == 0 && fflush(w->af.f) != 0) rc = paw_error("%s: write failed", w->af.tmp_path);
    if (rc == 0) w->finished = 1;
    return rc;
}

static void writer_free(PawShardWriter *w) {
    for (int i = 0; i < w->npending; i++) free(w->pending[i].raw);
    free(w->pending);
    for (int t = 0; t < w->threads; t++) ZSTD_freeCCtx(w->cctx[t]);
    free(w->cctx);
    free(w->records.data);
    free(w->tokens.data);
    free(w->texts.data);
    free(w->block_entries.data);
    free(w->lengths.data);
    free(w);
}

int paw_shard_writer_commit(PawShardWriter *w) {
    int rc = paw_shard_writer_finish(w);
    if (rc == 0) rc = paw_atomic_commit(&w->af);
    else paw_atomic_abort(&w->af);
    writer_free(w);
    return rc;
}

void paw_shard_writer_abort(PawShardWriter *w) {
    if (!w) return;
    paw_atomic_abort(&w->af);
    writer_free(w);
}

uint64_t paw_shard_writer_examples(const PawShardWriter *w) { return w->n_examples; }
uint64_t paw_shard_writer_tokens(const PawShardWriter *w) { return w->n_tokens; }
uint64_t paw_shard_writer_bytes(const PawShardWriter *w) { return w->offset; }

// ------------------------------------------------------------------------------------------
// Reader

enum { CACHE_SLOTS = 4 };

typedef struct {
    int64_t block;  // -1 when empty
    uint8_t *buf;
    size_t cap;
    uint64_t last_use;
} CachedBlock;

struct PawShard {
    char *path;
    PawMap map;
    uint8_t *index;  // decompressed index
    uint64_t n_examples, n_tokens;
    uint32_t n_blocks;
    const BlockEntry *blocks;
    const uint32_t *lengths;  // n_examples x PAW_SEG_COUNT
    ZSTD_DCtx *dctx;
    CachedBlock cache[CACHE_SLOTS];
    uint64_t use_clock;
};

static int open_fail(PawShard *s) {
    paw_shard_close(s);
    return -1;
}

static int read_index(PawShard *s) {
    const uint8_t *d = s->map.data;
    size_t size = s->map.size;
    const char *p = s->path;
    if (size < HEADER_SIZE + TRAILER_SIZE)
        return paw_error("%s: %zu bytes, too short for a shard (truncated?)", p, size);
    uint32_t version, hsize;
    memcpy(&version, d + 8, 4);
    memcpy(&hsize, d + 12, 4);
    if (memcmp(d, HEADER_MAGIC, 8) != 0) return paw_error("%s: not a paw shard (bad magic in the header)", p);
    if (version != PAW_SHARD_VERSION)
        return paw_error("%s: shard version %u, this build reads version %d", p, version, PAW_SHARD_VERSION);
    if (hsize != HEADER_SIZE) return paw_error("%s: corrupt header (header size %u, expected %d)", p, hsize, HEADER_SIZE);
    const uint8_t *tr = d + size - TRAILER_SIZE;
    if (memcmp(tr + 16, TRAILER_MAGIC, 8) != 0)
        return paw_error("%s: trailer missing or corrupt (file truncated or not fully written?)", p);
    uint64_t ioff, icsize;
    memcpy(&ioff, tr, 8);
    memcpy(&icsize, tr + 8, 8);
    if (ioff < HEADER_SIZE || icsize > size || ioff > size - TRAILER_SIZE - icsize || ioff + icsize + TRAILER_SIZE != size)
        return paw_error("%s: corrupt trailer: index at %llu (+%llu bytes) does not end where the trailer starts (%zu)", p,
                         (unsigned long long)ioff, (unsigned long long)icsize, size - TRAILER_SIZE);
    unsigned long long usize = ZSTD_getFrameContentSize(d + ioff, icsize);
    if (usize == ZSTD_CONTENTSIZE_ERROR || usize == ZSTD_CONTENTSIZE_UNKNOWN || usize < sizeof(IndexHeader) ||
        usize > (1ULL << 40))
        return paw_error("%s: corrupt index (bad zstd frame header)", p);
    // A zstd block holds at most 128 KiB and takes at least 4 bytes (an RLE block), so a frame of
    // icsize bytes cannot hold more than icsize * 32768: a larger claim is damage, found before
    // any allocation.
    if (usize / 32768 > icsize)
        return paw_error("%s: corrupt index (claims %llu bytes in a %llu-byte zstd frame)", p, usize,
                         (unsigned long long)icsize);
    // Not xmalloc: a damaged size field must give an error, not end the process.
    s->index = malloc((size_t)usize);
    if (!s->index) return paw_error("%s: corrupt index (claims %llu bytes)", p, usize);
    size_t got = ZSTD_decompressDCtx(s->dctx, s->index, (size_t)usize, d + ioff, icsize);
    if (ZSTD_isError(got)) return paw_error("%s: corrupt index: %s", p, ZSTD_getErrorName(got));
    if (got != usize) return paw_error("%s: corrupt index: %zu bytes, expected %llu", p, got, usize);
    IndexHeader h;
    memcpy(&h, s->index, sizeof h);
    if (h.version != PAW_SHARD_VERSION) return paw_error("%s: corrupt index (version %u)", p, h.version);
    if (h.n_examples > (usize / 16) || h.n_blocks > usize / sizeof(BlockEntry) ||
        usize != sizeof h + (uint64_t)h.n_blocks * sizeof(BlockEntry) + h.n_examples * 16)
        return paw_error("%s: corrupt index: %llu bytes do not fit %llu examples in %u blocks", p, usize,
                         (unsigned long long)h.n_examples, h.n_blocks);
    s->n_examples = h.n_examples;
    s->n_blocks = h.n_blocks;
    s->blocks = (const BlockEntry *)(s->index + sizeof h);
    s->lengths = (const uint32_t *)(s->index + sizeof h + (size_t)h.n_blocks * sizeof(BlockEntry));
    // The block table must tile the data region and the example range exactly.
    uint64_t off = HEADER_SIZE, first = 0;
    for (uint32_t b = 0; b < h.n_blocks; b++) {
        const BlockEntry *e = &s->blocks[b];
        if (e->offset != off || e->first_example != first || e->n_examples == 0 || e->csize == 0)
            return paw_error("%s: corrupt index: block %u entry is inconsistent", p, b);
        off += e->csize;
        first += e->n_examples;
    }
    if (off != ioff || first != h.n_examples)
        return paw_error("%s: corrupt index: blocks cover %llu bytes / %llu examples, expected %llu / %llu", p,
                         (unsigned long long)off, (unsigned long long)first, (unsigned long long)ioff,
                         (unsigned long long)h.n_examples);
    for (uint64_t i = 0; i < h.n_examples * PAW_SEG_COUNT; i++) s->n_tokens += s->lengths[i];
    return 0;
}

PawShard *paw_shard_open(const char *path) {
    PawShard *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    for (int k = 0; k < CACHE_SLOTS; k++) s->cache[k].block = -1;
    s->dctx = ZSTD_createDCtx();
    if (!s->dctx) paw_die("out of memory creating a zstd context");
    if (paw_map_file(path, &s->map) != 0 || read_index(s) != 0) {
        open_fail(s);
        return NULL;
    }
    return s;
}

void paw_shard_close(PawShard *s) {
    if (!s) return;
    for (int k = 0; k < CACHE_SLOTS; k++) free(s->cache[k].buf);
    ZSTD_freeDCtx(s->dctx);
    paw_unmap(&s->map);
    free(s->index);
    free(s->path);
    free(s);
}

const char *paw_shard_path(const PawShard *s) { return s->path; }
uint64_t paw_shard_num_examples(const PawShard *s) { return s->n_examples; }
uint32_t paw_shard_num_blocks(const PawShard *s) { return s->n_blocks; }
uint64_t paw_shard_num_tokens(const PawShard *s) { return s->n_tokens; }

void paw_shard_lengths(const PawShard *s, uint64_t i, uint32_t len[PAW_SEG_COUNT]) {
    memcpy(len, s->lengths + i * PAW_SEG_COUNT, sizeof(uint32_t) * PAW_SEG_COUNT);
}

void paw_shard_locate(const PawShard *s, uint64_t i, uint32_t *block, uint32_t *slot) {
    uint32_t lo = 0, hi = s->n_blocks;  // last block with first_example <= i
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->blocks[mid].first_example <= i) lo = mid;
        else hi = mid;
    }
    *block = lo;
    *slot = (uint32_t)(i - s->blocks[lo].first_example);
}

// Checks that a decoded block agrees with its index entry and that every record stays inside it.
static int check_block(const PawShard *s, uint32_t b, const uint8_t *buf, size_t size) {
    const BlockEntry *e = &s->blocks[b];
    uint32_t n;
    memcpy(&n, buf, 4);
    if (n != e->n_examples || 4 + (uint64_t)n * sizeof(ExampleRecord) > size)
        return paw_error("%s: block %u: corrupt (holds %u examples, index says %u)", s->path, b, n, e->n_examples);
    const ExampleRecord *rec = (const ExampleRecord *)(buf + 4);
    size_t head = 4 + (size_t)n * sizeof(ExampleRecord);
    uint64_t tok = 0, text = 0;
    for (uint32_t j = 0; j < n; j++) {
        const ExampleRecord *r = &rec[j];
        const uint32_t *want = s->lengths + (e->first_example + j) * PAW_SEG_COUNT;
        if (memcmp(r->len, want, sizeof r->len) != 0 || r->token_offset != tok || r->text_offset != text)
            return paw_error("%s: block %u: corrupt record for example %u", s->path, b, j);
        for (int k = 0; k < PAW_SEG_COUNT; k++) tok += r->len[k];
        text += (uint64_t)r->family_len + r->task_id_len + r->input_len + r->output_len + 4;
    }
    if (head + tok * 4 + text != size)
        return paw_error("%s: block %u: corrupt (%zu bytes, records need %llu)", s->path, b, size,
                         (unsigned long long)(head + tok * 4 + text));
    const char *texts = (const char *)buf + head + tok * 4;
    for (uint32_t j = 0; j < n; j++) {
        const ExampleRecord *r = &rec[j];
        uint64_t t = r->text_offset;
        uint32_t lens[4] = {r->family_len, r->task_id_len, r->input_len, r->output_len};
        for (int k = 0; k < 4; k++) {
            t += lens[k];
            if (texts[t] != 0) return paw_error("%s: block %u: corrupt text of example %u", s->path, b, j);
            t++;
        }
    }
    return 0;
}

static CachedBlock *load_block(PawShard *s, uint32_t b) {
    s->use_clock++;
    CachedBlock *slot = &s->cache[0];
    for (int k = 0; k < CACHE_SLOTS; k++) {
        if (s->cache[k].block == (int64_t)b) {
            s->cache[k].last_use = s->use_clock;
            return &s->cache[k];
        }
        if (s->cache[k].last_use < slot->last_use) slot = &s->cache[k];
    }
    const BlockEntry *e = &s->blocks[b];
    slot->block = -1;
    // The index's size must be the frame's before anything is allocated for it, and a size that
    // cannot be allocated is an error, not the end of the process (a damaged file).
    const uint8_t *src = s->map.data + e->offset;
    unsigned long long fsize = ZSTD_getFrameContentSize(src, e->csize);
    if (fsize != e->usize || e->usize < 4 || e->usize / 32768 > e->csize) {  // bound: see read_index
        paw_error("%s: block %u: corrupt (bad zstd frame header)", s->path, b);
        return NULL;
    }
    if (slot->cap < e->usize) {
        free(slot->buf);
        slot->cap = 0;
        if (!(slot->buf = malloc(e->usize))) {
            paw_error("%s: block %u: cannot allocate its %u bytes (corrupt size?)", s->path, b, e->usize);
            return NULL;
        }
        slot->cap = e->usize;
    }
    size_t got = ZSTD_decompressDCtx(s->dctx, slot->buf, e->usize, src, e->csize);
    if (ZSTD_isError(got)) {
        paw_error("%s: block %u: corrupt (%s)", s->path, b, ZSTD_getErrorName(got));
        return NULL;
    }
    if (got != e->usize) {
        paw_error("%s: block %u: corrupt (%zu bytes, expected %u)", s->path, b, got, e->usize);
        return NULL;
    }
    if (check_block(s, b, slot->buf, got) != 0) return NULL;
    slot->block = b;
    slot->last_use = s->use_clock;
    return slot;
}

int paw_shard_get(PawShard *s, uint64_t i, PawExample *ex) {
    if (i >= s->n_examples)
        return paw_error("%s: example %llu out of range (%llu examples)", s->path, (unsigned long long)i,
                         (unsigned long long)s->n_examples);
    uint32_t b, j;
    paw_shard_locate(s, i, &b, &j);
    CachedBlock *c = load_block(s, b);
    if (!c) return -1;
    uint32_t n;
    memcpy(&n, c->buf, 4);
    const ExampleRecord *r = (const ExampleRecord *)(c->buf + 4) + j;
    const ExampleRecord *last = (const ExampleRecord *)(c->buf + 4) + (n - 1);
    uint64_t block_tokens = last->token_offset;
    for (int k = 0; k < PAW_SEG_COUNT; k++) block_tokens += last->len[k];
    const uint32_t *tokens = (const uint32_t *)(c->buf + 4 + (size_t)n * sizeof(ExampleRecord));
    const char *texts = (const char *)(tokens + block_tokens);
    const uint32_t *t = tokens + r->token_offset;
    for (int k = 0; k < PAW_SEG_COUNT; k++) {
        ex->seg[k] = t;
        ex->len[k] = r->len[k];
        t += r->len[k];
    }
    const char *p = texts + r->text_offset;
    ex->family = p;
    ex->family_len = r->family_len;
    p += r->family_len + 1;
    ex->task_id = p;
    ex->task_id_len = r->task_id_len;
    p += r->task_id_len + 1;
    ex->input = p;
    ex->input_len = r->input_len;
    p += r->input_len + 1;
    ex->output = p;
    ex->output_len = r->output_len;
    return 0;
}

int paw_shard_verify(PawShard *s) {
    for (uint32_t b = 0; b < s->n_blocks; b++)
        if (!load_block(s, b)) return -1;
    return 0;
}
