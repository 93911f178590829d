// Tests for common/sha256.c against the FIPS 180-4 / NIST example vectors.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"

static void hex_of(const void *data, size_t n, char hex[65]) {
    uint8_t d[32];
    paw_sha256(data, n, d);
    paw_sha256_hex(d, hex);
}

Test(sha256, known_vectors) {
    char hex[65];
    hex_of("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 448 bits: padding spills
    hex_of(two, strlen(two), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    hex_of(four, strlen(four), hex);
    cr_assert_str_eq(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    hex_of(million, 1000000, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

// Any split of the input into update calls gives the one-shot digest.
Test(sha256, incremental_splits) {
    uint8_t data[300];
    for (int i = 0; i < 300; i++) data[i] = (uint8_t)(i * 131 + 7);
    uint8_t want[32], got[32];
    paw_sha256(data, sizeof data, want);
    for (size_t step = 1; step <= 130; step += 7) {
        PawSha256 s;
        paw_sha256_init(&s);
        for (size_t off = 0; off < sizeof data; off += step)
            paw_sha256_update(&s, data + off, off + step <= sizeof data ? step : sizeof data - off);
        paw_sha256_final(&s, got);
        cr_assert_eq(memcmp(got, want, 32), 0, "step %zu", step);
    }
}
