build-cpu/data/synth_fam_agent.o: data/synth_fam_agent.c \
 data/synth_internal.h data/synth.h
data/synth_internal.h:
data/synth.h:
