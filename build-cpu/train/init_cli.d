build-cpu/train/init_cli.o: train/init_cli.c common/args.h \
 common/commands.h common/error.h common/fileio.h data/loader.h \
 data/shard.h data/shard_build.h common/sha256.h data/tokenizer.h \
 data/template.h data/vocab_map.h model/qwen3.h model/config.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
data/loader.h:
data/shard.h:
data/shard_build.h:
common/sha256.h:
data/tokenizer.h:
data/template.h:
data/vocab_map.h:
model/qwen3.h:
model/config.h:
