// Trimmed vocabularies: the mapping is explicit (sorted tokenizer ids), survives a save/load,
// maps both ways, and refuses ids outside it.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/vocab_map.h"
#include "model/safetensors.h"

Test(vocab_map, build_map_save_load_and_refuse) {
    int32_t used[] = {151645, 7, 42, 7, 151643, 0, 42};
    PawVocabMap vm;
    cr_assert_eq(paw_vocab_map_build(&vm, used, 7, 151936), 0);
    cr_assert_eq(vm.n, 5);
    int32_t want[5] = {0, 7, 42, 151643, 151645};
    for (int i = 0; i < 5; i++) cr_assert_eq(vm.orig[i], want[i]);
    int32_t ids[4] = {42, 151645, 0, 7};
    cr_assert_eq(paw_vocab_map_to_model(&vm, ids, 4), 0);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 4);
    cr_assert_eq(ids[2], 0);
    const int32_t back_ids[4] = {42, 151645, 0, 7};
    for (int i = 0; i < 4; i++) cr_assert_eq(paw_vocab_map_to_tokenizer(&vm, ids[i]), back_ids[i]);
    cr_assert_eq(paw_vocab_map_to_tokenizer(&vm, 5), -1);
    int32_t bad[2] = {7, 8};
    cr_assert_eq(paw_vocab_map_to_model(&vm, bad, 2), -1);
    cr_assert(strstr(paw_last_error(), "8"), "%s", paw_last_error());
    int32_t out_of_range = 151936;
    PawVocabMap tmp;
    cr_assert_eq(paw_vocab_map_build(&tmp, &out_of_range, 1, 151936), -1);

    char dir[] = "/tmp/paw_vm_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    PawVocabMap none;
    cr_assert_eq(paw_vocab_map_load(&none, dir), 1);  // no file: no trimming
    cr_assert_eq(none.n, 0);
    cr_assert_eq(paw_vocab_map_save(&vm, dir), 0);
    PawVocabMap back;
    cr_assert_eq(paw_vocab_map_load(&back, dir), 0, "%s", paw_last_error());
    cr_assert(paw_vocab_map_equal(&vm, &back));
    cr_assert_eq(back.orig_size, 151936);
    paw_vocab_map_free(&back);
    char *path = paw_path_join(dir, "vocab_map.safetensors");
    // A vocabulary size that is not a positive integer in range is refused before anything is
    // allocated for it.
    const char *bad_sizes[] = {"99999999999", "12abc", "0", "16777217", ""};
    for (int i = 0; i < 5; i++) {
        const char *meta[] = {"orig_vocab_size", bad_sizes[i]};
        StWriteTensor t = {.name = "orig_ids", .dtype = ST_I32, .ndim = 1, .shape = {vm.n}, .data = vm.orig};
        cr_assert_eq(st_write(path, &t, 1, meta, 1), 0, "%s", paw_last_error());
        cr_assert_eq(paw_vocab_map_load(&back, dir), -1, "%s", bad_sizes[i]);
        cr_assert(strstr(paw_last_error(), "orig_vocab_size"), "%s: %s", bad_sizes[i], paw_last_error());
    }
    cr_assert_eq(paw_write_file_atomic(path, "garbage", 7), 0);
    cr_assert_eq(paw_vocab_map_load(&back, dir), -1);
    cr_assert(strstr(paw_last_error(), "vocab_map.safetensors"), "%s", paw_last_error());
    unlink(path);
    rmdir(dir);
    free(path);
    paw_vocab_map_free(&vm);
}
