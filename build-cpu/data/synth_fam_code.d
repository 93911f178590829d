build-cpu/data/synth_fam_code.o: data/synth_fam_code.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
