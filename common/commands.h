// Every `paw` subcommand: int cmd_NAME(int argc, char **argv), where argv[0] is the first
// argument after the subcommand name. Returns the process exit status. Add new commands here
// and in the table in paw.c.
#ifndef PAW_COMMON_COMMANDS_H
#define PAW_COMMON_COMMANDS_H

int cmd_logits(int argc, char **argv);    // model/cli.c
int cmd_generate(int argc, char **argv);  // model/cli.c
int cmd_bench(int argc, char **argv);     // model/bench.c: paw bench cpu|tokenizer|data
int cmd_init(int argc, char **argv);      // train/init_cli.c
int cmd_train(int argc, char **argv);     // train/train.c
int cmd_grad(int argc, char **argv);      // train/train.c
int cmd_ckpt(int argc, char **argv);      // train/ckpt_cli.c: paw ckpt reshard
int cmd_compile(int argc, char **argv);   // compiler/compile_cli.c
int cmd_run(int argc, char **argv);       // interpreter/run_cli.c
int cmd_eval(int argc, char **argv);      // eval/eval.c
int cmd_data(int argc, char **argv);  // data/cli.c: paw data synth|build|...
int cmd_data_synth(int argc, char **argv);  // data/synth_cli.c
int cmd_tokenize(int argc, char **argv);    // data/tokenize_cli.c: text -> token ids
int cmd_detokenize(int argc, char **argv);  // data/tokenize_cli.c: token ids -> text
int bench_tokenizer_main(int argc, char **argv);  // data/tokenize_cli.c: paw bench tokenizer
int cmd_data_build(int argc, char **argv);  // data/build_cli.c: paw data build
int bench_data_main(int argc, char **argv);  // data/build_cli.c: paw bench data

#endif
