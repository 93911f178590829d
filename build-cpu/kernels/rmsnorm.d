build-cpu/kernels/rmsnorm.o: kernels/rmsnorm.c kernels/rmsnorm.h
kernels/rmsnorm.h:
