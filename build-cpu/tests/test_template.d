build-cpu/tests/test_template.o: tests/test_template.c common/error.h \
 common/fileio.h data/template.h data/tokenizer.h
common/error.h:
common/fileio.h:
data/template.h:
data/tokenizer.h:
