build-cpu/tests/test_synth.o: tests/test_synth.c common/error.h \
 common/fileio.h data/synth.h
common/error.h:
common/fileio.h:
data/synth.h:
