build-cpu/model/qwen3.o: model/qwen3.c model/qwen3.h model/config.h \
 common/error.h common/rng.h kernels/attention.h kernels/crossentropy.h \
 kernels/embedding.h kernels/lora.h kernels/matmul.h kernels/rmsnorm.h \
 kernels/rope.h kernels/swiglu.h
model/qwen3.h:
model/config.h:
common/error.h:
common/rng.h:
kernels/attention.h:
kernels/crossentropy.h:
kernels/embedding.h:
kernels/lora.h:
kernels/matmul.h:
kernels/rmsnorm.h:
kernels/rope.h:
kernels/swiglu.h:
