// Pseudo-programs: the text half of a program, a clean restatement of the task plus a few
// input/output examples between [PSEUDO_PROGRAM] and [END_PSEUDO_PROGRAM]. An instruct model
// (e.g. Qwen3-4B-Instruct) writes it by greedy generation; the trained compiler cannot, since
// end-to-end training takes its text generation away.
#ifndef PAW_COMPILER_PSEUDO_H
#define PAW_COMPILER_PSEUDO_H

#include <stddef.h>

#define PAW_PSEUDO_BEGIN "[PSEUDO_PROGRAM]"
#define PAW_PSEUDO_END "[END_PSEUDO_PROGRAM]"

// The user turn asking for a pseudo-program (attempt 0, or 1 for the stricter retry).
char *paw_pseudo_request(const char *spec, int attempt);
// The block from BEGIN to END (markers included) out of generated text; NULL + paw_error when a
// marker is missing, the block is empty, or it is longer than max_chars.
char *paw_pseudo_extract(const char *text, size_t max_chars);
// Greedy generation with the instruct model in model_dir, validated, with one retry.
int paw_pseudo_generate(const char *model_dir, const char *spec, int max_new, size_t max_chars, char **out);

#endif
