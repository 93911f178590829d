build-cpu/train/checkpoint.o: train/checkpoint.c train/checkpoint.h \
 train/comm.h common/error.h common/fileio.h model/safetensors.h
train/checkpoint.h:
train/comm.h:
common/error.h:
common/fileio.h:
model/safetensors.h:
