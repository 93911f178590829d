build-cpu/data/synth_fam_classify.o: data/synth_fam_classify.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
