// Tokenized training shards: FuzzyBench examples stored as four token segments plus a few texts,
// in zstd-compressed blocks with an index for random access.
//
// ---------------------------------------------------------------------------------------------
// Shard file format, version 1 (all integers little-endian; tokens are uint32)
//
//   offset 0   header, 16 bytes:   "PAWSHRD\0" (8) | u32 version = 1 | u32 header size = 16
//   16 ...     blocks: block b is one zstd frame written with its content checksum (the XXH64 of
//              the decompressed bytes, low 32 bits, checked by libzstd on every decompression)
//   ...        index: one zstd frame, also with its content checksum, holding
//                  u64 n_examples | u32 n_blocks | u32 version | u32 examples_per_block | u32 0
//                  n_blocks  x { u64 file offset | u32 compressed size | u32 decompressed size |
//                                u64 first example | u32 n examples | u32 0 }
//                  n_examples x { u32 segment length[4] }
//   end - 24   trailer, 24 bytes:  u64 index offset | u64 index compressed size | "PAWSEND\0" (8)
//
// A decompressed block holds its examples back to back in three regions, so that a decoded
// block can be used in place (tokens are 4-byte aligned):
//     u32 n
//     n x { u32 segment length[4] | u32 token offset | u32 text offset |
//           u32 family length | u32 task_id length | u32 input length | u32 output length }
//     u32 tokens[]      (an example's four segments, one after the other, from its token offset)
//     u8  texts[]       (family, task_id, input, output, each followed by a NUL, from its text offset)
//
// Integrity: every variable byte lives inside a checksummed zstd frame (blocks, index); the
// header and trailer are fixed magic values and offsets that must agree exactly with the file
// size (index offset + index size + 24 == file size), so a flipped byte anywhere or a truncated
// file is reported on open or on the read of the block, naming the file and the block.
// Shards are written under a temporary name, fsynced and renamed, so a half-written shard is
// never found under its final name.
//
// Segments of an example (see data/shard_build.c for the exact rendering):
//   0 PAW_SEG_COMPILER_PROMPT  chat(compiler_prompt(spec)), ending with "<|im_start|>assistant\n"
//   1 PAW_SEG_PROGRAM          pseudo_program + <|im_end|>
//   2 PAW_SEG_INTERP_PROMPT    chat(pseudo_program + "\n\n[INPUT]\n" + input + "\n[END_INPUT]") up to
//                              and including the empty think block "<think>\n\n</think>\n\n"
//   3 PAW_SEG_TARGET           output + <|im_end|>
// The compiler sequence is seg 0 + seg 1 (+ prefix slots, added by training); the interpreter
// sequence is seg 2 + seg 3, with the loss on seg 3.
// ---------------------------------------------------------------------------------------------
#ifndef PAW_DATA_SHARD_H
#define PAW_DATA_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define PAW_SHARD_VERSION 1
#define PAW_SHARD_SUFFIX ".pawshard"

enum { PAW_SEG_COMPILER_PROMPT, PAW_SEG_PROGRAM, PAW_SEG_INTERP_PROMPT, PAW_SEG_TARGET, PAW_SEG_COUNT };

// One example: as input to the writer, or as a view into a decoded block from the reader.
// Texts are NUL-terminated in views; NULL texts are stored as empty strings.
typedef struct {
    const uint32_t *seg[PAW_SEG_COUNT];
    uint32_t len[PAW_SEG_COUNT];
    const char *family, *task_id, *input, *output;
    uint32_t family_len, task_id_len, input_len, output_len;
} PawExample;

// Token counts of the two sequences training builds from an example.
static inline uint32_t paw_compiler_len(const uint32_t len[PAW_SEG_COUNT]) {
    return len[PAW_SEG_COMPILER_PROMPT] + len[PAW_SEG_PROGRAM];
}
static inline uint32_t paw_interp_len(const uint32_t len[PAW_SEG_COUNT]) {
    return len[PAW_SEG_INTERP_PROMPT] + len[PAW_SEG_TARGET];
}

// ---- writing ----
typedef struct PawShardWriter PawShardWriter;

// Starts a shard at path (written to a temporary name until commit). Full blocks are
// compressed threads at a time in parallel. NULL + paw_error() on failure.
PawShardWriter *paw_shard_writer_open(const char *path, int examples_per_block, int zstd_level, int threads);
// Copies the example into the current block. 0, or -1 + paw_error().
int paw_shard_writer_add(PawShardWriter *w, const PawExample *ex);
// Writes the remaining blocks, the index and the trailer; the file stays under its temporary
// name until commit, so several shards can be made visible together.
int paw_shard_writer_finish(PawShardWriter *w);
// fsync + rename to the final name; frees w (also on failure).
int paw_shard_writer_commit(PawShardWriter *w);
// Removes the temporary file and frees w. NULL is a no-op.
void paw_shard_writer_abort(PawShardWriter *w);
uint64_t paw_shard_writer_examples(const PawShardWriter *w);
uint64_t paw_shard_writer_tokens(const PawShardWriter *w);
uint64_t paw_shard_writer_bytes(const PawShardWriter *w);  // file size so far

// ---- reading ----
typedef struct PawShard PawShard;

// Maps the file and checks header, trailer and index. NULL + paw_error() naming the file.
PawShard *paw_shard_open(const char *path);
void paw_shard_close(PawShard *s);
const char *paw_shard_path(const PawShard *s);
uint64_t paw_shard_num_examples(const PawShard *s);
uint32_t paw_shard_num_blocks(const PawShard *s);
uint64_t paw_shard_num_tokens(const PawShard *s);
// Segment lengths of example i from the index, without touching the blocks (i < num_examples).
void paw_shard_lengths(const PawShard *s, uint64_t i, uint32_t len[PAW_SEG_COUNT]);
// The block holding example i and its slot in it.
void paw_shard_locate(const PawShard *s, uint64_t i, uint32_t *block, uint32_t *slot);
// A view of example i. The pointers stay valid until the next paw_shard_get/verify on this
// shard that needs a different block (a few recent blocks are cached). Not thread-safe: use one
// PawShard per thread. 0, or -1 + paw_error() ("FILE: block B: ...") on a corrupt block.
int paw_shard_get(PawShard *s, uint64_t i, PawExample *ex);
// Decodes and checks every block. 0, or -1 + paw_error() naming the first bad block.
int paw_shard_verify(PawShard *s);

#endif
