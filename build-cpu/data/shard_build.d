build-cpu/data/shard_build.o: data/shard_build.c data/shard_build.h \
 common/sha256.h data/shard.h data/tokenizer.h common/error.h \
 common/fileio.h common/progress.h
data/shard_build.h:
common/sha256.h:
data/shard.h:
data/tokenizer.h:
common/error.h:
common/fileio.h:
common/progress.h:
