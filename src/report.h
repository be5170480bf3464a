/* report.h: the HTML report of `snipmeta eval --report DIR`: one self-contained page (no
 * scripts, no external files) with inline SVG plots.
 *
 * Inputs are eval results, each the JSON object that `snipmeta eval -o` writes:
 *   {"label", "system", "train_size" (-1: unknown), "tasks": {TASK: {"n", metrics..., "by_lang"}},
 *    "examples": {TASK: [{"id", "lang", "pred", "gold"}, ...]} (optional)}
 * and training run logs (train.h's JSON Lines: "step" events with loss, "eval" events with
 * val_loss). The page holds, in order:
 *   - per task, a table of every run's metrics and a grouped bar chart (one group per metric, one
 *     bar per run);
 *   - per task, a table of the main metric by language for every run;
 *   - data-size curves: for every label with results at two or more train_size values, the
 *     task's main metric (ROUGE-L for title and description, F1 for tags and links) against the
 *     training-set size, one line per label, log-scaled x;
 *   - loss curves: training loss (solid) and validation loss (dashed) against the step, one
 *     colour per log;
 *   - the first predictions of the first run beside their references.
 */
#ifndef SM_REPORT_H
#define SM_REPORT_H

#include "snipmeta.h"

#include <jansson.h>

/* Writes dir/index.html and dir/results.json (the runs, as an array) for runs[0..n_runs) and the
 * logs at log_paths[0..n_logs) (creating dir when absent). Returns SM_OK; SM_EIO naming the
 * file that cannot be written or read; SM_EFORMAT naming a log's line that is not JSON. */
int sm_report_write(const char *dir, json_t *const *runs, int n_runs, const char *const *log_paths, int n_logs, sm_error *err);

/* The main metric of a task's results: "rouge_l" for title and description, "f1" otherwise. */
const char *sm_report_main_metric(const char *task);

#endif
