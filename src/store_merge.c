/* store_merge.c: merging labels stores into a new one (store_merge.h). The output is made by
 * sm_store_open (so its schema is store.c's), then filled over a connection of its own that
 * attaches one input at a time; which input each kept row came from lives in a TEMP table, so
 * that a conflict can name both sides. */
#include "store_merge.h"

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LABEL_COLS "model, template, snippet_id, task, status, reason, fields, raw, prompt_tokens," \
                   " completion_tokens, latency_ms, attempts, created_at, updated_at"
#define N_LABEL_COLS 14
#define SNIPPET_COLS "id, lang, source, license, path, symbol, line_start, line_end, code"

const char *sm_merge_rule_name(sm_merge_rule r) {
    return r == SM_MERGE_BY_STATUS ? "status" : r == SM_MERGE_BY_TIME ? "time" : "order";
}

typedef struct {
    sqlite3 *db;
    const char *tmp;
    sqlite3_stmt *find, *put, *put_origin;
} merger;

static int db_fail(merger *m, sm_error *err, int code, const char *file, const char *what) {
    return sm_err(err, code, "%s: %s: %s", file, what, sqlite3_errmsg(m->db));
}

static int exec(merger *m, const char *sql, const char *file, sm_error *err) {
    return sqlite3_exec(m->db, sql, NULL, NULL, NULL) == SQLITE_OK ? SM_OK : db_fail(m, err, SM_EIO, file, sql);
}

static int str_differs(const unsigned char *a, const unsigned char *b) {
    if (!a || !b) return a != b;
    return strcmp((const char *)a, (const char *)b) != 0;
}

/* Counts the input's snippets recorded with other columns, then adds the new ones. */
static int merge_snippets(merger *m, const char *file, sm_merge_stats *st, sm_error *err) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(m->db,
                           "SELECT count(*) FROM src.snippets s JOIN main.snippets o ON o.id = s.id"
                           " WHERE s.lang IS NOT o.lang OR s.source IS NOT o.source OR s.license IS NOT o.license"
                           " OR s.path IS NOT o.path OR s.symbol IS NOT o.symbol OR s.line_start IS NOT o.line_start"
                           " OR s.line_end IS NOT o.line_end OR s.code IS NOT o.code", -1, &q, NULL) != SQLITE_OK)
        return db_fail(m, err, SM_EIO, file, "cannot read snippets");
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) st->snippet_conflicts += sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) return db_fail(m, err, SM_EIO, file, "cannot read snippets");
    return exec(m, "INSERT OR IGNORE INTO main.snippets(" SNIPPET_COLS ") SELECT " SNIPPET_COLS " FROM src.snippets", file, err);
}

/* Decides between the kept row (status a, created a) and an incoming one from a later input. */
static int incoming_wins(const char *status_a, const char *created_a, const char *status_b, const char *created_b,
                         sm_merge_rule *rule) {
    int ok_a = !strcmp(status_a, "ok"), ok_b = !strcmp(status_b, "ok");
    if (ok_a != ok_b) { *rule = SM_MERGE_BY_STATUS; return ok_b; }
    int c = strcmp(created_b, created_a);
    if (c) { *rule = SM_MERGE_BY_TIME; return c < 0; }
    *rule = SM_MERGE_BY_ORDER;
    return 0;
}

static const char *answer_of(const char *status, const char *fields, const char *reason) {
    const char *a = !strcmp(status, "ok") ? fields : reason;
    return a ? a : "";
}

static int merge_labels(merger *m, int input, const char *file, sm_merge_conflict_fn on_conflict, void *ctx,
                        sm_merge_stats *st, sm_error *err) {
    sqlite3_stmt *rd;
    if (sqlite3_prepare_v2(m->db, "SELECT " LABEL_COLS " FROM src.labels", -1, &rd, NULL) != SQLITE_OK)
        return db_fail(m, err, SM_EIO, file, "cannot read labels");
    int rc, out = SM_OK;
#define TXT(st, i) ((const char *)sqlite3_column_text(st, i))
    while (out == SM_OK && (rc = sqlite3_step(rd)) == SQLITE_ROW) {
        st->labels_read++;
        for (int i = 0; i < 4; i++) sqlite3_bind_value(m->find, i + 1, sqlite3_column_value(rd, i));
        int take = 1, f = sqlite3_step(m->find);
        if (f == SQLITE_ROW) {
            const char *status_b = TXT(rd, 4), *created_b = TXT(rd, 12);
            const char *status_a = TXT(m->find, 0), *created_a = TXT(m->find, 3);
            sm_merge_rule rule;
            take = incoming_wins(status_a, created_a ? created_a : "", status_b, created_b ? created_b : "", &rule);
            int differs = strcmp(status_a, status_b) ||
                          str_differs(sqlite3_column_text(m->find, 1), sqlite3_column_text(rd, 5)) ||
                          str_differs(sqlite3_column_text(m->find, 2), sqlite3_column_text(rd, 6));
            if (!differs) {
                st->duplicates++;
            } else {
                st->conflicts++;
                if (on_conflict) {
                    sm_merge_side a = {.input = sqlite3_column_int(m->find, 4), .status = status_a,
                                       .answer = answer_of(status_a, TXT(m->find, 2), TXT(m->find, 1)), .created_at = created_a};
                    sm_merge_side b = {.input = input, .status = status_b,
                                       .answer = answer_of(status_b, TXT(rd, 6), TXT(rd, 5)), .created_at = created_b};
                    sm_merge_conflict c = {.model = TXT(rd, 0), .template_hash = TXT(rd, 1), .snippet_id = TXT(rd, 2),
                                           .task = TXT(rd, 3), .kept = take ? b : a, .dropped = take ? a : b, .rule = rule};
                    on_conflict(ctx, &c);
                }
            }
        } else if (f != SQLITE_DONE) {
            out = db_fail(m, err, SM_EIO, file, "cannot look a label up");
        }
        sqlite3_reset(m->find);
        if (out == SM_OK && take) {
            for (int i = 0; i < N_LABEL_COLS; i++) sqlite3_bind_value(m->put, i + 1, sqlite3_column_value(rd, i));
            for (int i = 0; i < 4; i++) sqlite3_bind_value(m->put_origin, i + 1, sqlite3_column_value(rd, i));
            sqlite3_bind_int(m->put_origin, 5, input);
            if (sqlite3_step(m->put) != SQLITE_DONE || sqlite3_step(m->put_origin) != SQLITE_DONE)
                out = db_fail(m, err, SM_EIO, m->tmp, "cannot write a label");
            sqlite3_reset(m->put);
            sqlite3_reset(m->put_origin);
        }
    }
#undef TXT
    if (out == SM_OK && rc != SQLITE_DONE) out = db_fail(m, err, SM_EIO, file, "cannot read labels");
    sqlite3_finalize(rd);
    return out;
}

/* Attaches one input as "src", checks that it is a labels store, merges it and detaches it. */
static int merge_input(merger *m, int input, const char *file, sm_merge_conflict_fn on_conflict, void *ctx,
                       sm_merge_stats *st, sm_error *err) {
    if (access(file, R_OK) != 0) return sm_err(err, SM_EIO, "%s: cannot read: %s", file, strerror(errno));
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(m->db, "ATTACH ? AS src", -1, &q, NULL) != SQLITE_OK)
        return db_fail(m, err, SM_EIO, file, "cannot attach");
    sqlite3_bind_text(q, 1, file, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return sqlite3_errcode(m->db) == SQLITE_NOTADB ? sm_err(err, SM_EFORMAT, "%s: not a labels store (not an SQLite database)", file)
                                                       : db_fail(m, err, SM_EIO, file, "cannot open");
    int version = -1, tables = 0, out = SM_OK;
    if (sqlite3_prepare_v2(m->db, "PRAGMA src.user_version", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) version = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    if (version >= 0 && sqlite3_prepare_v2(m->db, "SELECT count(*) FROM src.sqlite_master WHERE type = 'table'"
                                                  " AND name IN ('labels', 'snippets')", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) tables = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    if (version < 0 || tables != 2)
        out = sm_err(err, SM_EFORMAT, "%s: not a labels store (expected the tables labels and snippets)", file);
    else if (version != 1)
        out = sm_err(err, SM_EFORMAT, "%s: labels store version %d, expected 1", file, version);
    if (out == SM_OK) out = exec(m, "BEGIN", m->tmp, err);
    if (out == SM_OK) out = merge_snippets(m, file, st, err);
    if (out == SM_OK) out = merge_labels(m, input, file, on_conflict, ctx, st, err);
    if (out == SM_OK) out = exec(m, "COMMIT", m->tmp, err);
    else sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_exec(m->db, "DETACH src", NULL, NULL, NULL) != SQLITE_OK && out == SM_OK)
        out = db_fail(m, err, SM_EIO, file, "cannot detach");
    return out;
}

static long long count_rows(merger *m, const char *sql) {
    sqlite3_stmt *q;
    long long n = -1;
    if (sqlite3_prepare_v2(m->db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    return n;
}

/* fsync of a file, or of the directory that holds path. */
static int sync_path(const char *path, int dir) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dir ? dirname(copy) : copy, O_RDONLY);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void remove_db(const char *path) {
    static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
    char buf[4200];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]);
        unlink(buf);
    }
}

int sm_store_merge(const char *out_path, const char *const *inputs, int n_inputs, sm_merge_conflict_fn on_conflict,
                   void *ctx, sm_merge_stats *st, sm_error *err) {
    memset(st, 0, sizeof *st);
    if (n_inputs < 1) return sm_err(err, SM_EINVAL, "store merge: no input stores");
    char wal[4200], tmp[4200];
    snprintf(wal, sizeof wal, "%s-wal", out_path);
    if (access(out_path, F_OK) == 0 || access(wal, F_OK) == 0)
        return sm_err(err, SM_EINVAL, "%s: exists already; the merge writes a new store (remove it or name another)", out_path);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.merge-%ld", out_path, (long)getpid()) >= sizeof tmp - 16)
        return sm_err(err, SM_EINVAL, "%s: path too long", out_path);
    remove_db(tmp);

    sm_store *s;
    int rc = sm_store_open(&s, tmp, err); /* the schema, as store.c makes it */
    if (rc) { remove_db(tmp); return rc; }
    sm_store_close(s);
    merger m = {.tmp = tmp};
    if (sqlite3_open_v2(tmp, &m.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = sm_err(err, SM_EIO, "%s: cannot open: %s", tmp, m.db ? sqlite3_errmsg(m.db) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(m.db, 10000);
    /* one rollback journal, no syncs while filling: the file is synced once before the rename */
    if ((rc = exec(&m, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;"
                       " CREATE TEMP TABLE origin(model, template, snippet_id, task, input INTEGER,"
                       " PRIMARY KEY(model, template, snippet_id, task)) WITHOUT ROWID", tmp, err)))
        goto done;
    if (sqlite3_prepare_v2(m.db,
                           "SELECT l.status, l.reason, l.fields, l.created_at, o.input FROM main.labels l"
                           " JOIN temp.origin o USING (model, template, snippet_id, task)"
                           " WHERE l.model = ?1 AND l.template = ?2 AND l.snippet_id = ?3 AND l.task = ?4",
                           -1, &m.find, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m.db, "INSERT OR REPLACE INTO main.labels(" LABEL_COLS ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &m.put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m.db, "INSERT OR REPLACE INTO temp.origin VALUES(?, ?, ?, ?, ?)", -1, &m.put_origin, NULL) != SQLITE_OK) {
        rc = db_fail(&m, err, SM_EIO, tmp, "cannot prepare statements");
        goto done;
    }
    for (int i = 0; i < n_inputs && rc == SM_OK; i++) rc = merge_input(&m, i, inputs[i], on_conflict, ctx, st, err);
    if (rc == SM_OK) {
        st->labels_written = count_rows(&m, "SELECT count(*) FROM main.labels");
        st->snippets_written = count_rows(&m, "SELECT count(*) FROM main.snippets");
        if (st->labels_written < 0 || st->snippets_written < 0) rc = db_fail(&m, err, SM_EIO, tmp, "cannot count rows");
    }
done:
    sqlite3_finalize(m.find);
    sqlite3_finalize(m.put);
    sqlite3_finalize(m.put_origin);
    if (m.db && sqlite3_close(m.db) != SQLITE_OK && rc == SM_OK) rc = sm_err(err, SM_EIO, "%s: cannot close", tmp);
    if (rc == SM_OK && sync_path(tmp, 0)) rc = sm_err(err, SM_EIO, "%s: cannot sync: %s", tmp, strerror(errno));
    if (rc == SM_OK && rename(tmp, out_path))
        rc = sm_err(err, SM_EIO, "%s: cannot rename to %s: %s", tmp, out_path, strerror(errno));
    if (rc == SM_OK) sync_path(out_path, 1);
    else remove_db(tmp);
    return rc;
}
