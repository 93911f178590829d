build-cpu/tests/test_sha256.o: tests/test_sha256.c common/sha256.h
common/sha256.h:
