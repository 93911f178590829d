build-cpu/data/template.o: data/template.c data/template.h common/error.h
data/template.h:
common/error.h:
