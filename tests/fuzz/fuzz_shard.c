// libFuzzer target: token shards as files. Most mutations stop at the zstd checksums, which is
// what this target checks (header, trailer, frames); fuzz_shard_payload goes past them.
#include "data/shard.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_read_shard(fuzz_write_temp(data, size, PAW_SHARD_SUFFIX));
    return 0;
}
