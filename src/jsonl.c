/* jsonl.c: JSON Lines reader (see jsonl.h). */
#include "jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sm_jsonl {
    FILE *f;
    char *path, *line;
    size_t cap;
    long line_no;
};

int sm_jsonl_open(sm_jsonl **out, const char *path, sm_error *err) {
    *out = NULL;
    sm_jsonl *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) { free(r); return sm_err(err, SM_ENOMEM, "out of memory"); }
    r->f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!r->f) {
        int rc = sm_err(err, SM_EIO, "%s: cannot open: %s", path, strerror(errno));
        sm_jsonl_close(r);
        return rc;
    }
    *out = r;
    return SM_OK;
}

void sm_jsonl_close(sm_jsonl *r) {
    if (!r) return;
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->path);
    free(r->line);
    free(r);
}

long sm_jsonl_line(const sm_jsonl *r) { return r->line_no; }

int sm_jsonl_next(sm_jsonl *r, json_t **obj, sm_error *err) {
    *obj = NULL;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) return sm_err(err, SM_EIO, "%s:%ld: read error: %s", r->path, r->line_no + 1, strerror(errno));
            return 0;
        }
        r->line_no++;
        size_t len = (size_t)n;
        while (len && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r')) len--;
        size_t i = 0;
        while (i < len && (r->line[i] == ' ' || r->line[i] == '\t')) i++;
        if (i == len) continue;
        json_error_t je;
        json_t *o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
        if (!o) return sm_err(err, SM_EFORMAT, "%s:%ld: not valid JSON at column %d: %s", r->path, r->line_no, je.column, je.text);
        if (!json_is_object(o)) {
            json_decref(o);
            return sm_err(err, SM_EFORMAT, "%s:%ld: expected a JSON object", r->path, r->line_no);
        }
        *obj = o;
        return 1;
    }
}
