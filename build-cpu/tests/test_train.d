build-cpu/tests/test_train.o: tests/test_train.c common/error.h \
 common/fileio.h kernels/adamw.h model/safetensors.h train/checkpoint.h \
 train/config.h tests/world.h
common/error.h:
common/fileio.h:
kernels/adamw.h:
model/safetensors.h:
train/checkpoint.h:
train/config.h:
tests/world.h:
