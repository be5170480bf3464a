/* label.c: the labelling job (see label.h): templates, jobs, answers, checks, the store. */
#include "label.h"

#include "jsonl.h"
#include "sha256.h"
#include "tasks.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A teacher prompt template: system text, then "=== user ===", then the user text. */
typedef struct {
    char *text;          /* the file's bytes */
    const char *user;    /* inside text, after the separator line */
    size_t system_len;
    char version[17];
} template;

static const char user_sep[] = "\n=== user ===\n";

static int template_load(template *tp, const char *prompts_dir, const char *name, sm_error *err) {
    memset(tp, 0, sizeof *tp);
    size_t size = 0;
    if (prompts_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", prompts_dir, name);
        FILE *f = fopen(path, "rb");
        if (!f) return sm_err(err, SM_EIO, "%s: cannot open the prompt template: %s", path, strerror(errno));
        size_t cap = 1 << 14;
        tp->text = malloc(cap);
        size_t n;
        while (tp->text && (n = fread(tp->text + size, 1, cap - size - 1, f)) > 0) {
            size += n;
            if (size + 1 == cap) {
                char *p = cap < (64u << 20) ? realloc(tp->text, cap *= 2) : NULL;
                if (!p) { free(tp->text); tp->text = NULL; }
                else tp->text = p;
            }
        }
        int bad = ferror(f);
        fclose(f);
        if (!tp->text || bad) { free(tp->text); tp->text = NULL; return sm_err(err, SM_EIO, "%s: cannot read the prompt template", path); }
        tp->text[size] = 0;
    } else {
        const char *t = sm_prompt_text(name, &size);
        if (!t) return sm_err(err, SM_EINVAL, "no built-in prompt template %s", name);
        if (!(tp->text = malloc(size + 1))) return sm_err(err, SM_ENOMEM, "out of memory");
        memcpy(tp->text, t, size + 1);
    }
    const char *sep = strstr(tp->text, user_sep);
    if (!sep || !strstr(sep, "{code}")) {
        free(tp->text);
        tp->text = NULL;
        return sm_err(err, SM_EFORMAT, "prompt template %s: expected a line '=== user ===' followed by a user message with {code}", name);
    }
    tp->system_len = (size_t)(sep - tp->text);
    tp->user = sep + sizeof user_sep - 1;
    uint8_t d[32];
    char hex[65];
    sm_sha256(d, tp->text, size);
    sm_sha256_hex(hex, d);
    memcpy(tp->version, hex, 16);
    tp->version[16] = 0;
    return SM_OK;
}

static const char *template_name(int per_task, int task) {
    static const char *names[SM_TASK_COUNT] = {"teacher_title.txt", "teacher_description.txt", "teacher_tags.txt", "teacher_links.txt"};
    return per_task ? names[task] : "teacher_joint.txt";
}

int sm_label_template_version(const char *prompts_dir, int per_task, int task, char version[17], sm_error *err) {
    template tp;
    int rc = template_load(&tp, prompts_dir, template_name(per_task, task), err);
    if (rc) return rc;
    memcpy(version, tp.version, 17);
    free(tp.text);
    return SM_OK;
}

/* Fills a template's placeholders {id}, {lang}, {code} in text[0..len). A new string or NULL. */
static char *render(const char *text, size_t len, const char *id, const char *lang, const char *code) {
    size_t cap = len + strlen(id) * 4 + strlen(lang) * 4 + strlen(code) * 2 + 1, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        const char *v = NULL;
        size_t skip = 0;
        if (!strncmp(text + i, "{id}", 4)) v = id, skip = 4;
        else if (!strncmp(text + i, "{lang}", 6)) v = lang, skip = 6;
        else if (!strncmp(text + i, "{code}", 6)) v = code, skip = 6;
        size_t vl = v ? strlen(v) : 1;
        if (n + vl + 1 > cap) {
            char *p = realloc(out, cap = (n + vl + 1) * 2);
            if (!p) { free(out); return NULL; }
            out = p;
        }
        if (v) { memcpy(out + n, v, vl); n += vl; i += skip - 1; }
        else out[n++] = text[i];
    }
    out[n] = 0;
    return out;
}

typedef struct {
    char *id, *lang, *code;
} snippet;

typedef struct {
    int snippet, task;          /* task -1: joint */
    int answers;                /* answers received (each may have taken several attempts) */
    int attempts;
    long long prompt_tokens, completion_tokens;
} job;

/* A set of snippet ids (open addressing, FNV-1a), so that a snippet given twice is asked once. */
typedef struct {
    char **slots;
    size_t cap, n;
} id_set;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Adds id (not copied); returns 1 when added, 0 when present, -1 when out of memory. */
static int id_set_add(id_set *set, char *id) {
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slots = calloc(cap, sizeof *slots);
        if (!slots) return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slots[i]) {
                size_t k = fnv1a(set->slots[i]) & (cap - 1);
                while (slots[k]) k = (k + 1) & (cap - 1);
                slots[k] = set->slots[i];
            }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t k = fnv1a(id) & (set->cap - 1);
    for (; set->slots[k]; k = (k + 1) & (set->cap - 1))
        if (!strcmp(set->slots[k], id)) return 0;
    set->slots[k] = id;
    set->n++;
    return 1;
}

typedef struct {
    const sm_label_params *p;
    sm_store *store;
    sm_teacher *teacher;
    snippet *snippets;
    long long n_snippets;
    job *jobs;
    long long n_jobs;
    template templates[SM_TASK_COUNT]; /* joint mode uses [0] */
    char joint_key[64];
    sm_label_stats *st;
} run;

static void tally(sm_reason_count *arr, int *n, const char *reason) {
    size_t len = strcspn(reason, ":");
    if (len >= sizeof arr[0].code) len = sizeof arr[0].code - 1;
    for (int i = 0; i < *n; i++)
        if (strlen(arr[i].code) == len && !strncmp(arr[i].code, reason, len)) { arr[i].n++; return; }
    if (*n == SM_LABEL_MAX_REASONS) return;
    memcpy(arr[*n].code, reason, len);
    arr[*n].code[len] = 0;
    arr[(*n)++].n = 1;
}

/* Reads every snippet into r->snippets and the store. */
static int read_snippets(run *r, sm_error *err) {
    sm_jsonl *in;
    int rc = sm_jsonl_open(&in, r->p->snippets_path, err);
    if (rc) return rc;
    long long cap = 0;
    json_t *o;
    id_set seen = {0};
    if ((rc = sm_store_begin(r->store, err))) { sm_jsonl_close(in); return rc; }
    while ((rc = sm_jsonl_next(in, &o, err)) == 1) {
        const char *code = json_string_value(json_object_get(o, "code"));
        const char *lang = json_string_value(json_object_get(o, "lang"));
        json_t *idv = json_object_get(o, "id");
        if (!code || !lang || (idv && !json_is_string(idv))) {
            rc = sm_err(err, SM_EFORMAT, "%s:%ld: expected a snippet object with string fields \"code\" and \"lang\" (and \"id\" when present)",
                        r->p->snippets_path, sm_jsonl_line(in));
            json_decref(o);
            break;
        }
        if (r->n_snippets == cap) {
            cap = cap ? cap * 2 : 256;
            snippet *s = realloc(r->snippets, (size_t)cap * sizeof *s);
            if (!s) { json_decref(o); rc = sm_err(err, SM_ENOMEM, "out of memory"); break; }
            r->snippets = s;
        }
        snippet *s = &r->snippets[r->n_snippets];
        char id[17];
        if (idv) s->id = strdup(json_string_value(idv));
        else { sm_snippet_id(id, code, strlen(code)); s->id = strdup(id); }
        s->lang = strdup(lang);
        s->code = strdup(code);
        if (!s->id || !s->lang || !s->code) {
            free(s->id), free(s->lang), free(s->code);
            json_decref(o);
            rc = sm_err(err, SM_ENOMEM, "out of memory");
            break;
        }
        if (!sm_shard_contains(&r->p->shard, s->id)) { /* another machine's */
            free(s->id), free(s->lang), free(s->code);
            json_decref(o);
            r->st->other_shards++;
            continue;
        }
        int added = id_set_add(&seen, s->id);
        if (added <= 0) { /* given before: asked once */
            free(s->id), free(s->lang), free(s->code);
            json_decref(o);
            if (added < 0) { rc = sm_err(err, SM_ENOMEM, "out of memory"); break; }
            r->st->duplicates++;
            continue;
        }
        r->n_snippets++;
        json_t *lines = json_object_get(o, "lines");
        sm_snippet sn = {.id = s->id, .lang = lang, .code = code,
                         .source = json_string_value(json_object_get(o, "source")),
                         .license = json_string_value(json_object_get(o, "license")),
                         .path = json_string_value(json_object_get(o, "path")),
                         .symbol = json_string_value(json_object_get(o, "symbol")),
                         .line_start = (int)json_integer_value(json_array_get(lines, 0)),
                         .line_end = (int)json_integer_value(json_array_get(lines, 1))};
        int src = sm_store_put_snippet(r->store, &sn, err);
        json_decref(o);
        if (src) { rc = src; break; }
    }
    sm_jsonl_close(in);
    free(seen.slots);
    int crc = sm_store_commit(r->store, rc < 0 ? NULL : err);
    if (rc < 0) return rc;
    return crc;
}

/* The store's task key: the task's name in per-task mode; in joint mode "all", or the tasks
 * asked for ("title,tags") when not all, so that asking later for more fields asks again. */
static const char *job_task_key(const run *r, const job *j) {
    return j->task < 0 ? r->joint_key : sm_task_name(j->task);
}

static const template *job_template(const run *r, const job *j) {
    return &r->templates[j->task < 0 ? 0 : j->task];
}

static int submit(run *r, long long ji, sm_error *err) {
    job *j = &r->jobs[ji];
    const snippet *s = &r->snippets[j->snippet];
    const template *tp = job_template(r, j);
    char *system = render(tp->text, tp->system_len, s->id, s->lang, s->code);
    char *user = render(tp->user, strlen(tp->user), s->id, s->lang, s->code);
    int rc = system && user ? sm_teacher_submit(r->teacher, system, user, (void *)(intptr_t)ji, err)
                            : sm_err(err, SM_ENOMEM, "out of memory");
    free(system);
    free(user);
    return rc;
}

/* Trims the whitespace around a string field in place (a new JSON string). */
static void trim_field(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    if (!s) return;
    const char *b = s, *e = s + strlen(s);
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    if (b != s || *e) json_object_set_new(o, key, json_stringn(b, (size_t)(e - b)));
}

/* Reads and checks an answer. Returns the fields of the tasks asked for (a new object) or NULL
 * with the reason. */
static json_t *check_answer(const run *r, const job *j, const char *content, char *reason) {
    json_t *o = sm_extract_json_object(content);
    if (!o) { snprintf(reason, SM_REASON_MAX, "no-json: the answer holds no JSON object"); return NULL; }
    const snippet *s = &r->snippets[j->snippet];
    const char *id = json_string_value(json_object_get(o, "id"));
    if (id && strcmp(id, s->id)) {
        snprintf(reason, SM_REASON_MAX, "id-mismatch: the answer is for '%.40s'", id);
        json_decref(o);
        return NULL;
    }
    json_t *fields = json_object();
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        if (j->task >= 0 ? t != j->task : !(r->p->tasks & (1u << t))) continue;
        const char *name = sm_task_name(t);
        trim_field(o, name);
        json_t *v = json_object_get(o, name);
        if (json_is_array(v))
            for (size_t i = 0; i < json_array_size(v); i++) {
                const char *x = json_string_value(json_array_get(v, i));
                const char *b = x, *e = x ? x + strlen(x) : NULL;
                while (x && b < e && isspace((unsigned char)*b)) b++;
                while (x && e > b && isspace((unsigned char)e[-1])) e--;
                if (x && (b != x || *e)) json_array_set_new(v, i, json_stringn(b, (size_t)(e - b)));
            }
        if (sm_check_json_field(t, v, s->lang, reason)) {
            json_decref(fields);
            json_decref(o);
            return NULL;
        }
        json_object_set(fields, name, v);
    }
    json_decref(o);
    return fields;
}

static int store_job(run *r, const job *j, const char *status, const char *reason, json_t *fields, const char *raw,
                     double latency_ms, sm_error *err) {
    char *f = fields ? json_dumps(fields, JSON_COMPACT) : NULL;
    sm_label_row row = {.model = r->p->teacher.model, .template_hash = job_template(r, j)->version,
                        .snippet_id = r->snippets[j->snippet].id, .task = job_task_key(r, j), .status = status,
                        .reason = reason, .fields = f, .raw = raw, .prompt_tokens = j->prompt_tokens,
                        .completion_tokens = j->completion_tokens, .latency_ms = latency_ms, .attempts = j->attempts};
    int rc = sm_store_put_label(r->store, &row, err);
    free(f);
    sm_label_stats *st = r->st;
    st->done++;
    if (!strcmp(status, "ok")) st->ok++;
    else { st->rejected++; tally(st->rejects, &st->n_rejects, reason); }
    return rc;
}

static int budget_reached(const run *r) {
    return r->p->budget_tokens > 0 && r->st->prompt_tokens + r->st->completion_tokens >= r->p->budget_tokens;
}

static int stopping(const run *r) { return (r->p->stop && *r->p->stop) || budget_reached(r); }

/* Handles one finished request: store it, or ask again. *resubmitted tells which. */
static int finish(run *r, sm_teacher_result *res, int *resubmitted, sm_error *err) {
    long long ji = (long long)(intptr_t)res->tag;
    job *j = &r->jobs[ji];
    *resubmitted = 0;
    j->attempts += res->attempts;
    j->prompt_tokens += res->prompt_tokens;
    j->completion_tokens += res->completion_tokens;
    r->st->prompt_tokens += res->prompt_tokens;
    r->st->completion_tokens += res->completion_tokens;
    if (!res->ok) return store_job(r, j, "rejected", res->reason, NULL, res->body, res->latency_ms, err);
    j->answers++;
    char reason[SM_REASON_MAX];
    json_t *fields = check_answer(r, j, res->content, reason);
    if (fields) {
        int rc = store_job(r, j, "ok", NULL, fields, res->content, res->latency_ms, err);
        json_decref(fields);
        return rc;
    }
    tally(r->st->failures, &r->st->n_failures, reason);
    if (j->answers <= r->p->retries) {
        if (stopping(r)) return SM_OK; /* left for the next run */
        r->st->retries++;
        *resubmitted = 1;
        return submit(r, ji, err);
    }
    return store_job(r, j, "rejected", reason, NULL, res->content, res->latency_ms, err);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Works out which jobs are missing from the store. */
static int plan(run *r, sm_error *err) {
    int n_tasks = 0;
    for (int t = 0; t < SM_TASK_COUNT; t++) n_tasks += !!(r->p->tasks & (1u << t));
    long long per = r->p->per_task ? n_tasks : 1;
    r->jobs = calloc((size_t)(r->n_snippets * per + 1), sizeof *r->jobs);
    if (!r->jobs) return sm_err(err, SM_ENOMEM, "out of memory");
    for (long long i = 0; i < r->n_snippets; i++) {
        for (int t = 0; t < SM_TASK_COUNT; t++) {
            if (r->p->per_task && !(r->p->tasks & (1u << t))) continue;
            job j = {.snippet = (int)i, .task = r->p->per_task ? t : -1};
            r->st->jobs++;
            int has = sm_store_has_label(r->store, r->p->teacher.model, job_template(r, &j)->version, r->snippets[i].id,
                                         job_task_key(r, &j), !r->p->retry_rejected, err);
            if (has < 0) return has;
            if (has) r->st->skipped++;
            else r->jobs[r->n_jobs++] = j;
            if (!r->p->per_task) break;
        }
    }
    return SM_OK;
}

int sm_label_run(sm_store *store, const sm_label_params *p, sm_label_stats *stats, sm_error *err) {
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    run r = {.p = p, .store = store, .st = stats};
    int rc = SM_OK;
    for (int t = 0; t < SM_TASK_COUNT && rc == SM_OK; t++) {
        if (p->per_task ? !(p->tasks & (1u << t)) : t > 0) continue;
        rc = template_load(&r.templates[t], p->prompts_dir, template_name(p->per_task, t), err);
    }
    if (p->tasks == SM_TASK_ALL) strcpy(r.joint_key, "all");
    for (int t = 0; t < SM_TASK_COUNT && p->tasks != SM_TASK_ALL; t++)
        if (p->tasks & (1u << t)) {
            if (r.joint_key[0]) strcat(r.joint_key, ",");
            strcat(r.joint_key, sm_task_name(t));
        }
    if (rc == SM_OK) rc = read_snippets(&r, err);
    if (rc == SM_OK) stats->snippets = r.n_snippets;
    if (rc == SM_OK) rc = plan(&r, err);
    if (rc == SM_OK && r.n_jobs > 0) rc = sm_teacher_new(&r.teacher, &p->teacher, err);
    long long next = 0;
    int in_flight = 0;
    while (rc == SM_OK && r.n_jobs > 0) {
        while (rc == SM_OK && next < r.n_jobs && in_flight < 2 * p->teacher.concurrency && !stopping(&r)) {
            rc = submit(&r, next++, err);
            in_flight++;
        }
        if (rc == SM_OK && stopping(&r)) in_flight -= sm_teacher_cancel_queued(r.teacher); /* left for the next run */
        if (rc != SM_OK || in_flight == 0) break;
        sm_teacher_result res;
        int got = sm_teacher_next(r.teacher, &res, 200, err);
        if (got < 0) { rc = got; break; }
        if (got == 0) continue;
        int again = 0;
        rc = finish(&r, &res, &again, err);
        sm_teacher_result_clear(&res);
        if (!again) in_flight--;
        stats->elapsed_s = now_s() - t0;
        if (p->progress) p->progress(p->progress_ctx, stats);
    }
    if (r.teacher) {
        sm_teacher_counts(r.teacher, &stats->requests, NULL);
        long long retries;
        sm_teacher_counts(r.teacher, NULL, &retries);
        stats->retries += retries;
        const char *code;
        long long n;
        for (int i = 0; sm_teacher_failure(r.teacher, i, &code, &n); i++)
            for (long long k = 0; k < n; k++) tally(stats->failures, &stats->n_failures, code);
    }
    stats->budget_reached = budget_reached(&r);
    stats->interrupted = p->stop && *p->stop;
    stats->elapsed_s = now_s() - t0;
    sm_teacher_free(r.teacher);
    for (long long i = 0; i < r.n_snippets; i++) free(r.snippets[i].id), free(r.snippets[i].lang), free(r.snippets[i].code);
    free(r.snippets);
    free(r.jobs);
    for (int t = 0; t < SM_TASK_COUNT; t++) free(r.templates[t].text);
    return rc;
}

/* Export: rows come ordered by snippet id; the ok fields of one snippet merge into one line. */
typedef struct {
    const char *model;
    char versions[SM_TASK_COUNT][17];
    int n_versions;
    FILE *f;
    json_t *cur;      /* the line being built: the snippet's fields */
    json_t *labels;   /* and its labels, appended in task order at the end */
    char cur_id[128];
    long long written;
    int io_error;
} exporter;

static void flush_line(exporter *x) {
    if (!x->cur) return;
    int any = 0;
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        json_t *v = json_object_get(x->labels, sm_task_name(t));
        if (v) json_object_set(x->cur, sm_task_name(t), v), any = 1;
    }
    json_object_set(x->cur, "teacher", json_object_get(x->labels, "teacher"));
    json_decref(x->labels);
    x->labels = NULL;
    if (any) {
        char *s = json_dumps(x->cur, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s || fprintf(x->f, "%s\n", s) < 0) x->io_error = 1;
        free(s);
        x->written++;
    }
    json_decref(x->cur);
    x->cur = NULL;
}

static int export_row(void *ctx, const sm_label_row *row) {
    exporter *x = ctx;
    int mine = 0;
    for (int i = 0; i < x->n_versions; i++) mine |= !strcmp(row->template_hash, x->versions[i]);
    if (!mine || strcmp(row->status, "ok") || !row->fields) return 0;
    if (!x->cur || strcmp(x->cur_id, row->snippet_id)) {
        flush_line(x);
        const sm_snippet *s = &row->snippet;
        x->cur = json_object();
        x->labels = json_object();
        json_object_set_new(x->cur, "id", json_string(row->snippet_id));
        if (s->lang) json_object_set_new(x->cur, "lang", json_string(s->lang));
        if (s->source) json_object_set_new(x->cur, "source", json_string(s->source));
        if (s->license) json_object_set_new(x->cur, "license", json_string(s->license));
        if (s->path) json_object_set_new(x->cur, "path", json_string(s->path));
        if (s->symbol) json_object_set_new(x->cur, "symbol", json_string(s->symbol));
        if (s->line_start) json_object_set_new(x->cur, "lines", json_pack("[i, i]", s->line_start, s->line_end));
        if (s->code) json_object_set_new(x->cur, "code", json_string(s->code));
        snprintf(x->cur_id, sizeof x->cur_id, "%s", row->snippet_id);
    }
    json_t *fields = json_loads(row->fields, 0, NULL);
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        json_t *v = json_object_get(fields, sm_task_name(t));
        if (v) json_object_set(x->labels, sm_task_name(t), v);
    }
    json_decref(fields);
    char teacher[256];
    snprintf(teacher, sizeof teacher, "%s/%s-%s", x->model, x->n_versions > 1 ? "per-task" : "joint", row->template_hash);
    if (!json_object_get(x->labels, "teacher")) json_object_set_new(x->labels, "teacher", json_string(teacher));
    return 0;
}

int sm_label_export(sm_store *store, const char *model, const char *prompts_dir, int per_task, const char *path,
                    long long *n_written, sm_error *err) {
    exporter x = {.model = model};
    int rc = SM_OK;
    for (int t = 0; t < (per_task ? SM_TASK_COUNT : 1) && rc == SM_OK; t++)
        rc = sm_label_template_version(prompts_dir, per_task, t, x.versions[x.n_versions++], err);
    if (rc) return rc;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    x.f = fopen(tmp, "w");
    if (!x.f) return sm_err(err, SM_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    rc = sm_store_each_label(store, model, NULL, export_row, &x, err);
    flush_line(&x);
    if (fclose(x.f) || x.io_error) rc = rc ? rc : sm_err(err, SM_EIO, "%s: write failed", tmp);
    if (rc == SM_OK && rename(tmp, path)) rc = sm_err(err, SM_EIO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) remove(tmp);
    *n_written = x.written;
    return rc;
}
