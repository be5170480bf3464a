/* store_merge.h: combines labels stores (store.h) into a new one, as when N machines each
 * labelled one shard of a corpus (`snipmeta label --shard K/N`) into their own store.
 *
 * The output holds every snippet and one label row per key (model, template version, snippet
 * id, task) found in any input, each row copied whole (answer, tokens, timings, timestamps).
 * When two inputs hold the same key, the row kept is decided by, in order:
 *   1. an ok row beats a rejected one (a label beats none);
 *   2. the earlier created_at wins (the first answer the teacher gave: what one machine
 *      labelling everything would have kept, since `label` never asks again for a stored key);
 *   3. the input named first wins.
 * Two rows with the same key are a conflict when their answers differ: another status, other
 * fields, or another rejection reason. Each conflict is reported (which row was kept, which
 * dropped, and by which rule); rows with the same answer are counted as duplicates. A snippet
 * recorded with other columns in a later input keeps the first input's columns and is counted.
 *
 * The output is written atomically: into a temporary file beside it, which is synced and renamed
 * over the name only when every input was read; a failed merge leaves nothing behind. An output
 * that exists already is refused (a stale -wal beside it could be replayed onto the new file).
 */
#ifndef SM_STORE_MERGE_H
#define SM_STORE_MERGE_H

#include "snipmeta.h"

/* Why a row was kept over another (the rule above). */
typedef enum {
    SM_MERGE_BY_STATUS = 1,     /* ok over rejected */
    SM_MERGE_BY_TIME = 2,       /* earlier created_at */
    SM_MERGE_BY_ORDER = 3,      /* same time: the input named first */
} sm_merge_rule;

/* One side of a conflict: the input (an index into the inputs) and its row's answer. */
typedef struct {
    int input;
    const char *status;         /* "ok" or "rejected" */
    const char *answer;         /* the fields (JSON text) when ok; the reason when rejected */
    const char *created_at;     /* ISO 8601, UTC */
} sm_merge_side;

typedef struct {
    const char *model, *template_hash, *snippet_id, *task;
    sm_merge_side kept, dropped;
    sm_merge_rule rule;
} sm_merge_conflict;

typedef struct {
    long long labels_read;      /* rows in all inputs */
    long long labels_written;   /* rows in the output: one per key */
    long long duplicates;       /* same key, same answer */
    long long conflicts;        /* same key, different answers */
    long long snippets_written;
    long long snippet_conflicts;/* same id, other columns: the first input's kept */
} sm_merge_stats;

/* Called for each conflict; the strings live until it returns. */
typedef void (*sm_merge_conflict_fn)(void *ctx, const sm_merge_conflict *c);

/* Merges the stores inputs[0..n_inputs) into a new store at out_path (see above); on_conflict
 * may be NULL. Returns SM_OK with *st filled, or: SM_EINVAL (no inputs, or out_path exists),
 * SM_EIO (an input cannot be opened or read, the output cannot be written), SM_EFORMAT (an input
 * is not a labels store, or of another version), with *err naming the file. */
int sm_store_merge(const char *out_path, const char *const *inputs, int n_inputs, sm_merge_conflict_fn on_conflict,
                   void *ctx, sm_merge_stats *st, sm_error *err);

/* "status", "time" or "order". */
const char *sm_merge_rule_name(sm_merge_rule r);

#endif
