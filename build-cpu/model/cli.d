build-cpu/model/cli.o: model/cli.c common/args.h common/commands.h \
 common/error.h common/fileio.h model/qwen3.h model/config.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
model/qwen3.h:
model/config.h:
