/* train_cli.h: what `snipmeta train` and `snipmeta pretrain` share: the loop's flags, the
 * progress display on stderr (a redrawn bar on a terminal, a line now and then otherwise), the
 * run log and the SIGINT/SIGTERM stop that checkpoints before it exits. */
#ifndef SM_TRAIN_CLI_H
#define SM_TRAIN_CLI_H

#include "train.h"

#include <stdio.h>

/* The loop's flags as given; *_set says which ones were given (so commands can pick defaults). */
typedef struct {
    sm_train_config cfg;
    int steps_set, epochs_set, lr_set, wd_set, eval_set;
    long long threads;
    const char *log_path;
    const char *ckpt_path;
    int quiet, keep_ckpt;
} train_flags;

/* Fills f with cfg's defaults. */
void train_flags_init(train_flags *f);
/* Consumes argv[*i] (and its value) when it is one of the loop's flags: returns 1, or 0 when it
 * is not one, or -1 after printing a usage error for a bad value. */
int train_flags_parse(train_flags *f, const char *cmd, int argc, char **argv, int *i);
/* The help text of those flags. */
void train_flags_usage(FILE *out);

/* Opens the log (or NULL without --log), installs the stop handlers and the progress display.
 * Returns 0, or EXIT_FAIL after printing why the log cannot be opened. */
int train_cli_start(train_flags *f, const char *cmd);
/* Ends the progress display and closes the log. */
void train_cli_finish(train_flags *f);

#endif
