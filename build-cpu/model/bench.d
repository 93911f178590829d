build-cpu/model/bench.o: model/bench.c common/args.h common/commands.h \
 common/error.h common/progress.h common/rng.h model/qwen3.h \
 model/config.h
common/args.h:
common/commands.h:
common/error.h:
common/progress.h:
common/rng.h:
model/qwen3.h:
model/config.h:
