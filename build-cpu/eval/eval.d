build-cpu/eval/eval.o: eval/eval.c common/args.h common/commands.h \
 common/error.h common/sha256.h common/fileio.h common/progress.h \
 compiler/pseudo.h compiler/trained.h compiler/compiler.h model/qwen3.h \
 model/config.h compiler/mapper.h data/tokenizer.h data/vocab_map.h \
 data/shard_build.h data/shard.h data/template.h interpreter/runner.h \
 interpreter/runner_cuda.h
common/args.h:
common/commands.h:
common/error.h:
common/sha256.h:
common/fileio.h:
common/progress.h:
compiler/pseudo.h:
compiler/trained.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
data/tokenizer.h:
data/vocab_map.h:
data/shard_build.h:
data/shard.h:
data/template.h:
interpreter/runner.h:
interpreter/runner_cuda.h:
