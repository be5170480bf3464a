/* collect_impl.h: the walk state that collect.c and collect_file.c share (internal). */
#ifndef SM_COLLECT_IMPL_H
#define SM_COLLECT_IMPL_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "collect.h"
#include "collect_cut.h"
#include "collect_ignore.h"

enum { COLLECT_MAX_DEPTH = 128 };

typedef struct collect_walk {
    const sm_collect_opts *opts;
    sm_collect_stats *stats;
    FILE *out;
    sm_ignore *ignore;
    char path[PATH_MAX];   /* the file or folder being looked at */
    char source[256];      /* the walk root's name (a file root: its folder's name) */
    size_t rel_off;        /* where the path below the walk root (or that folder) starts in path */
    struct { dev_t dev; ino_t ino; } visited[COLLECT_MAX_DEPTH]; /* the folders being walked */
    int n_visited;
    char *buf;             /* the file's bytes */
    size_t buf_cap;
    size_t *line_off;      /* the file's line starts */
    size_t line_cap;
    char *code;            /* the snippet being built */
    size_t code_cap;
    uint64_t *ids;         /* ids written: open addressing, 0 = empty slot */
    size_t ids_cap, n_ids;
    sm_cut_list cuts;
    double t0, last_progress;
} collect_walk;

/* Looks at the regular file w->path[0..len) of the given size, under a folder whose license
 * is dir_license (NULL: unknown); writes its snippets. Returns 0, or SM_ENOMEM / SM_EIO. */
int collect_file(collect_walk *w, size_t len, long long size, const char *dir_license);
/* Prints progress (at most every 0.2 s unless final) when the options ask for it. */
void collect_progress(collect_walk *w, int final);
/* Frees what collect_file allocated and the ignore stack. */
void collect_walk_free(collect_walk *w);

#endif
