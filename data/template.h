// Prompt templates: the Qwen3 chat template (tokenizer_config.json) rendered for one user turn,
// byte for byte as HF `apply_chat_template([{"role": "user", "content": x}], tokenize=False,
// add_generation_prompt=True, ...)` renders it:
//   with enable_thinking=False: "<|im_start|>user\n" x "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
//   with the default (thinking): the same without the final "<think>\n\n</think>\n\n".
// The interpreter (a frozen Qwen3 run without thinking) uses the first form; the compiler is an
// instruct model whose turn is opened without a think block (DESIGN.md: chat(x)), so it uses
// the second. All returned strings are new (caller frees); the inputs are copied verbatim.
#ifndef PAW_DATA_TEMPLATE_H
#define PAW_DATA_TEMPLATE_H

#include <stddef.h>

#define PAW_INPUT_PLACEHOLDER "{INPUT_PLACEHOLDER}"

// "<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n" [+ "<think>\n\n</think>\n\n"]
char *paw_chat_user_turn(const char *text, int with_empty_think);

// pseudo_program + "\n\n[INPUT]\n" + input + "\n[END_INPUT]"
char *paw_interpreter_user_text(const char *pseudo_program, const char *input);
// "[SPEC]\n" + spec + "\n[END_SPEC]\n\n[PSEUDO_PROGRAM]"
char *paw_compiler_user_text(const char *spec);

// The full interpreter prompt: chat turn with the empty think block.
char *paw_interpreter_prompt(const char *pseudo_program, const char *input);
// The full compiler prompt: chat turn without a think block.
char *paw_compiler_prompt(const char *spec);

// The interpreter prompt cut where the input goes: prompt(p, x) == *prefix + x + *suffix.
void paw_interpreter_prompt_split(const char *pseudo_program, char **prefix, char **suffix);
// The text of a program's prompt_template.txt: the interpreter prompt with PAW_INPUT_PLACEHOLDER
// as the input.
char *paw_interpreter_prompt_template(const char *pseudo_program);
// Splits a prompt_template.txt at its placeholder. -1 + paw_error() unless it appears exactly once.
int paw_prompt_template_split(const char *template_text, char **prefix, char **suffix);

#endif
