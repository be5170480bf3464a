/* cli.h: what the subcommands of the snipmeta CLI share. tools/snipmeta.c dispatches to one
 * cmd_*.c per subcommand; each returns the process exit code:
 *   0 success, 1 failure at run time, 2 bad usage or bad input file.
 * Only tools/ may exit; the library reports errors through sm_error. */
#ifndef SM_CLI_H
#define SM_CLI_H

#include "snipmeta.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_label(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_meta(int argc, char **argv);  /* all, title, describe, tags, links: argv[0] names the task */
int cmd_serve(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_store(int argc, char **argv);   /* store merge */
int cmd_vocab(int argc, char **argv);   /* vocab train, vocab count */

/* Prints "snipmeta: <msg>" to stderr; returns the exit code for an error of that sm_E* code
 * (bad input files and arguments give 2, the rest 1). */
int cli_report(const sm_error *err);
/* Prints "snipmeta CMD: <formatted>" and a hint to run --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a whole decimal integer / float; returns 0 on success. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *s, double *out);
/* Sets the OpenMP thread count from -t (0 or unset: all cores). */
void cli_set_threads(int n);

/* The bundled default model (models/README.md): the first of these folders that holds
 * snipmeta-base.gguf: $SNIPMETA_MODELS (when set, the only one), models/ beside the executable's folder (build/../models in
 * a checkout), the source tree's models/ the binary was built from. Sets *base to DIR/
 * snipmeta-base.gguf and *adapters to DIR/adapters (static storage) and returns 0; or returns -1
 * after writing the folders it looked in to `looked` (at most n bytes). */
int cli_default_models(const char **base, const char **adapters, char *looked, size_t n);

#endif
