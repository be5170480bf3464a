/* metadata.h: a snippet's metadata from the base model and the task adapters of a registry: the
 * one routine that the CLI (`snipmeta all|title|...`), the server and the benchmark share, so
 * that they give the same answers for the same snippet and settings.
 *
 * For each task asked for, the student prompt (tasks.h, prompts/student.txt) is
 *     [BOS] Language: {lang}\nCode:\n{code}\n### {Marker}:\n
 * with the code cut to max_code_bytes (and further, line by line, until prompt and answer fit the
 * context), and the task's adapter (the registry's adapter named after the task) continues it:
 *   title        stops at a newline or end of generation; trimmed to one line of at most 10
 *                words without a trailing period
 *   description  stops at end of generation, a blank line, a fourth sentence or 60 words; trimmed
 *                to the longest prefix that ends a sentence and passes the check
 *   tags         constrained to the registry's tag vocabulary (constrain.h): "tag, tag", 1-6 tags,
 *                no duplicates, the first the language
 *   links        constrained to the registry's links index: 0-3 URLs one per line, no duplicates
 * Each result is then checked with the task check; a failing one is kept and its reason reported.
 *
 * Standard adapters read the whole prompt, tokenized as one text (as training does). Activated
 * adapters (sm_lora.activated) switch on at the marker line: the prefix before it is tokenized
 * on its own and prefilled once with no adapter, and every activated task goes on from there
 * (sm_context_truncate back to the prefix, the adapter swapped in by pointer, its start set to the
 * prefix length), so all four tasks share one prefill of the snippet. After that prefill the
 * activated tasks decode side by side (sm_context_seqs_begin, sm_forward_seqs: one forward pass
 * per step with one row per task still going, each row with its own adapter and its own copy of
 * the prefix's cache), so that the weights are read once per step for all of them; a task that is
 * done drops out. The answers are those of decoding each task alone (params.sequential, the
 * reference) up to float summation order.
 *
 * Decoding is greedy by default (temp 0): the same snippet, settings and thread count give the
 * same answer. With temp > 0 each task samples with its own generator seeded from (seed, task).
 */
#ifndef SM_METADATA_H
#define SM_METADATA_H

#include "registry.h"
#include "sample.h"
#include "tasks.h"

#include <jansson.h>

typedef struct {
    unsigned tasks;             /* mask of 1 << sm_task */
    sm_sampler_params sampling; /* temp <= 0: greedy */
    size_t max_code_bytes;      /* 0: SM_META_MAX_CODE_BYTES */
    int max_tokens;             /* per task, at most the task's own limit (32, 128, 96, 160); 0: that limit */
    int sequential;             /* 1: activated tasks decode one after another rather than side by side
                                   (the reference the batched path is tested against) */
} sm_meta_params;

#define SM_META_MAX_CODE_BYTES 3000 /* as `snipmeta dataset` cuts training code */
#define SM_META_DEFAULT_CTX 2048

/* The defaults: every task, greedy, seed 0. */
sm_meta_params sm_meta_default_params(void);

typedef struct {
    unsigned tasks;                 /* the tasks that ran */
    char *title, *description;      /* NULL when not asked for */
    char **tags, **links;
    int n_tags, n_links;
    char check[SM_TASK_COUNT][SM_REASON_MAX]; /* the failed check's reason, "" when it passed */
    double task_ms[SM_TASK_COUNT];  /* each task's own prefill and decoding; for activated tasks decoded
                                       side by side, from the start of the batch to the task's last step */
    double prefill_ms;              /* the shared prefill of activated adapters (0: none) */
    double total_ms;
    int n_prompt_tokens;            /* of the longest prompt */
    int n_generated[SM_TASK_COUNT];
    int code_cut;                   /* 1 when the code was cut to fit */
} sm_meta_result;

void sm_meta_result_free(sm_meta_result *r); /* frees what r holds; NULL-safe */

/* One inference context and its buffers: one per thread that runs requests. */
typedef struct sm_meta_worker sm_meta_worker;

/* A worker for model m with a context of n_ctx positions (<= 0: SM_META_DEFAULT_CTX, capped at
 * the model's context length). Returns a new worker the caller frees with sm_meta_worker_free,
 * or NULL with *err set (SM_ENOMEM). */
sm_meta_worker *sm_meta_worker_new(const sm_model *m, int n_ctx, sm_error *err);
void sm_meta_worker_free(sm_meta_worker *w); /* NULL-safe */
sm_context *sm_meta_worker_context(sm_meta_worker *w);

/* Runs the tasks of p on a snippet (code: UTF-8 text; lang: lowercase kebab-case, e.g. "python")
 * with the adapters of r, filling *out (zeroed first; free it with sm_meta_result_free).
 * Returns SM_OK; SM_EINVAL when a task has no adapter in r, lang is not kebab-case, or the prompt
 * cannot fit the context; SM_ENOMEM. */
int sm_meta_run(sm_meta_worker *w, sm_registry *r, const char *lang, const char *code, const sm_meta_params *p,
                sm_meta_result *out, sm_error *err);

/* The result as the JSON object that the CLI's --json and POST /v1/metadata print: the fields of
 * the tasks that ran (title, description: strings; tags, links: arrays), "lang", "checks" (task:
 * reason, only for failed checks) and, with timings, "timings" {"prefill_ms", "title_ms", ...,
 * "total_ms"}. Returns a new reference, or NULL when out of memory. */
json_t *sm_meta_result_json(const sm_meta_result *r, const char *lang, int timings);

/* The language of a snippet: from the file name (may be NULL) and the code's first line
 * (sm_lang_detect), then from keywords in the code. Returns a name such as "python", or NULL
 * when nothing points to a language. */
const char *sm_meta_guess_lang(const char *path, const char *code);

/* Whether text looks binary rather than source code: a NUL byte, bytes that are not UTF-8, or
 * more than 1% control bytes other than tab, newline, carriage return and form feed. */
int sm_meta_is_binary(const char *text, size_t len);

/* A plain completion (the OpenAI-compatible endpoints): continues prompt (tokenized with BOS when
 * the vocabulary asks for it) with the adapter l (NULL: the base alone) for at most max_tokens
 * tokens, stopping early at end of generation or at any of the n_stop strings (not included).
 * Writes a new string to *text (the caller frees it), the stop reason ("stop" or "length") to
 * *finish, and the token counts. Returns SM_OK; SM_EINVAL when the prompt and max_tokens do not
 * fit the context; SM_ENOMEM. */
int sm_meta_complete(sm_meta_worker *w, const sm_lora *l, const char *prompt, int max_tokens,
                     const sm_sampler_params *sampling, const char *const *stop, int n_stop, char **text,
                     const char **finish, int *n_prompt_tokens, int *n_completion_tokens, sm_error *err);

#endif
