build-cpu/interpreter/run_cli.o: interpreter/run_cli.c common/args.h \
 common/commands.h common/error.h common/fileio.h interpreter/program.h \
 model/config.h model/qwen3.h interpreter/runner.h data/tokenizer.h \
 data/vocab_map.h interpreter/runner_cuda.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
interpreter/program.h:
model/config.h:
model/qwen3.h:
interpreter/runner.h:
data/tokenizer.h:
data/vocab_map.h:
interpreter/runner_cuda.h:
