/* tasks.h: the four tasks (title, description, tags, links), their output checks, the student
 * prompt format, and reading a JSON object out of a teacher's answer.
 *
 * The checks are shared by labelling (a teacher's answer that fails them is retried, then
 * rejected with the reason) and decoding (the student's output must pass the same ones):
 *   title        2-10 words, one line, no trailing period
 *   description  1-3 sentences, at most 60 words
 *   tags         1-6 lowercase kebab-case tags, no duplicates, the first is the snippet's language
 *   links        0-3 absolute http(s) URLs, no duplicates
 * A failed check writes a reason "CODE: detail" whose CODE (e.g. "title-words") names the rule, so
 * that summaries can count failures by rule.
 *
 * The student prompt comes from prompts/student.txt (embedded in the library):
 *   Language: {lang}\nCode:\n{code}\n### {marker}:\n
 * followed by the completion and the base's EOS. The completion is the title, the description,
 * the tags joined by ", ", or the links one per line (empty when there are none). Code longer
 * than a byte budget keeps its first lines and ends with the template's cut line
 * ("[... N more lines cut ...]").
 */
#ifndef SM_TASKS_H
#define SM_TASKS_H

#include "snipmeta.h"

#include <jansson.h>
#include <stddef.h>

typedef enum { SM_TASK_TITLE, SM_TASK_DESCRIPTION, SM_TASK_TAGS, SM_TASK_LINKS, SM_TASK_COUNT } sm_task;

#define SM_TASK_ALL ((1u << SM_TASK_COUNT) - 1)
#define SM_REASON_MAX 160

/* "title", "description", "tags", "links". */
const char *sm_task_name(sm_task t);
/* The student prompt's marker: "Title", "Description", "Tags", "Links". */
const char *sm_task_marker(sm_task t);
/* The task named name, or -1. */
int sm_task_from_name(const char *name);
/* Parses a comma-separated list of task names, or "all", into a bit mask (1 << task). */
int sm_task_parse_list(const char *list, unsigned *mask, sm_error *err);

/* The checks: 0 when the value passes, otherwise -1 with the reason in reason[SM_REASON_MAX]. */
int sm_check_title(const char *title, char *reason);
int sm_check_description(const char *description, char *reason);
int sm_check_tags(const char *const *tags, int n_tags, const char *lang, char *reason);
int sm_check_links(const char *const *links, int n_links, char *reason);
/* Checks one field of a JSON label (a string for title and description, an array of strings for
 * tags and links); a missing or mistyped field fails with "missing-TASK" or "type-TASK". */
int sm_check_json_field(sm_task t, const json_t *value, const char *lang, char *reason);
/* Checks a student completion (the text after the marker) for task t. */
int sm_check_completion(sm_task t, const char *completion, const char *lang, char *reason);

/* The completion text of a JSON label field (see above). Returns a new string that the caller
 * frees, or NULL when the field is missing or mistyped or memory runs out. */
char *sm_completion_from_json(sm_task t, const json_t *value);

/* The student prompt for a snippet and task, with code cut to max_code_bytes (0: no cut).
 * Returns a new string that the caller frees, or NULL when out of memory. */
char *sm_student_prompt(const char *lang, const char *code, sm_task t, size_t max_code_bytes);
/* The student format's version: the first 16 hex digits of the SHA-256 of prompts/student.txt. */
void sm_student_format_version(char version[17]);

/* The JSON object in a teacher's answer: the whole text, the inside of a ```json fence, or the
 * first balanced {...} in prose that parses. Returns a new reference, or NULL when there is none. */
json_t *sm_extract_json_object(const char *text);

/* Looks an embedded prompt file up by name ("teacher_joint.txt"); NULL when there is none. */
const char *sm_prompt_text(const char *name, size_t *size);

#endif
