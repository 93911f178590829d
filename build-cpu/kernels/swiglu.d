build-cpu/kernels/swiglu.o: kernels/swiglu.c kernels/swiglu.h
kernels/swiglu.h:
