build-cpu/kernels/attention.o: kernels/attention.c kernels/attention.h \
 common/error.h
kernels/attention.h:
common/error.h:
