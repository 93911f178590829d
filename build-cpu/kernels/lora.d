build-cpu/kernels/lora.o: kernels/lora.c kernels/lora.h kernels/matmul.h
kernels/lora.h:
kernels/matmul.h:
