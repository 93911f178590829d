build-cpu/tests/test_vocab_map.o: tests/test_vocab_map.c common/error.h \
 common/fileio.h data/vocab_map.h
common/error.h:
common/fileio.h:
data/vocab_map.h:
