/* store.h: the labels store, an SQLite database in WAL mode.
 *
 * It holds the snippets that were sent to a teacher and every finished answer, keyed by
 * (teacher model, template version, snippet id, task), where task is "all" for a joint answer
 * (all four fields in one request) or the task's name in per-task mode. A row keeps the raw
 * answer, the parsed fields (a JSON object), the status ("ok" or "rejected" with the reason),
 * token usage, latency, attempts and timestamps. Each row is committed on its own as soon as it
 * is written, so a crash loses only the requests in flight; WAL with synchronous=NORMAL survives
 * a killed process (a power cut may lose the last commits, never corrupt the file).
 *
 * Schema (PRAGMA user_version = 1):
 *   snippets(id PRIMARY KEY, lang, source, license, path, symbol, line_start, line_end, code)
 *   labels(model, template, snippet_id, task, status, reason, fields, raw, prompt_tokens,
 *          completion_tokens, latency_ms, attempts, created_at, updated_at,
 *          PRIMARY KEY(model, template, snippet_id, task))
 * The API key is never stored.
 */
#ifndef SM_STORE_H
#define SM_STORE_H

#include "snipmeta.h"

typedef struct sm_store sm_store;

/* Opens (creating when absent) the store at path. Returns SM_OK and a store that the caller
 * closes with sm_store_close; SM_EIO when the file cannot be opened or is not a store. */
int sm_store_open(sm_store **out, const char *path, sm_error *err);
void sm_store_close(sm_store *s);

typedef struct {
    const char *id, *lang, *source, *license, *path, *symbol, *code; /* NULL: unknown */
    int line_start, line_end;                                         /* 0: unknown */
} sm_snippet;

/* Groups the writes that follow into one transaction (for bulk inserts), and commits them. */
int sm_store_begin(sm_store *s, sm_error *err);
int sm_store_commit(sm_store *s, sm_error *err);

/* Records a snippet (an existing one with the same id is kept). */
int sm_store_put_snippet(sm_store *s, const sm_snippet *sn, sm_error *err);

typedef struct {
    const char *model, *template_hash, *snippet_id, *task;
    const char *status;      /* "ok" or "rejected" */
    const char *reason;      /* why it was rejected; NULL when ok */
    const char *fields;      /* the parsed fields as a JSON object text; NULL when none */
    const char *raw;         /* the last answer's text; NULL when none came */
    long long prompt_tokens, completion_tokens; /* over all attempts */
    double latency_ms;       /* of the last attempt */
    int attempts;
    /* filled when read back: */
    const char *updated_at;  /* ISO 8601, UTC */
    sm_snippet snippet;      /* from the snippets table; fields NULL when unknown */
} sm_label_row;

/* Writes (or replaces) one finished answer and commits it. */
int sm_store_put_label(sm_store *s, const sm_label_row *r, sm_error *err);

/* 1 when a row with this key exists (and, unless include_rejected, is ok), 0 when not, or a
 * negative SM_E* code. */
int sm_store_has_label(sm_store *s, const char *model, const char *template_hash, const char *snippet_id,
                       const char *task, int include_rejected, sm_error *err);

/* Calls fn for every label row (joined with its snippet), ordered by snippet id, then update
 * time, then task; model and template_hash filter when not NULL. The row's strings live until
 * fn returns. A non-zero return from fn stops the walk and is returned. */
typedef int (*sm_label_fn)(void *ctx, const sm_label_row *r);
int sm_store_each_label(sm_store *s, const char *model, const char *template_hash, sm_label_fn fn, void *ctx,
                        sm_error *err);

#endif
