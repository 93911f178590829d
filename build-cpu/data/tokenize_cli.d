build-cpu/data/tokenize_cli.o: data/tokenize_cli.c common/args.h \
 common/commands.h common/error.h common/fileio.h common/progress.h \
 data/tokenizer.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
common/progress.h:
data/tokenizer.h:
