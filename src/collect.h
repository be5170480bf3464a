/* collect.h: source trees to function-level snippets (the pipeline's first step).
 *
 * sm_collect walks files, folders and git checkouts; for each source file it detects the
 * language (lang.h), cuts definitions (collect_cut.h), keeps those of min_lines..max_lines
 * lines, dedents them, gives each the id of sha256.h, drops duplicates, and writes one JSON
 * object per snippet:
 *   {"id", "lang", "source", "license", "path", "symbol", "kind", "lines": [start, end], "code"}
 * (lines 1-based and inclusive; source is the name of the PATH argument the file was found
 * under, and path the file's path below it, led by that name: "python3.11/json/decoder.py", never
 * a local absolute path; license an SPDX id or "unknown"). The output goes to a temporary file renamed over the
 * target at the end, so a reader never sees half a file (or to stdout for "-").
 *
 * The walk skips .git, honours .gitignore files (collect_ignore.h), never follows symbolic links
 * (so links cannot loop) and never enters a folder that it is already inside (same device and
 * inode: bind mounts, hard-linked folders), nor goes deeper than 128 folders. Files that are
 * ignored, not source, huge, binary, not UTF-8, generated or minified, and folders or files that
 * cannot be read, are skipped and counted by reason; none of these stops the walk.
 */
#ifndef SM_COLLECT_H
#define SM_COLLECT_H

#include <stdio.h>

#include "lang.h"
#include "snipmeta.h"

typedef struct sm_collect_opts {
    int min_lines, max_lines;     /* snippet length bounds (default 6 and 45) */
    long long max_file_bytes;     /* larger files are skipped unread (default 1 MiB) */
    int progress;                 /* report progress on stderr (the caller checks for a TTY) */
} sm_collect_opts;

typedef enum sm_skip {
    SM_SKIP_IGNORED,         /* matched a .gitignore rule (files and folders) */
    SM_SKIP_NOT_SOURCE,      /* no known language */
    SM_SKIP_HUGE,            /* larger than max_file_bytes */
    SM_SKIP_BINARY,          /* holds a NUL byte */
    SM_SKIP_NON_UTF8,        /* not valid UTF-8 */
    SM_SKIP_GENERATED,       /* a generated-code marker near the top */
    SM_SKIP_MINIFIED,        /* very long lines */
    SM_SKIP_UNREADABLE,      /* a file that could not be opened or read */
    SM_SKIP_UNREADABLE_DIR,  /* a folder that could not be listed */
    SM_SKIP_SYMLINK,         /* a symbolic link (never followed) */
    SM_SKIP_LOOP,            /* a folder inside itself (bind mount), or one nested too deep */
    SM_SKIP_SPECIAL,         /* a FIFO, socket or device */
    SM_SKIP_COUNT
} sm_skip;

typedef struct sm_collect_stats {
    long long files_seen;                      /* regular files looked at */
    long long files_by_lang[SM_LANG_COUNT];    /* source files cut, per language */
    long long snippets_by_lang[SM_LANG_COUNT]; /* snippets written, per language */
    long long skipped[SM_SKIP_COUNT];
    long long definitions;                     /* definitions found, before filtering */
    long long out_of_range;                    /* definitions shorter or longer than allowed */
    long long duplicates;                      /* snippets dropped as duplicates of an earlier id */
    long long snippets;                        /* snippets written */
    double seconds;
} sm_collect_stats;

/* The reason's name as the summary prints it ("huge", "non-utf8", ...). */
const char *sm_skip_name(sm_skip reason);

/* Fills opts with the defaults. */
void sm_collect_opts_default(sm_collect_opts *opts);

/* Collects snippets from paths[0..n_paths) into out_path ("-": stdout) and fills stats.
 * Returns 0; SM_EINVAL when a path does not exist (nothing is written then); SM_EIO when the
 * output cannot be written; SM_ENOMEM. Problems with single files are counted, not errors. */
int sm_collect(const char *const *paths, int n_paths, const char *out_path, const sm_collect_opts *opts,
               sm_collect_stats *stats, sm_error *err);

/* Writes stats as one JSON object (no newline) to f. */
void sm_collect_stats_json(FILE *f, const sm_collect_stats *stats);

#endif
