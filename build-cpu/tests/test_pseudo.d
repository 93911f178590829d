build-cpu/tests/test_pseudo.o: tests/test_pseudo.c common/error.h \
 compiler/pseudo.h
common/error.h:
compiler/pseudo.h:
