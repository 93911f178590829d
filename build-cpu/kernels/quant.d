build-cpu/kernels/quant.o: kernels/quant.c kernels/quant.h \
 model/safetensors.h common/fileio.h
kernels/quant.h:
model/safetensors.h:
common/fileio.h:
