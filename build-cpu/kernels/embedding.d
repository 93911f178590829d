build-cpu/kernels/embedding.o: kernels/embedding.c kernels/embedding.h
kernels/embedding.h:
