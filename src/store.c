/* store.c: the labels store on SQLite (see store.h for the schema and the durability rules). */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct sm_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *put_snippet, *put_label, *has_label;
};

static const char *schema =
    "CREATE TABLE IF NOT EXISTS snippets("
    " id TEXT PRIMARY KEY, lang TEXT, source TEXT, license TEXT, path TEXT, symbol TEXT,"
    " line_start INTEGER, line_end INTEGER, code TEXT);"
    "CREATE TABLE IF NOT EXISTS labels("
    " model TEXT NOT NULL, template TEXT NOT NULL, snippet_id TEXT NOT NULL, task TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('ok', 'rejected')), reason TEXT, fields TEXT, raw TEXT,"
    " prompt_tokens INTEGER, completion_tokens INTEGER, latency_ms REAL, attempts INTEGER,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY(model, template, snippet_id, task));"
    "PRAGMA user_version = 1;";

static int db_error(sm_store *s, sm_error *err, const char *what) {
    return sm_err(err, SM_EIO, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int sm_store_open(sm_store **out, const char *path, sm_error *err) {
    *out = NULL;
    sm_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) { free(s); return sm_err(err, SM_ENOMEM, "out of memory"); }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int rc = sm_err(err, SM_EIO, "%s: cannot open the labels store: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sm_store_close(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 10000);
    int version = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (version < 0) { /* not a database at all */
        int rc = sm_err(err, SM_EIO, "%s: not a labels store (%s)", path, sqlite3_errmsg(s->db));
        sm_store_close(s);
        return rc;
    }
    if (version > 1) {
        sm_store_close(s);
        return sm_err(err, SM_EUNSUPPORTED, "%s: labels store version %d is newer than this snipmeta (1)", path, version);
    }
    char *msg = NULL;
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sm_err(err, SM_EIO, "%s: cannot set up the labels store: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sm_store_close(s);
        return rc;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO snippets(id, lang, source, license, path, symbol, line_start, line_end, code)"
                           " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &s->put_snippet, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO labels(model, template, snippet_id, task, status, reason, fields, raw,"
                           " prompt_tokens, completion_tokens, latency_ms, attempts, created_at, updated_at)"
                           " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
                           " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                           " ON CONFLICT(model, template, snippet_id, task) DO UPDATE SET status = excluded.status,"
                           " reason = excluded.reason, fields = excluded.fields, raw = excluded.raw,"
                           " prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,"
                           " latency_ms = excluded.latency_ms, attempts = excluded.attempts, updated_at = excluded.updated_at",
                           -1, &s->put_label, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "SELECT status FROM labels WHERE model = ? AND template = ? AND snippet_id = ? AND task = ?",
                           -1, &s->has_label, NULL) != SQLITE_OK) {
        int rc = db_error(s, err, "cannot prepare statements");
        sm_store_close(s);
        return rc;
    }
    *out = s;
    return SM_OK;
}

void sm_store_close(sm_store *s) {
    if (!s) return;
    sqlite3_finalize(s->put_snippet);
    sqlite3_finalize(s->put_label);
    sqlite3_finalize(s->has_label);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

int sm_store_begin(sm_store *s, sm_error *err) {
    return sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? SM_OK : db_error(s, err, "cannot begin");
}

int sm_store_commit(sm_store *s, sm_error *err) {
    return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? SM_OK : db_error(s, err, "cannot commit");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static void bind_int_or_null(sqlite3_stmt *st, int i, int v) {
    if (v) sqlite3_bind_int(st, i, v);
    else sqlite3_bind_null(st, i);
}

/* Runs a bound statement that returns no rows, then resets it. */
static int run(sm_store *s, sqlite3_stmt *st, sm_error *err, const char *what) {
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? SM_OK : db_error(s, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

int sm_store_put_snippet(sm_store *s, const sm_snippet *sn, sm_error *err) {
    sqlite3_stmt *st = s->put_snippet;
    bind_text(st, 1, sn->id);
    bind_text(st, 2, sn->lang);
    bind_text(st, 3, sn->source);
    bind_text(st, 4, sn->license);
    bind_text(st, 5, sn->path);
    bind_text(st, 6, sn->symbol);
    bind_int_or_null(st, 7, sn->line_start);
    bind_int_or_null(st, 8, sn->line_end);
    bind_text(st, 9, sn->code);
    return run(s, st, err, "cannot store a snippet");
}

int sm_store_put_label(sm_store *s, const sm_label_row *r, sm_error *err) {
    sqlite3_stmt *st = s->put_label;
    bind_text(st, 1, r->model);
    bind_text(st, 2, r->template_hash);
    bind_text(st, 3, r->snippet_id);
    bind_text(st, 4, r->task);
    bind_text(st, 5, r->status);
    bind_text(st, 6, r->reason);
    bind_text(st, 7, r->fields);
    bind_text(st, 8, r->raw);
    sqlite3_bind_int64(st, 9, r->prompt_tokens);
    sqlite3_bind_int64(st, 10, r->completion_tokens);
    sqlite3_bind_double(st, 11, r->latency_ms);
    sqlite3_bind_int(st, 12, r->attempts);
    return run(s, st, err, "cannot store a label");
}

int sm_store_has_label(sm_store *s, const char *model, const char *template_hash, const char *snippet_id,
                       const char *task, int include_rejected, sm_error *err) {
    sqlite3_stmt *st = s->has_label;
    bind_text(st, 1, model);
    bind_text(st, 2, template_hash);
    bind_text(st, 3, snippet_id);
    bind_text(st, 4, task);
    int rc = sqlite3_step(st), out;
    if (rc == SQLITE_ROW) out = include_rejected || !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    else if (rc == SQLITE_DONE) out = 0;
    else out = db_error(s, err, "cannot look a label up");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

int sm_store_each_label(sm_store *s, const char *model, const char *template_hash, sm_label_fn fn, void *ctx,
                        sm_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT l.model, l.template, l.snippet_id, l.task, l.status, l.reason, l.fields, l.raw,"
                           " l.prompt_tokens, l.completion_tokens, l.latency_ms, l.attempts, l.updated_at,"
                           " s.lang, s.source, s.license, s.path, s.symbol, s.line_start, s.line_end, s.code"
                           " FROM labels l LEFT JOIN snippets s ON s.id = l.snippet_id"
                           " WHERE (?1 IS NULL OR l.model = ?1) AND (?2 IS NULL OR l.template = ?2)"
                           " ORDER BY l.snippet_id, l.updated_at, l.task", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "cannot read labels");
    bind_text(st, 1, model);
    bind_text(st, 2, template_hash);
    int rc, out = SM_OK;
#define TXT(i) ((const char *)sqlite3_column_text(st, i))
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sm_label_row r = {
            .model = TXT(0), .template_hash = TXT(1), .snippet_id = TXT(2), .task = TXT(3), .status = TXT(4),
            .reason = TXT(5), .fields = TXT(6), .raw = TXT(7), .prompt_tokens = sqlite3_column_int64(st, 8),
            .completion_tokens = sqlite3_column_int64(st, 9), .latency_ms = sqlite3_column_double(st, 10),
            .attempts = sqlite3_column_int(st, 11), .updated_at = TXT(12),
            .snippet = {.id = TXT(2), .lang = TXT(13), .source = TXT(14), .license = TXT(15), .path = TXT(16),
                        .symbol = TXT(17), .line_start = sqlite3_column_int(st, 18),
                        .line_end = sqlite3_column_int(st, 19), .code = TXT(20)},
        };
        if ((out = fn(ctx, &r)) != 0) break;
    }
#undef TXT
    if (out == SM_OK && rc != SQLITE_DONE) out = db_error(s, err, "cannot read labels");
    sqlite3_finalize(st);
    return out;
}
