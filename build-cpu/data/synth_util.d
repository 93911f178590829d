build-cpu/data/synth_util.o: data/synth_util.c data/synth_internal.h \
 data/synth.h
data/synth_internal.h:
data/synth.h:
