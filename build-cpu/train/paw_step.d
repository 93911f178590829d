build-cpu/train/paw_step.o: train/paw_step.c train/paw_step.h \
 compiler/compiler.h model/qwen3.h model/config.h compiler/mapper.h \
 common/error.h
train/paw_step.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
common/error.h:
