build-cpu/model/bench_gpu.o: model/bench_gpu.c
