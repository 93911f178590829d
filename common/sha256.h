// SHA-256 (FIPS 180-4), incremental. Used for content hashes (program ids).
#ifndef PAW_COMMON_SHA256_H
#define PAW_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t total;     // bytes hashed so far
    uint8_t block[64];  // pending partial block
    size_t fill;
} PawSha256;

void paw_sha256_init(PawSha256 *s);
void paw_sha256_update(PawSha256 *s, const void *data, size_t n);
void paw_sha256_final(PawSha256 *s, uint8_t digest[32]);
// One call: digest of a buffer.
void paw_sha256(const void *data, size_t n, uint8_t digest[32]);
// 64 lowercase hex digits + NUL.
void paw_sha256_hex(const uint8_t digest[32], char hex[65]);
// SHA-256 of a file's contents as hex. 0, or -1 + paw_error() naming the file.
int paw_sha256_file(const char *path, char hex[65]);

#endif
