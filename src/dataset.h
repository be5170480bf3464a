/* dataset.h: per-task training sets in the student prompt format, from labels.
 *
 * Inputs (told apart by their first bytes):
 *   - a labels store (SQLite, from `snipmeta label`): the ok fields of every row, the latest
 *     answer winning per snippet and task; rejected rows are counted by reason;
 *   - labels JSONL in the format of ../shared/data/labels.jsonl (id, lang, code, title,
 *     description, tags, links; id computed from the code when absent);
 *   - OpenAI fine-tuning chat JSONL ({"messages": [{"role": "user", ...}, {"role": "assistant",
 *     ...}]}): the user message gives "Language: X" and the code after "Code:\n" (up to a
 *     "### Marker:" line when it is in the student format); the assistant message is either a
 *     JSON object with the label fields, or the completion for the task that the marker names.
 * Records of the same snippet merge field by field (the later one wins). Every field is checked
 * with the task checks; one that fails is left out and counted as a reject by reason.
 *
 * Splits: train 80%, validation 10%, test 10%, decided by the SHA-256 of a near-duplicate group
 * key, so that near-duplicates always land in the same split and the same input always gives the
 * same splits. The key is the hash of the code's token shape: comments and whitespace dropped,
 * string literals, numbers and identifiers each replaced by one placeholder, keywords and
 * punctuation kept. Snippets that differ only in names, literals, comments or layout (renamed
 * copies, getters and setters of one pattern, the same function in two projects) share a key.
 * (MinHash over token shingles would also catch small edits; the shape key is exact, cheap and
 * explainable, and measured on ../shared/data it groups what the eye calls copies.)
 *
 * Output in DIR:
 *   TASK/train.jsonl, TASK/validation.jsonl, TASK/test.jsonl for each task asked for, one
 *     {"id", "lang", "prompt", "completion"} per line, sorted by id (see tasks.h for the format);
 *   tags.txt   the tag vocabulary of the training split, one tag per line, sorted;
 *   links.txt  the links index of the training split, one URL per line, sorted;
 *   stats.json counts per split, task and language, rejects by reason, the format version.
 * Every file is written to a temporary name and renamed; the bytes depend only on the input.
 */
#ifndef SM_DATASET_H
#define SM_DATASET_H

#include "snipmeta.h"

#include <jansson.h>
#include <stddef.h>

typedef struct {
    const char *input;          /* labels.db, labels.jsonl or chat JSONL */
    const char *out_dir;        /* created when absent */
    unsigned tasks;             /* mask of 1 << sm_task */
    size_t max_code_bytes;      /* code longer than this is cut (0: never) */
    const char *model;          /* store input only: the teacher model's rows only (NULL: all) */
} sm_dataset_params;

/* Builds the datasets (see above). Returns SM_OK and *stats (the object written to stats.json, a
 * new reference the caller releases), or SM_EFORMAT naming the file and line of a bad input
 * record, SM_EIO. */
int sm_dataset_build(const sm_dataset_params *p, json_t **stats, sm_error *err);

/* The near-duplicate group key of a snippet (see above): 16 hex digits. */
void sm_dataset_group_key(char key[17], const char *lang, const char *code);

/* The split of a group key: 0 train, 1 validation, 2 test. */
int sm_dataset_split(const char *group_key);

#endif
