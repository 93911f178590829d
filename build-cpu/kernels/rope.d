build-cpu/kernels/rope.o: kernels/rope.c kernels/rope.h kernels/rmsnorm.h
kernels/rope.h:
kernels/rmsnorm.h:
