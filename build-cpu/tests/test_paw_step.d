build-cpu/tests/test_paw_step.o: tests/test_paw_step.c tests/testutil.h \
 common/error.h model/safetensors.h common/fileio.h kernels/adamw.h \
 train/paw_step.h compiler/compiler.h model/qwen3.h model/config.h \
 compiler/mapper.h
tests/testutil.h:
common/error.h:
model/safetensors.h:
common/fileio.h:
kernels/adamw.h:
train/paw_step.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
