build-cpu/data/synth.o: data/synth.c common/error.h common/fileio.h \
 common/progress.h data/synth_internal.h data/synth.h
common/error.h:
common/fileio.h:
common/progress.h:
data/synth_internal.h:
data/synth.h:
