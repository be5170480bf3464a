/* collect.c: the collect walk (see collect.h). It owns the walk state: the path being built,
 * the .gitignore stack, the folders already entered, the ids already written, the file buffer
 * and the counters. Per-file work (filters, cutting, snippets) is in collect_file.c. */
#include "collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collect_ignore.h"
#include "collect_impl.h"
#include "collect_license.h"

enum { LICENSE_FILE_BYTES = 64 * 1024, LICENSE_UP_LEVELS = 8 };

static const char *const skip_names[SM_SKIP_COUNT] = {
    "ignored", "not-source", "huge", "binary", "non-utf8", "generated", "minified",
    "unreadable", "unreadable-dir", "symlink", "loop", "special",
};

const char *sm_skip_name(sm_skip reason) { return reason < SM_SKIP_COUNT ? skip_names[reason] : "?"; }

void sm_collect_opts_default(sm_collect_opts *opts) {
    opts->min_lines = 6;
    opts->max_lines = 45;
    opts->max_file_bytes = 1 << 20;
    opts->progress = 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void collect_progress(collect_walk *w, int final) {
    if (!w->opts->progress) return;
    double t = now_seconds();
    if (!final && t - w->last_progress < 0.2) return;
    w->last_progress = t;
    fprintf(stderr, "\rcollect: %lld files, %lld snippets, %.1f s%s", w->stats->files_seen, w->stats->snippets,
            t - w->t0, final ? "\033[K\r\033[K" : "\033[K");
    fflush(stderr);
}

/* Reads at most cap bytes of the file at path into a new buffer; returns its length, or -1. */
static long read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) { close(fd); return -1; }
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    return (long)n;
}

/* The license a license file in folder dir (path[0..len)) gives, or NULL. The entries' names
 * are given so that the folder is not listed twice. */
static const char *folder_license(collect_walk *w, size_t len, char **names, int n_names) {
    char *text = NULL;
    const char *id = NULL;
    for (int i = 0; i < n_names; i++) {
        if (!sm_license_file_name(names[i])) continue;
        size_t k = strlen(names[i]);
        if (len + 1 + k >= sizeof w->path) continue;
        w->path[len] = '/';
        memcpy(w->path + len + 1, names[i], k + 1);
        if (!text && !(text = malloc(LICENSE_FILE_BYTES))) break;
        long n = read_small(w->path, text, LICENSE_FILE_BYTES);
        w->path[len] = 0;
        if (n > 0 && (id = sm_license_classify(text, (size_t)n))) break;
    }
    free(text);
    return id;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Is the folder (dev, ino) one of the folders being walked (an ancestor)? If not, it is pushed
 * on that list; walk_dir pops it when it leaves. */
static int visited(collect_walk *w, dev_t dev, ino_t ino) {
    for (int i = 0; i < w->n_visited && i < COLLECT_MAX_DEPTH; i++)
        if (w->visited[i].dev == dev && w->visited[i].ino == ino) return 1;
    if (w->n_visited < COLLECT_MAX_DEPTH) {
        w->visited[w->n_visited].dev = dev;
        w->visited[w->n_visited].ino = ino;
    }
    w->n_visited++;
    return 0;
}

/* Walks the folder at w->path[0..len); rel_off is where the path relative to the root starts. */
static int walk_dir(collect_walk *w, size_t len, size_t rel_off, const char *license, int depth) {
    if (depth >= COLLECT_MAX_DEPTH) { w->stats->skipped[SM_SKIP_LOOP]++; return 0; }
    DIR *d = opendir(w->path);
    if (!d) { w->stats->skipped[SM_SKIP_UNREADABLE_DIR]++; return 0; }
    struct stat st;
    if (fstat(dirfd(d), &st) == 0 && visited(w, st.st_dev, st.st_ino)) {
        closedir(d);
        w->stats->skipped[SM_SKIP_LOOP]++;
        return 0;
    }
    /* the entries, sorted, so that the output does not depend on the file system's order */
    char **names = NULL;
    int n_names = 0, cap = 0, rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n_names == cap) {
            cap = cap ? 2 * cap : 64;
            char **g = realloc(names, (size_t)cap * sizeof *g);
            if (!g) { rc = SM_ENOMEM; break; }
            names = g;
        }
        if (!(names[n_names] = strdup(de->d_name))) { rc = SM_ENOMEM; break; }
        n_names++;
    }
    closedir(d);
    if (!rc && n_names > 1) qsort(names, (size_t)n_names, sizeof *names, by_name);

    /* this folder's ignore rules: a checkout's .git/info/exclude, then its .gitignore, which
     * wins where both match (git's order); and its license file */
    const char *rel = len > rel_off ? w->path + rel_off : "";
    char *ignore_text = NULL;
    size_t ignore_len = 0;
    static const char *const rule_files[] = {"/.git/info/exclude", "/.gitignore"};
    for (int f = 0; f < 2 && !rc; f++) {
        size_t k = strlen(rule_files[f]);
        if (len + k >= sizeof w->path) continue;
        memcpy(w->path + len, rule_files[f], k + 1);
        struct stat ist;
        if (stat(w->path, &ist) == 0 && S_ISREG(ist.st_mode) && ist.st_size < (1 << 20)) {
            char *g = realloc(ignore_text, ignore_len + (size_t)ist.st_size + 2);
            if (!g) rc = SM_ENOMEM;
            else {
                ignore_text = g;
                long got = read_small(w->path, ignore_text + ignore_len, (size_t)ist.st_size);
                if (got > 0) { ignore_len += (size_t)got; ignore_text[ignore_len++] = '\n'; }
            }
        }
        w->path[len] = 0;
    }
    if (!rc) rc = sm_ignore_push(w->ignore, rel, ignore_text, ignore_len);
    free(ignore_text);
    if (rc) goto done;
    const char *here = folder_license(w, len, names, n_names);
    if (here) license = here;

    for (int i = 0; i < n_names && !rc; i++) {
        const char *name = names[i];
        if (!strcmp(name, ".git") || !strcmp(name, ".hg") || !strcmp(name, ".svn")) continue;
        size_t k = strlen(name);
        if (len + 1 + k >= sizeof w->path) { w->stats->skipped[SM_SKIP_UNREADABLE]++; continue; }
        w->path[len] = '/';
        memcpy(w->path + len + 1, name, k + 1);
        size_t child_len = len + 1 + k;
        if (lstat(w->path, &st)) {
            w->stats->skipped[SM_SKIP_UNREADABLE]++;
        } else if (S_ISLNK(st.st_mode)) {
            w->stats->skipped[SM_SKIP_SYMLINK]++;
        } else if (sm_ignore_match(w->ignore, w->path + rel_off, S_ISDIR(st.st_mode))) {
            w->stats->skipped[SM_SKIP_IGNORED]++;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(w, child_len, rel_off, license, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            rc = collect_file(w, child_len, (long long)st.st_size, license);
        } else {
            w->stats->skipped[SM_SKIP_SPECIAL]++;
        }
        w->path[len] = 0;
        collect_progress(w, 0);
    }
    sm_ignore_pop(w->ignore);
done:
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    w->n_visited--;
    return rc;
}

/* The license of the nearest license file in the folders above path (a few levels up): a
 * walk root inherits it. */
static const char *license_above(const char *path) {
    char dir[PATH_MAX];
    if (!realpath(path, dir)) return NULL;
    char *text = malloc(LICENSE_FILE_BYTES);
    if (!text) return NULL;
    const char *id = NULL;
    for (int level = 0; level < LICENSE_UP_LEVELS && !id; level++) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) break;
        *slash = 0;
        DIR *d = opendir(dir);
        if (!d) break;
        struct dirent *de;
        while (!id && (de = readdir(d))) {
            if (!sm_license_file_name(de->d_name)) continue;
            char file[PATH_MAX + 256];
            snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
            long n = read_small(file, text, LICENSE_FILE_BYTES);
            if (n > 0) id = sm_license_classify(text, (size_t)n);
        }
        closedir(d);
    }
    free(text);
    return id;
}

/* The name of a walk root, for the snippets' "source": its last component ("." resolved). */
static void root_source(char *out, size_t cap, const char *path) {
    char real[PATH_MAX];
    const char *p = realpath(path, real) ? real : path;
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') len--;
    size_t a = len;
    while (a > 0 && p[a - 1] != '/') a--;
    snprintf(out, cap, "%.*s", (int)(len - a), p + a);
}

void sm_collect_stats_json(FILE *f, const sm_collect_stats *s) {
    fprintf(f, "{\"files_seen\": %lld, \"snippets\": %lld, \"definitions\": %lld, \"out_of_range\": %lld, "
               "\"duplicates\": %lld, \"seconds\": %.3f, \"files_by_lang\": {",
            s->files_seen, s->snippets, s->definitions, s->out_of_range, s->duplicates, s->seconds);
    const char *sep = "";
    for (int l = 1; l < SM_LANG_COUNT; l++)
        if (s->files_by_lang[l]) { fprintf(f, "%s\"%s\": %lld", sep, sm_lang_name(l), s->files_by_lang[l]); sep = ", "; }
    fprintf(f, "}, \"snippets_by_lang\": {");
    sep = "";
    for (int l = 1; l < SM_LANG_COUNT; l++)
        if (s->snippets_by_lang[l]) { fprintf(f, "%s\"%s\": %lld", sep, sm_lang_name(l), s->snippets_by_lang[l]); sep = ", "; }
    fprintf(f, "}, \"skipped\": {");
    for (int r = 0; r < SM_SKIP_COUNT; r++) fprintf(f, "%s\"%s\": %lld", r ? ", " : "", sm_skip_name(r), s->skipped[r]);
    fprintf(f, "}}");
}

int sm_collect(const char *const *paths, int n_paths, const char *out_path, const sm_collect_opts *opts,
               sm_collect_stats *stats, sm_error *err) {
    memset(stats, 0, sizeof *stats);
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st)) return sm_err(err, SM_EINVAL, "%s: %s", paths[i], strerror(errno));
    }
    collect_walk w = {.opts = opts, .stats = stats, .t0 = now_seconds()};
    w.ignore = sm_ignore_new();
    int rc = w.ignore ? 0 : SM_ENOMEM;
    if (rc) return sm_err(err, rc, "collect: out of memory");

    char *tmp = NULL;
    if (!strcmp(out_path, "-")) {
        w.out = stdout;
    } else {
        size_t k = strlen(out_path);
        tmp = malloc(k + 16);
        if (!tmp) { sm_ignore_free(w.ignore); return sm_err(err, SM_ENOMEM, "collect: out of memory"); }
        memcpy(tmp, out_path, k);
        memcpy(tmp + k, ".tmp.XXXXXX", 12);
        int fd = mkstemp(tmp);
        w.out = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!w.out) {
            rc = sm_err(err, SM_EIO, "%s: cannot write: %s", out_path, strerror(errno));
            if (fd >= 0) { close(fd); unlink(tmp); }
            free(tmp);
            sm_ignore_free(w.ignore);
            return rc;
        }
    }

    for (int i = 0; i < n_paths && !rc; i++) {
        const char *p = paths[i];
        size_t len = strlen(p);
        while (len > 1 && p[len - 1] == '/') len--;
        if (len >= sizeof w.path) { stats->skipped[SM_SKIP_UNREADABLE]++; continue; }
        memcpy(w.path, p, len);
        w.path[len] = 0;
        root_source(w.source, sizeof w.source, w.path);
        struct stat st;
        if (stat(w.path, &st)) { stats->skipped[SM_SKIP_UNREADABLE]++; continue; }
        if (S_ISDIR(st.st_mode)) {
            const char *license = license_above(w.path);
            w.rel_off = len + 1;
            rc = walk_dir(&w, len, len + 1, license, 0);
        } else if (S_ISREG(st.st_mode)) {
            /* a file root is shown below its folder's name: "folder/file.c" */
            const char *license = license_above(w.path);
            char *slash = strrchr(w.path, '/');
            if (slash && slash != w.path) {
                *slash = 0;
                root_source(w.source, sizeof w.source, w.path);
                *slash = '/';
            } else {
                root_source(w.source, sizeof w.source, slash ? "/" : ".");
            }
            w.rel_off = slash ? (size_t)(slash - w.path) + 1 : 0;
            rc = collect_file(&w, len, (long long)st.st_size, license);
        } else {
            stats->skipped[SM_SKIP_SPECIAL]++;
        }
    }
    collect_progress(&w, 1);
    if (!rc && (fflush(w.out) || ferror(w.out))) rc = sm_err(err, SM_EIO, "%s: write failed: %s", out_path, strerror(errno));
    else if (rc) sm_err(err, rc, "collect: %s", rc == SM_ENOMEM ? "out of memory" : "write failed");
    if (tmp) {
        if (fclose(w.out) && !rc) rc = sm_err(err, SM_EIO, "%s: write failed: %s", out_path, strerror(errno));
        if (!rc && rename(tmp, out_path)) rc = sm_err(err, SM_EIO, "%s: cannot rename %s: %s", out_path, tmp, strerror(errno));
        if (rc) unlink(tmp);
        free(tmp);
    }
    collect_walk_free(&w);
    stats->seconds = now_seconds() - w.t0;
    return rc;
}
