/* label.h: the labelling job: snippets + the task prompt templates -> a teacher -> checked
 * answers in the labels store.
 *
 * sm_label_run reads every snippet first (a malformed line is an error naming its line, before
 * any request), keeps those of its shard when one is set (the others are neither stored nor
 * asked for), records them in the store, and works out the jobs: one per snippet in joint mode
 * (all four fields in one JSON object; store task "all"), or one per snippet and task in per-task
 * mode. A job whose key (model, template version, snippet id, task) is already in the store is
 * skipped, so a rerun asks only for what is missing and a rerun of a finished job makes no
 * request. The others go to the teacher, at most 2 x concurrency at a time; each answer is read
 * (the JSON object, in fences or prose or not), checked with the task checks, and either stored
 * as ok or asked again, up to `retries` more times, before it is stored as rejected with the
 * reason. A job whose transfers failed after the teacher's own retries is stored as rejected with
 * that reason (retry_rejected asks again). Every finished job is committed at once. With a token
 * budget, no new request starts once the tokens used in this run reach it, and when *stop is set
 * none starts either: requests in flight finish and are stored, queued ones are dropped and left
 * for the next run. In joint mode with only some tasks, only those fields are checked and kept,
 * and the store's task key names them ("title,tags"), so that a later run asking for all fields
 * asks again.
 */
#ifndef SM_LABEL_H
#define SM_LABEL_H

#include "shard.h"
#include "snipmeta.h"
#include "store.h"
#include "teacher.h"

#include <signal.h>

typedef struct {
    char code[32];
    long long n;
} sm_reason_count;

#define SM_LABEL_MAX_REASONS 32

typedef struct {
    long long snippets;          /* read from the input, each id once */
    long long duplicates;        /* input lines whose id came before */
    long long other_shards;      /* input lines left to the other shards (--shard K/N) */
    long long jobs;              /* snippets, or snippets x tasks */
    long long skipped;           /* already in the store */
    long long done, ok, rejected;/* finished in this run */
    long long requests;          /* HTTP attempts */
    long long retries;           /* transport retries + answers asked again */
    long long prompt_tokens, completion_tokens;
    int budget_reached, interrupted;
    double elapsed_s;
    sm_reason_count failures[SM_LABEL_MAX_REASONS]; /* failed attempts and answers, by reason code */
    int n_failures;
    sm_reason_count rejects[SM_LABEL_MAX_REASONS];  /* jobs stored as rejected, by reason code */
    int n_rejects;
} sm_label_stats;

typedef struct {
    const char *snippets_path;   /* JSONL: id (computed when absent), lang, code; source, license,
                                    path, symbol, lines kept when present */
    sm_teacher_params teacher;
    unsigned tasks;              /* mask of 1 << sm_task */
    int per_task;                /* 0: joint */
    const char *prompts_dir;     /* NULL: the templates compiled in */
    long long budget_tokens;     /* 0: no limit */
    int retries;                 /* answers that fail the checks are asked again this many times */
    int retry_rejected;          /* ask again for jobs stored as rejected */
    sm_shard shard;              /* only this shard's snippets (shard.h); n 0: all of them */
    volatile sig_atomic_t *stop; /* when set and non-zero: start nothing new, finish in flight */
    void (*progress)(void *ctx, const sm_label_stats *st); /* after each finished job; may be NULL */
    void *progress_ctx;
} sm_label_params;

/* Runs the job (see above). Returns SM_OK with *stats filled (also when the budget stopped it
 * or *stop was set), or an error: SM_EFORMAT for a bad input line, SM_EIO for a teacher that
 * cannot be reached or refuses the key, model or URL, or a store that cannot be written. */
int sm_label_run(sm_store *store, const sm_label_params *p, sm_label_stats *stats, sm_error *err);

/* The template version that a job with these settings stores its answers under, for a task
 * (ignored in joint mode): 16 hex digits. */
int sm_label_template_version(const char *prompts_dir, int per_task, int task, char version[17], sm_error *err);

/* Writes the labels of (model, this run's template versions) as JSONL in the format of
 * ../shared/data/labels.jsonl (one line per snippet with at least one ok field, sorted by id),
 * atomically (a temporary file renamed over path). Returns the lines written in *n_written. */
int sm_label_export(sm_store *store, const char *model, const char *prompts_dir, int per_task, const char *path,
                    long long *n_written, sm_error *err);

#endif
