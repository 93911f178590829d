build-cpu/data/synth_families.o: data/synth_families.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
