build-cpu/tests/test_loader.o: tests/test_loader.c common/error.h \
 common/fileio.h data/loader.h data/shard.h data/shard_build.h \
 common/sha256.h data/tokenizer.h
common/error.h:
common/fileio.h:
data/loader.h:
data/shard.h:
data/shard_build.h:
common/sha256.h:
data/tokenizer.h:
