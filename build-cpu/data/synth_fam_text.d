build-cpu/data/synth_fam_text.o: data/synth_fam_text.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
