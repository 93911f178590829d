build-cpu/tests/test_kernels.o: tests/test_kernels.c common/error.h \
 common/rng.h kernels/attention.h kernels/crossentropy.h kernels/matmul.h \
 kernels/rmsnorm.h kernels/rope.h kernels/swiglu.h tests/testutil.h \
 model/safetensors.h common/fileio.h
common/error.h:
common/rng.h:
kernels/attention.h:
kernels/crossentropy.h:
kernels/matmul.h:
kernels/rmsnorm.h:
kernels/rope.h:
kernels/swiglu.h:
tests/testutil.h:
model/safetensors.h:
common/fileio.h:
