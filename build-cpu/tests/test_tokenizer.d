build-cpu/tests/test_tokenizer.o: tests/test_tokenizer.c common/error.h \
 common/fileio.h data/tokenizer.h
common/error.h:
common/fileio.h:
data/tokenizer.h:
