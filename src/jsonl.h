/* jsonl.h: reading JSON Lines files one object at a time, with errors that name the line.
 *
 * Blank lines are skipped; any other line must hold exactly one JSON object. Lines may be of any
 * length. "-" reads standard input.
 */
#ifndef SM_JSONL_H
#define SM_JSONL_H

#include "snipmeta.h"

#include <jansson.h>

typedef struct sm_jsonl sm_jsonl;

/* Opens path for reading. Returns SM_OK and a reader that the caller closes with sm_jsonl_close,
 * or SM_EIO. */
int sm_jsonl_open(sm_jsonl **out, const char *path, sm_error *err);
void sm_jsonl_close(sm_jsonl *r);

/* Reads the next object: 1 with *obj (a new reference the caller releases), 0 at the end, or
 * SM_EFORMAT ("PATH:LINE: ...") for a line that is not a JSON object, SM_EIO for a read error. */
int sm_jsonl_next(sm_jsonl *r, json_t **obj, sm_error *err);

/* The number of the line last read (1-based). */
long sm_jsonl_line(const sm_jsonl *r);

#endif
