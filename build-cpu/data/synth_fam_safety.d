build-cpu/data/synth_fam_safety.o: data/synth_fam_safety.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
