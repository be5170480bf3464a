/* dataset.c: reading labels from a store or JSONL, near-duplicate groups, splits, and writing
 * the per-task training sets (see dataset.h). */
#include "dataset.h"

#include "jsonl.h"
#include "sha256.h"
#include "store.h"
#include "tasks.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *split_names[3] = {"train", "validation", "test"};

/* ---- near-duplicate groups ---- */

static int is_keyword(const char *w, size_t n) {
    static const char *kw[] = {
        "if", "else", "elif", "elsif", "for", "foreach", "while", "do", "loop", "return", "break", "continue",
        "switch", "case", "default", "match", "try", "catch", "except", "finally", "throw", "throws", "raise",
        "def", "function", "func", "fn", "sub", "class", "struct", "enum", "interface", "impl", "trait", "new",
        "delete", "import", "from", "package", "use", "require", "const", "let", "var", "local", "my", "our",
        "static", "public", "private", "protected", "final", "void", "int", "char", "long", "unsigned", "bool",
        "float", "double", "auto", "self", "this", "null", "nil", "None", "true", "false", "True", "False",
        "and", "or", "not", "in", "is", "then", "end", "fi", "done", "esac", "yield", "async", "await", "with",
        "lambda", "goto", "sizeof", "typeof", "instanceof", "go", "defer", "select", "range", "mut", "pub",
        "where", "unless", "until", "echo", "print", "template", "typename", "namespace", "virtual", "override"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strlen(kw[i]) == n && !memcmp(kw[i], w, n)) return 1;
    return 0;
}

/* Comment styles: C-like (// and block comments), hash (#), Lua (-- and --[[ ]]). */
static int hash_comments(const char *lang) {
    return !strcmp(lang, "python") || !strcmp(lang, "shell") || !strcmp(lang, "perl") || !strcmp(lang, "ruby") ||
           !strcmp(lang, "php");
}

void sm_dataset_group_key(char key[17], const char *lang, const char *code) {
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    int lua = !strcmp(lang, "lua"), hash = hash_comments(lang), clike = !lua && strcmp(lang, "python") && strcmp(lang, "shell");
    const char *p = code;
    while (*p) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) { p++; continue; }
        if ((clike && p[0] == '/' && p[1] == '/') || (hash && c == '#') || (lua && p[0] == '-' && p[1] == '-' && !(p[2] == '[' && p[3] == '['))) {
            p += strcspn(p, "\n");
            continue;
        }
        if (clike && p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        if (lua && !strncmp(p, "--[[", 4)) {
            const char *e = strstr(p + 4, "]]");
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        if (c == '"' || c == '\'' || c == '`') {
            const char *e;
            if (!strncmp(p, "\"\"\"", 3) || !strncmp(p, "'''", 3)) { /* Python triple quotes */
                char q[4] = {p[0], p[0], p[0], 0};
                e = strstr(p + 3, q);
                p = e ? e + 3 : p + strlen(p);
            } else {
                const char *s = p + 1;
                while (*s && *s != (char)c && (*s != '\n' || c == '`')) s += (*s == '\\' && s[1]) ? 2 : 1;
                p = *s == (char)c ? s + 1 : s;
            }
            sm_sha256_update(&h, "s", 1);
            continue;
        }
        if (isdigit(c)) {
            while (isalnum((unsigned char)*p) || *p == '.' || *p == '_') p++;
            sm_sha256_update(&h, "0", 1);
            continue;
        }
        if (isalpha(c) || c == '_' || c == '$' || c >= 0x80) {
            const char *s = p;
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '$' || (unsigned char)*p >= 0x80) p++;
            if (is_keyword(s, (size_t)(p - s))) { sm_sha256_update(&h, s, (size_t)(p - s)); sm_sha256_update(&h, " ", 1); }
            else sm_sha256_update(&h, "i", 1);
            continue;
        }
        sm_sha256_update(&h, p, 1);
        p++;
    }
    uint8_t d[32];
    char hex[65];
    sm_sha256_final(&h, d);
    sm_sha256_hex(hex, d);
    memcpy(key, hex, 16);
    key[16] = 0;
}

int sm_dataset_split(const char *group_key) {
    uint8_t d[32];
    char buf[64];
    int n = snprintf(buf, sizeof buf, "split:%s", group_key);
    sm_sha256(d, buf, (size_t)n);
    unsigned v = ((unsigned)d[0] << 24 | (unsigned)d[1] << 16 | (unsigned)d[2] << 8 | d[3]) % 100;
    return v < 80 ? 0 : v < 90 ? 1 : 2;
}

/* ---- examples ---- */

typedef struct {
    char *id, *lang, *code;
    json_t *fields[SM_TASK_COUNT]; /* checked values, NULL when missing */
    char group[17];
    int split;
} example;

typedef struct {
    const sm_dataset_params *p;
    example *ex;
    size_t n, cap;
    size_t *slots; /* id -> index + 1, open addressing */
    size_t n_slots;
    long long records;
    json_t *rejects;      /* reason code -> count */
    json_t *rejects_task; /* task -> count */
} builder;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The example for id, created when new (lang and code set from the arguments when not yet
 * known). NULL when out of memory. */
static example *example_for(builder *b, const char *id, const char *lang, const char *code) {
    if ((b->n + 1) * 2 > b->n_slots) {
        size_t ns = b->n_slots ? b->n_slots * 2 : 4096;
        size_t *slots = calloc(ns, sizeof *slots);
        if (!slots) return NULL;
        for (size_t i = 0; i < b->n; i++) {
            size_t k = fnv1a(b->ex[i].id) & (ns - 1);
            while (slots[k]) k = (k + 1) & (ns - 1);
            slots[k] = i + 1;
        }
        free(b->slots);
        b->slots = slots;
        b->n_slots = ns;
    }
    size_t k = fnv1a(id) & (b->n_slots - 1);
    for (; b->slots[k]; k = (k + 1) & (b->n_slots - 1)) {
        example *e = &b->ex[b->slots[k] - 1];
        if (!strcmp(e->id, id)) {
            if (!e->lang && lang) e->lang = strdup(lang);
            if (!e->code && code) e->code = strdup(code);
            return e;
        }
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        example *ex = realloc(b->ex, cap * sizeof *ex);
        if (!ex) return NULL;
        b->ex = ex;
        b->cap = cap;
    }
    example *e = &b->ex[b->n];
    memset(e, 0, sizeof *e);
    e->id = strdup(id);
    e->lang = lang ? strdup(lang) : NULL;
    e->code = code ? strdup(code) : NULL;
    if (!e->id) return NULL;
    b->slots[k] = ++b->n;
    return e;
}

static void count(json_t *o, const char *key, long long by) {
    json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + by));
}

static void reject(builder *b, const char *task, const char *reason) {
    char code[48];
    size_t n = strcspn(reason, ":");
    snprintf(code, sizeof code, "%.*s", (int)(n < 40 ? n : 40), reason);
    count(b->rejects, code, 1);
    count(b->rejects_task, task, 1);
}

/* Checks and sets the fields of a label object (those asked for and present). */
static void add_fields(builder *b, example *e, const json_t *label) {
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        if (!(b->p->tasks & (1u << t))) continue;
        json_t *v = json_object_get(label, sm_task_name(t));
        if (!v) continue;
        char reason[SM_REASON_MAX];
        if (sm_check_json_field(t, v, e->lang, reason)) { reject(b, sm_task_name(t), reason); continue; }
        json_decref(e->fields[t]);
        e->fields[t] = json_deep_copy(v);
    }
}

/* ---- readers ---- */

typedef struct { builder *b; int oom; } store_ctx;

static int from_store_row(void *ctx, const sm_label_row *r) {
    store_ctx *c = ctx;
    builder *b = c->b;
    b->records++;
    if (strcmp(r->status, "ok")) { /* rejected */
        reject(b, r->task, r->reason ? r->reason : "rejected");
        return 0;
    }
    if (!r->snippet.code || !r->snippet.lang) { reject(b, r->task, "no-code: the snippet is not in the store"); return 0; }
    example *e = example_for(b, r->snippet_id, r->snippet.lang, r->snippet.code);
    if (!e) { c->oom = 1; return SM_ENOMEM; }
    json_t *fields = r->fields ? json_loads(r->fields, 0, NULL) : NULL;
    add_fields(b, e, fields);
    json_decref(fields);
    return 0;
}

/* The text of the first message with this role. */
static const char *message(const json_t *msgs, const char *role) {
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        const char *r = json_string_value(json_object_get(m, "role"));
        if (r && !strcmp(r, role)) return json_string_value(json_object_get(m, "content"));
    }
    return NULL;
}

/* A JSON value for a task's completion text (see tasks.h). A new reference. */
static json_t *field_from_completion(sm_task t, const char *c) {
    if (t == SM_TASK_TITLE || t == SM_TASK_DESCRIPTION) {
        size_t n = strlen(c);
        while (n && isspace((unsigned char)c[n - 1])) n--;
        while (n && isspace((unsigned char)*c)) c++, n--;
        return json_stringn(c, n);
    }
    json_t *a = json_array();
    const char *sep = t == SM_TASK_TAGS ? "," : "\n";
    while (*c) {
        size_t n = strcspn(c, sep);
        const char *s = c, *e = c + n;
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e > s) json_array_append_new(a, json_stringn(s, (size_t)(e - s)));
        c += n + (c[n] != 0);
    }
    return a;
}

/* One chat record: {"messages": [...]}. */
static int from_chat(builder *b, const json_t *o, const char *path, long line, sm_error *err) {
    const json_t *msgs = json_object_get(o, "messages");
    const char *user = message(msgs, "user"), *answer = message(msgs, "assistant");
    const char *lang_at = user ? strstr(user, "Language: ") : NULL;
    const char *code_at = user ? strstr(user, "Code:\n") : NULL;
    if (!answer || !lang_at || !code_at)
        return sm_err(err, SM_EFORMAT, "%s:%ld: expected a chat record with a user message holding \"Language: X\" and \"Code:\\n\" and an assistant message", path, line);
    lang_at += 10;
    char lang[64];
    snprintf(lang, sizeof lang, "%.*s", (int)strcspn(lang_at, "\r\n"), lang_at);
    code_at += 6;
    /* the code runs to a final "### Marker:" line (student format) or to the end */
    const char *end = code_at + strlen(code_at);
    int task = -1;
    const char *m = NULL;
    for (const char *q = strstr(code_at, "\n### "); q; q = strstr(q + 1, "\n### ")) m = q;
    if (m) {
        char marker[32];
        snprintf(marker, sizeof marker, "%.*s", (int)strcspn(m + 5, ":\n"), m + 5);
        for (int t = 0; t < SM_TASK_COUNT; t++)
            if (!strcmp(marker, sm_task_marker(t))) task = t;
        if (task >= 0) end = m;
    }
    while (end > code_at && end[-1] == '\n') end--;
    char *code = strndup(code_at, (size_t)(end - code_at));
    if (!code) return sm_err(err, SM_ENOMEM, "out of memory");
    json_t *label = sm_extract_json_object(answer);
    int has_fields = 0;
    for (int t = 0; t < SM_TASK_COUNT; t++) has_fields |= json_object_get(label, sm_task_name(t)) != NULL;
    if (!has_fields) {
        json_decref(label);
        label = NULL;
        if (task < 0) {
            free(code);
            return sm_err(err, SM_EFORMAT, "%s:%ld: the assistant message is neither a JSON label nor a completion after a \"### Title:\"-style marker", path, line);
        }
        label = json_object();
        json_object_set_new(label, sm_task_name(task), field_from_completion(task, answer));
    }
    char id[128];
    const char *given = json_string_value(json_object_get(label, "id"));
    const char *sid = strstr(user, "Snippet id: ");
    if (given) snprintf(id, sizeof id, "%s", given);
    else if (sid) snprintf(id, sizeof id, "%.*s", (int)strcspn(sid + 12, "\r\n"), sid + 12);
    else sm_snippet_id(id, code, strlen(code));
    example *e = example_for(b, id, lang, code);
    free(code);
    if (!e) { json_decref(label); return sm_err(err, SM_ENOMEM, "out of memory"); }
    add_fields(b, e, label);
    json_decref(label);
    return SM_OK;
}

static int from_jsonl(builder *b, sm_error *err) {
    sm_jsonl *in;
    int rc = sm_jsonl_open(&in, b->p->input, err);
    if (rc) return rc;
    json_t *o;
    while ((rc = sm_jsonl_next(in, &o, err)) == 1) {
        b->records++;
        long line = sm_jsonl_line(in);
        if (json_object_get(o, "messages")) rc = from_chat(b, o, b->p->input, line, err);
        else {
            const char *code = json_string_value(json_object_get(o, "code"));
            const char *lang = json_string_value(json_object_get(o, "lang"));
            const char *id = json_string_value(json_object_get(o, "id"));
            char computed[17];
            if (!code || !lang) {
                rc = sm_err(err, SM_EFORMAT, "%s:%ld: expected a label record with \"code\" and \"lang\" (or a chat record with \"messages\")", b->p->input, line);
            } else {
                if (!id) { sm_snippet_id(computed, code, strlen(code)); id = computed; }
                example *e = example_for(b, id, lang, code);
                if (!e) rc = sm_err(err, SM_ENOMEM, "out of memory");
                else add_fields(b, e, o);
            }
        }
        json_decref(o);
        if (rc < 0) break;
        rc = 0;
    }
    sm_jsonl_close(in);
    return rc;
}

static int is_sqlite(const char *path) {
    FILE *f = fopen(path, "rb");
    char head[16] = {0};
    int yes = f && fread(head, 1, 16, f) == 16 && !memcmp(head, "SQLite format 3", 16);
    if (f) fclose(f);
    return yes;
}

/* ---- output ---- */

static int by_id(const void *a, const void *b) { return strcmp(((const example *)a)->id, ((const example *)b)->id); }
static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int make_dir(const char *path, sm_error *err) {
    if (mkdir(path, 0777) && errno != EEXIST) return sm_err(err, SM_EIO, "%s: cannot create: %s", path, strerror(errno));
    return SM_OK;
}

/* Opens path.tmp for writing. */
static FILE *open_tmp(const char *path, sm_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) sm_err(err, SM_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    return f;
}

/* Closes path.tmp and renames it to path. */
static int close_tmp(FILE *f, const char *path, sm_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int bad = ferror(f);
    if (fclose(f) || bad) { remove(tmp); return sm_err(err, SM_EIO, "%s: write failed", tmp); }
    if (rename(tmp, path)) return sm_err(err, SM_EIO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    return SM_OK;
}

static int write_task(builder *b, sm_task t, json_t *stats_task, sm_error *err) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s", b->p->out_dir, sm_task_name(t));
    int rc = make_dir(dir, err);
    for (int s = 0; s < 3 && rc == SM_OK; s++) {
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, split_names[s]);
        FILE *f = open_tmp(path, err);
        if (!f) return err ? err->code : SM_EIO;
        long long n = 0;
        for (size_t i = 0; i < b->n && rc == SM_OK; i++) {
            example *e = &b->ex[i];
            if (e->split != s || !e->fields[t]) continue;
            char *prompt = sm_student_prompt(e->lang, e->code, t, b->p->max_code_bytes);
            char *completion = sm_completion_from_json(t, e->fields[t]);
            json_t *line = prompt && completion ? json_pack("{s:s, s:s, s:s, s:s}", "id", e->id, "lang", e->lang, "prompt", prompt, "completion", completion) : NULL;
            char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
            if (!text) rc = sm_err(err, SM_ENOMEM, "out of memory");
            else if (fprintf(f, "%s\n", text) < 0) rc = sm_err(err, SM_EIO, "%s: write failed", path);
            n++;
            free(text);
            json_decref(line);
            free(prompt);
            free(completion);
        }
        json_object_set_new(stats_task, split_names[s], json_integer(n));
        if (rc == SM_OK) rc = close_tmp(f, path, err);
        else fclose(f);
    }
    return rc;
}

/* Writes the sorted unique strings of the training split's tags or links, one per line. */
static int write_vocab(builder *b, sm_task t, const char *name, long long *n_out, sm_error *err) {
    size_t n = 0, cap = 1024;
    char **items = malloc(cap * sizeof *items);
    if (!items) return sm_err(err, SM_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) {
        if (b->ex[i].split != 0 || !b->ex[i].fields[t]) continue;
        json_t *a = b->ex[i].fields[t];
        for (size_t k = 0; k < json_array_size(a); k++) {
            if (n == cap) {
                char **p = realloc(items, (cap *= 2) * sizeof *items);
                if (!p) { free(items); return sm_err(err, SM_ENOMEM, "out of memory"); }
                items = p;
            }
            items[n++] = (char *)json_string_value(json_array_get(a, k));
        }
    }
    qsort(items, n, sizeof *items, by_str);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", b->p->out_dir, name);
    FILE *f = open_tmp(path, err);
    if (!f) { free(items); return err ? err->code : SM_EIO; }
    *n_out = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(items[i], items[i - 1])) { fprintf(f, "%s\n", items[i]); ++*n_out; }
    free(items);
    return close_tmp(f, path, err);
}

/* The stats object: counts per split, task and language. */
static json_t *stats_new(builder *b) {
    char version[17];
    sm_student_format_version(version);
    json_t *st = json_pack("{s:s, s:s, s:I, s:I}", "format", version, "input", b->p->input, "records",
                           (json_int_t)b->records, "snippets", (json_int_t)b->n);
    return st;
}

static void free_builder(builder *b) {
    for (size_t i = 0; i < b->n; i++) {
        free(b->ex[i].id), free(b->ex[i].lang), free(b->ex[i].code);
        for (int t = 0; t < SM_TASK_COUNT; t++) json_decref(b->ex[i].fields[t]);
    }
    free(b->ex);
    free(b->slots);
    json_decref(b->rejects);
    json_decref(b->rejects_task);
}

int sm_dataset_build(const sm_dataset_params *p, json_t **stats_out, sm_error *err) {
    *stats_out = NULL;
    builder b = {.p = p, .rejects = json_object(), .rejects_task = json_object()};
    int rc;
    const char *kind;
    if (is_sqlite(p->input)) {
        kind = "store";
        sm_store *store;
        rc = sm_store_open(&store, p->input, err);
        store_ctx c = {.b = &b};
        if (rc == SM_OK) {
            rc = sm_store_each_label(store, p->model, NULL, from_store_row, &c, err);
            if (c.oom) rc = sm_err(err, SM_ENOMEM, "out of memory");
            sm_store_close(store);
        }
    } else {
        kind = "jsonl";
        rc = from_jsonl(&b, err);
    }
    if (rc == SM_OK) rc = make_dir(p->out_dir, err);
    if (rc) { free_builder(&b); return rc; }

    /* groups and splits */
    qsort(b.ex, b.n, sizeof *b.ex, by_id);
    json_t *split_counts = json_object(), *langs = json_object(), *tasks = json_object(), *missing = json_object();
    for (int s = 0; s < 3; s++) json_object_set_new(split_counts, split_names[s], json_integer(0));
    for (size_t i = 0; i < b.n; i++) {
        example *e = &b.ex[i];
        sm_dataset_group_key(e->group, e->lang, e->code);
        e->split = sm_dataset_split(e->group);
        count(split_counts, split_names[e->split], 1);
        json_t *l = json_object_get(langs, e->lang);
        if (!l) {
            l = json_pack("{s:i, s:i, s:i}", "train", 0, "validation", 0, "test", 0);
            json_object_set_new(langs, e->lang, l);
        }
        count(l, split_names[e->split], 1);
        for (int t = 0; t < SM_TASK_COUNT; t++)
            if ((p->tasks & (1u << t)) && !e->fields[t]) count(missing, sm_task_name(t), 1);
    }
    /* near-duplicate groups: how many snippets share their group with another */
    long long n_groups = 0, grouped = 0;
    {
        char **keys = malloc((b.n + 1) * sizeof *keys);
        if (!keys) rc = sm_err(err, SM_ENOMEM, "out of memory");
        for (size_t i = 0; keys && i < b.n; i++) keys[i] = b.ex[i].group;
        if (keys) qsort(keys, b.n, sizeof *keys, by_str);
        for (size_t i = 0; keys && i < b.n;) {
            size_t j = i;
            while (j < b.n && !strcmp(keys[j], keys[i])) j++;
            n_groups++;
            if (j - i > 1) grouped += (long long)(j - i);
            i = j;
        }
        free(keys);
    }
    long long n_cut = 0;
    for (size_t i = 0; i < b.n; i++) n_cut += p->max_code_bytes && strlen(b.ex[i].code) > p->max_code_bytes;
    for (int t = 0; t < SM_TASK_COUNT && rc == SM_OK; t++) {
        if (!(p->tasks & (1u << t))) continue;
        json_t *ts = json_object();
        json_object_set_new(tasks, sm_task_name(t), ts);
        rc = write_task(&b, t, ts, err);
    }
    long long n_tags = 0, n_links = 0;
    if (rc == SM_OK && (p->tasks & (1u << SM_TASK_TAGS))) rc = write_vocab(&b, SM_TASK_TAGS, "tags.txt", &n_tags, err);
    if (rc == SM_OK && (p->tasks & (1u << SM_TASK_LINKS))) rc = write_vocab(&b, SM_TASK_LINKS, "links.txt", &n_links, err);

    /* languages sorted by name */
    json_t *langs_sorted = json_object();
    {
        size_t n = json_object_size(langs), k = 0;
        const char **names = malloc((n + 1) * sizeof *names);
        const char *key;
        json_t *v;
        json_object_foreach(langs, key, v) if (names) names[k++] = key;
        if (names) qsort(names, k, sizeof *names, by_str);
        for (size_t i = 0; names && i < k; i++) json_object_set(langs_sorted, names[i], json_object_get(langs, names[i]));
        free(names);
    }
    json_t *st = stats_new(&b);
    json_object_set_new(st, "input_kind", json_string(kind));
    json_object_set_new(st, "groups", json_integer(n_groups));
    json_object_set_new(st, "snippets_in_shared_groups", json_integer(grouped));
    json_object_set_new(st, "max_code_bytes", json_integer((json_int_t)p->max_code_bytes));
    json_object_set_new(st, "code_cut", json_integer(n_cut));
    json_object_set_new(st, "splits", split_counts);
    json_object_set_new(st, "tasks", tasks);
    json_object_set_new(st, "languages", langs_sorted);
    json_object_set(st, "rejects", b.rejects);
    json_object_set(st, "rejects_by_task", b.rejects_task);
    json_object_set_new(st, "missing", missing);
    json_object_set_new(st, "tag_vocabulary", json_integer(n_tags));
    json_object_set_new(st, "links_index", json_integer(n_links));
    json_decref(langs);
    if (rc == SM_OK) {
        char path[4200];
        snprintf(path, sizeof path, "%s/stats.json", p->out_dir);
        FILE *f = open_tmp(path, err);
        char *text = json_dumps(st, JSON_INDENT(2));
        if (!f) rc = err ? err->code : SM_EIO;
        else {
            fprintf(f, "%s\n", text ? text : "{}");
            rc = close_tmp(f, path, err);
        }
        free(text);
    }
    free_builder(&b);
    if (rc) { json_decref(st); return rc; }
    *stats_out = st;
    return SM_OK;
}
