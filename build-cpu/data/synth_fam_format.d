build-cpu/data/synth_fam_format.o: data/synth_fam_format.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
