build-cpu/data/tokenizer.o: data/tokenizer.c data/tokenizer.h \
 common/error.h common/fileio.h
data/tokenizer.h:
common/error.h:
common/fileio.h:
