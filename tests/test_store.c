/* test_store.c: the labels store: create, write, look up, replace, walk, reopen (WAL), and refuse
 * a file that is not a store or a newer schema. */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

typedef struct { int n; char last_status[16]; char last_fields[256]; long long tokens; int attempts; char lang[16]; } walk;

static int on_row(void *ctx, const sm_label_row *r) {
    walk *w = ctx;
    w->n++;
    snprintf(w->last_status, sizeof w->last_status, "%s", r->status);
    snprintf(w->last_fields, sizeof w->last_fields, "%s", r->fields ? r->fields : "");
    snprintf(w->lang, sizeof w->lang, "%s", r->snippet.lang ? r->snippet.lang : "");
    w->tokens = r->prompt_tokens + r->completion_tokens;
    w->attempts = r->attempts;
    return 0;
}

int main(void) {
    char dir[] = "/tmp/test_store_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[256], bad[256];
    snprintf(path, sizeof path, "%s/l.db", dir);
    snprintf(bad, sizeof bad, "%s/not.db", dir);
    sm_error err = {0};
    sm_store *s;
    CHECK(sm_store_open(&s, path, &err) == SM_OK, "open: %s", err.msg);
    sm_snippet sn = {.id = "0123456789abcdef", .lang = "c", .code = "int f(void) { return 1; }", .line_start = 3, .line_end = 5};
    CHECK(sm_store_put_snippet(s, &sn, &err) == SM_OK, "put snippet: %s", err.msg);
    CHECK(sm_store_put_snippet(s, &sn, &err) == SM_OK, "put the same snippet again: %s", err.msg);
    sm_label_row ok = {.model = "m", .template_hash = "t1", .snippet_id = sn.id, .task = "all", .status = "ok",
                       .fields = "{\"title\": \"Return one\"}", .raw = "{...}", .prompt_tokens = 10, .completion_tokens = 5,
                       .latency_ms = 12.5, .attempts = 1};
    CHECK(sm_store_put_label(s, &ok, &err) == SM_OK, "put label: %s", err.msg);
    sm_label_row rej = ok;
    rej.task = "tags", rej.status = "rejected", rej.reason = "tags-case: 'X'", rej.fields = NULL;
    CHECK(sm_store_put_label(s, &rej, &err) == SM_OK, "put rejected: %s", err.msg);
    CHECK(sm_store_has_label(s, "m", "t1", sn.id, "all", 0, &err) == 1, "has ok");
    CHECK(sm_store_has_label(s, "m", "t2", sn.id, "all", 0, &err) == 0, "other template");
    CHECK(sm_store_has_label(s, "other", "t1", sn.id, "all", 1, &err) == 0, "other model");
    CHECK(sm_store_has_label(s, "m", "t1", sn.id, "tags", 0, &err) == 0, "rejected, not counted");
    CHECK(sm_store_has_label(s, "m", "t1", sn.id, "tags", 1, &err) == 1, "rejected, counted");
    sm_label_row bad_status = ok;
    bad_status.status = "maybe";
    CHECK(sm_store_put_label(s, &bad_status, &err) != SM_OK, "a bad status is refused");
    /* replace */
    ok.fields = "{\"title\": \"Return the number one\"}";
    ok.attempts = 3;
    CHECK(sm_store_put_label(s, &ok, &err) == SM_OK, "replace: %s", err.msg);
    sm_store_close(s);

    CHECK(sm_store_open(&s, path, &err) == SM_OK, "reopen: %s", err.msg);
    walk w = {0};
    CHECK(sm_store_each_label(s, "m", "t1", on_row, &w, &err) == SM_OK, "walk: %s", err.msg);
    CHECK(w.n == 2, "%d rows", w.n);
    walk w2 = {0};
    sm_store_each_label(s, NULL, NULL, on_row, &w2, &err);
    CHECK(w2.n == 2, "unfiltered: %d rows", w2.n);
    walk w3 = {0};
    sm_store_each_label(s, "nobody", NULL, on_row, &w3, &err);
    CHECK(w3.n == 0, "filtered by model: %d rows", w3.n);
    CHECK(sm_store_has_label(s, "m", "t1", sn.id, "all", 0, &err) == 1, "persisted");
    sm_store_close(s);
    /* the last row in walk order is "tags" (ordered by id, update time, task): check the ok one directly */
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT fields, attempts, (SELECT journal_mode FROM pragma_journal_mode) FROM labels WHERE task = 'all'", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW, "row");
    CHECK(!strcmp((const char *)sqlite3_column_text(st, 0), "{\"title\": \"Return the number one\"}"), "replaced fields");
    CHECK(sqlite3_column_int(st, 1) == 3, "replaced attempts");
    CHECK(!strcmp((const char *)sqlite3_column_text(st, 2), "wal"), "journal mode %s", sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL);
    sqlite3_close(db);
    err.msg[0] = 0;
    CHECK(sm_store_open(&s, path, &err) == SM_EUNSUPPORTED && strstr(err.msg, "version 7"), "newer schema: %s", err.msg);

    FILE *f = fopen(bad, "w");
    fputs("this is not a database, just some text that is long enough to look like a header\n", f);
    fclose(f);
    err.msg[0] = 0;
    CHECK(sm_store_open(&s, bad, &err) == SM_EIO && strstr(err.msg, bad), "not a store: %s", err.msg);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/l.db", dir);
    CHECK(sm_store_open(&s, missing, &err) == SM_EIO, "unwritable path");

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (failures) { fprintf(stderr, "test_store: %d failures\n", failures); return 1; }
    printf("test_store: ok\n");
    return 0;
}
