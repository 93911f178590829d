build-cpu/compiler/trained.o: compiler/trained.c compiler/trained.h \
 compiler/compiler.h model/qwen3.h model/config.h compiler/mapper.h \
 data/tokenizer.h data/vocab_map.h common/error.h common/sha256.h \
 common/fileio.h data/shard_build.h data/shard.h data/template.h
compiler/trained.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
data/tokenizer.h:
data/vocab_map.h:
common/error.h:
common/sha256.h:
common/fileio.h:
data/shard_build.h:
data/shard.h:
data/template.h:
