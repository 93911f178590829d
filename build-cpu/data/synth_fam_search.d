build-cpu/data/synth_fam_search.o: data/synth_fam_search.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
