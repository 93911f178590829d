build-cpu/kernels/matmul.o: kernels/matmul.c kernels/matmul.h \
 common/error.h
kernels/matmul.h:
common/error.h:
