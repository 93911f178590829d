build-cpu/data/build_cli.o: data/build_cli.c common/args.h \
 common/commands.h common/error.h common/fileio.h common/progress.h \
 data/loader.h data/shard.h data/shard_build.h common/sha256.h \
 data/tokenizer.h data/template.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
common/progress.h:
data/loader.h:
data/shard.h:
data/shard_build.h:
common/sha256.h:
data/tokenizer.h:
data/template.h:
