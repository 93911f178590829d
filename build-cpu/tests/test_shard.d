build-cpu/tests/test_shard.o: tests/test_shard.c common/error.h \
 common/fileio.h data/loader.h data/shard.h data/shard_build.h \
 common/sha256.h data/tokenizer.h
common/error.h:
common/fileio.h:
data/loader.h:
data/shard.h:
data/shard_build.h:
common/sha256.h:
data/tokenizer.h:
