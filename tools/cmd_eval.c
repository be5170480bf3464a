/* cmd_eval.c: `snipmeta eval`: score a task's test split, either with the heuristic baseline
 * (baseline.h) or with a base model and its adapter decoded through the metadata service
 * (metadata.h: the same prompt, greedy decoding, trimming and constraints as `snipmeta all`),
 * with the metrics of metrics.h; print a table or JSON, and optionally write an HTML report
 * (report.h) with the results of other runs and training logs beside it. */
#include "cli.h"

#include "baseline.h"
#include "jsonl.h"
#include "lora.h"
#include "metadata.h"
#include "metrics.h"
#include "report.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta eval -m BASE.gguf [--lora A.gguf | --adapters DIR] --task T --data PATH [options]\n"
            "       snipmeta eval --baseline --task T --data PATH [options]\n"
            "\n"
            "Scores predictions for a task's test split against its labels: BLEU-4, ROUGE-L F1 and chrF\n"
            "for title and description; precision, recall and F1 (micro and macro) for tags; validity\n"
            "(in the links index), precision and recall for links; overall and per language. The\n"
            "definitions are in docs/EVALUATION.md.\n"
            "\n"
            "PATH is a task file (DIR/T/test.jsonl from `snipmeta dataset`) or, with --task all, the\n"
            "dataset directory DIR (DIR/T/test.jsonl for each task). The tag vocabulary and the links\n"
            "index are DIR/tags.txt and DIR/links.txt unless --tags, --links name them.\n"
            "\n"
            "Predictions come from the base model with the task's adapter, decoded greedily through the\n"
            "metadata service (as `snipmeta all` does: trimmed to the task rules, tags and links\n"
            "constrained to the vocabulary and the index); without --lora or --adapters, from the base\n"
            "alone (a zero adapter: the prompted base). --baseline uses the heuristic baseline instead.\n"
            "\n"
            "options:\n"
            "  -m, --model PATH     the base model (GGUF)\n"
            "  --lora A.gguf        the task's adapter (one task only)\n"
            "  --adapters DIR       a directory of task adapters (title.gguf, ...) as `snipmeta all` takes\n"
            "  --baseline           the heuristic baseline (no model)\n"
            "  --task T             title, description, tags, links or all\n"
            "  --data PATH          the test split (see above)\n"
            "  --tags FILE          the tag vocabulary (default: beside the data)\n"
            "  --links FILE         the links index (default: beside the data)\n"
            "  --limit N            only the first N snippets of each task\n"
            "  --label NAME         the name of this run in results and reports (default: baseline,\n"
            "                       base, or the adapter's file name)\n"
            "  --train-size N       the number of training snippets behind the adapter (data-size curves)\n"
            "  -o, --output FILE    also write the results JSON (with the predictions) to FILE\n"
            "  --json               print the results as JSON (without the predictions)\n"
            "  --report DIR         write DIR/index.html (SVG plots) and DIR/results.json\n"
            "  --with RESULT.json   add another run's results (from -o) to the report; repeatable\n"
            "  --train-log LOG      add a training run log (`snipmeta train --log`) to the report's loss\n"
            "                       curves; repeatable\n"
            "  --max-code BYTES     cut longer code (default: none beyond the data's own cut)\n"
            "  --ctx N              context positions (default %d)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -q, --quiet          no progress on stderr\n"
            "  -h, --help           this help\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n",
            SM_META_DEFAULT_CTX);
}

enum { MAX_EXTRA = 32 };

typedef struct {
    const char *model, *lora, *adapters, *task, *data, *tags, *links, *label, *output, *report;
    const char *with[MAX_EXTRA], *logs[MAX_EXTRA];
    int n_with, n_logs, baseline, json, quiet;
    long long limit, train_size, threads, n_ctx, max_code;
    unsigned tasks;
} options;

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.train_size = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return cli_usage_error("eval", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->model = v; }
        else if (!strcmp(a, "--lora")) { NEED_VALUE(); o->lora = v; }
        else if (!strcmp(a, "--adapters")) { NEED_VALUE(); o->adapters = v; }
        else if (!strcmp(a, "--baseline")) o->baseline = 1;
        else if (!strcmp(a, "--task")) { NEED_VALUE(); o->task = v; }
        else if (!strcmp(a, "--data")) { NEED_VALUE(); o->data = v; }
        else if (!strcmp(a, "--tags")) { NEED_VALUE(); o->tags = v; }
        else if (!strcmp(a, "--links")) { NEED_VALUE(); o->links = v; }
        else if (!strcmp(a, "--label")) { NEED_VALUE(); o->label = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { NEED_VALUE(); o->output = v; }
        else if (!strcmp(a, "--report")) { NEED_VALUE(); o->report = v; }
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--with") || !strcmp(a, "--train-log")) {
            NEED_VALUE();
            int logs = !strcmp(a, "--train-log");
            if ((logs ? o->n_logs : o->n_with) == MAX_EXTRA) return cli_usage_error("eval", "at most %d %s", MAX_EXTRA, a);
            if (logs) o->logs[o->n_logs++] = v;
            else o->with[o->n_with++] = v;
        } else if (!strcmp(a, "--limit") || !strcmp(a, "--train-size") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--ctx") || !strcmp(a, "--max-code")) {
            NEED_VALUE();
            long long n;
            if (cli_parse_int(v, 0, LLONG_MAX / 2, &n)) return cli_usage_error("eval", "%s wants a count, not '%s'", a, v);
            if (!strcmp(a, "--limit")) o->limit = n;
            else if (!strcmp(a, "--train-size")) o->train_size = n;
            else if (!strcmp(a, "--ctx")) o->n_ctx = n;
            else if (!strcmp(a, "--max-code")) o->max_code = n;
            else o->threads = n;
        } else return cli_usage_error("eval", "unknown argument '%s'", a);
#undef NEED_VALUE
    }
    if (!o->task || !o->data) return cli_usage_error("eval", "--task and --data are required");
    sm_error err = {0};
    if (sm_task_parse_list(o->task, &o->tasks, &err)) return cli_usage_error("eval", "%s", err.msg);
    if (o->baseline == !!o->model) return cli_usage_error("eval", "pass either -m BASE.gguf or --baseline");
    if (o->lora && o->adapters) return cli_usage_error("eval", "--lora and --adapters exclude each other");
    if ((o->lora || o->adapters) && !o->model) return cli_usage_error("eval", "--lora and --adapters need -m BASE.gguf");
    if (o->lora && (o->tasks & (o->tasks - 1))) return cli_usage_error("eval", "--lora holds one task's adapter: name one --task");
    return 0;
}

/* ---- files ---- */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A file of one item per line (blank lines skipped) as a new array; NULL and *n = -1 when it
 * cannot be read. */
static char **read_lines(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    *n = -1;
    if (!f) return NULL;
    char **items = NULL, *line = NULL;
    size_t cap_line = 0;
    int count = 0, cap = 0;
    for (ssize_t len; (len = getline(&line, &cap_line, f)) >= 0;) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = 0;
        if (!len) continue;
        if (count == cap) {
            char **grown = realloc(items, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *grown);
            if (!grown) break;
            items = grown;
        }
        if (!(items[count] = strdup(line))) break;
        count++;
    }
    free(line);
    fclose(f);
    *n = count;
    return items;
}

static void free_lines(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

/* The file beside the data: DIR/name, where DIR holds the task directories. */
static char *beside_data(const options *o, const char *name) {
    if (is_dir(o->data)) return join(o->data, name);
    char *d1 = dir_of(o->data), *d2 = d1 ? dir_of(d1) : NULL;
    char *p = d2 ? join(d2, name) : NULL;
    if (p && access(p, R_OK)) { free(p); p = d1 ? join(d1, name) : NULL; }
    free(d1);
    free(d2);
    return p;
}

/* ---- predictors ---- */

typedef struct {
    sm_model *model;
    sm_registry *registry;
    sm_meta_worker *worker;
    sm_baseline *baseline;
    char tmp_dir[64];          /* a registry directory made for --lora or the base alone */
    char tmp_files[8][96];
    int n_tmp;
} predictor;

static int link_into(predictor *p, const char *target, const char *name) {
    char abs_path[PATH_MAX];
    if (!realpath(target, abs_path)) return -1;
    char *link = join(p->tmp_dir, name);
    int rc = link && !symlink(abs_path, link) ? 0 : -1;
    if (!rc) snprintf(p->tmp_files[p->n_tmp++], sizeof p->tmp_files[0], "%s", name);
    free(link);
    return rc;
}

/* The registry directory for --lora (the adapter under the task's name) or for the base alone
 * (a zero adapter: B = 0, so every projection is the base's), with the vocabulary and the index. */
static int make_registry_dir(predictor *p, const options *o, const char *tags, const char *links, sm_error *err) {
    snprintf(p->tmp_dir, sizeof p->tmp_dir, "/tmp/snipmeta-eval-XXXXXX");
    if (!mkdtemp(p->tmp_dir)) { p->tmp_dir[0] = 0; return sm_err(err, SM_EIO, "cannot make a temporary directory: %s", strerror(errno)); }
    if (tags && !access(tags, R_OK) && link_into(p, tags, "tags.txt")) return sm_err(err, SM_EIO, "cannot link %s", tags);
    if (links && !access(links, R_OK) && link_into(p, links, "links.txt")) return sm_err(err, SM_EIO, "cannot link %s", links);
    char name[80];
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        if (!(o->tasks & (1u << t))) continue;
        snprintf(name, sizeof name, "%s.gguf", sm_task_name((sm_task)t));
        if (o->lora) {
            if (access(o->lora, R_OK)) return sm_err(err, SM_EIO, "%s: %s", o->lora, strerror(errno));
            if (link_into(p, o->lora, name)) return sm_err(err, SM_EIO, "cannot link %s", o->lora);
            continue;
        }
        sm_lora *zero = sm_lora_new(&p->model->config, 1, 1.0f, 0, 1u << SM_PROJ_Q, err);
        if (!zero) return err->code;
        snprintf(zero->task, sizeof zero->task, "%s", sm_task_name((sm_task)t));
        char *path = join(p->tmp_dir, name);
        int rc = path ? sm_lora_save_gguf(zero, path, err) : sm_err(err, SM_ENOMEM, "out of memory");
        sm_lora_free(zero);
        free(path);
        if (rc) return rc;
        snprintf(p->tmp_files[p->n_tmp++], sizeof p->tmp_files[0], "%s", name);
    }
    return SM_OK;
}

static void predictor_free(predictor *p) {
    sm_meta_worker_free(p->worker);
    sm_registry_free(p->registry);
    sm_model_free(p->model);
    sm_baseline_free(p->baseline);
    for (int i = 0; i < p->n_tmp; i++) {
        char *f = join(p->tmp_dir, p->tmp_files[i]);
        if (f) unlink(f);
        free(f);
    }
    if (p->tmp_dir[0]) rmdir(p->tmp_dir);
}

/* The completion of task t for a snippet, as a new string (NULL with *err set). */
static char *predict(predictor *p, const options *o, sm_task t, const char *lang, const char *code, sm_error *err) {
    if (p->baseline) {
        char *c = sm_baseline_complete(p->baseline, t, lang, code);
        if (!c) sm_err(err, SM_ENOMEM, "out of memory");
        return c;
    }
    sm_meta_params mp = sm_meta_default_params();
    mp.tasks = 1u << t;
    mp.max_code_bytes = o->max_code > 0 ? (size_t)o->max_code : (size_t)1 << 24;
    sm_meta_result r = {0};
    if (sm_meta_run(p->worker, p->registry, lang, code, &mp, &r, err)) return NULL;
    char *out = NULL;
    if (t == SM_TASK_TITLE) out = strdup(r.title ? r.title : "");
    else if (t == SM_TASK_DESCRIPTION) out = strdup(r.description ? r.description : "");
    else {
        char **items = t == SM_TASK_TAGS ? r.tags : r.links;
        int n = t == SM_TASK_TAGS ? r.n_tags : r.n_links;
        const char *sep = t == SM_TASK_TAGS ? ", " : "\n";
        size_t len = 1;
        for (int i = 0; i < n; i++) len += strlen(items[i]) + 2;
        if ((out = malloc(len))) {
            out[0] = 0;
            for (int i = 0; i < n; i++) strcat(strcat(out, i ? sep : ""), items[i]);
        }
    }
    if (!out) sm_err(err, SM_ENOMEM, "out of memory");
    sm_meta_result_free(&r);
    return out;
}

/* ---- one task ---- */

static int eval_task(predictor *p, const options *o, sm_task t, char **links, int n_links, json_t *tasks_out,
                     json_t *examples_out, sm_error *err) {
    char *path = NULL;
    if (is_dir(o->data)) {
        char name[64];
        snprintf(name, sizeof name, "%s/test.jsonl", sm_task_name(t));
        path = join(o->data, name);
    } else {
        path = strdup(o->data);
    }
    if (!path) return sm_err(err, SM_ENOMEM, "out of memory");
    sm_jsonl *r = NULL;
    sm_eval *e = sm_eval_new(t, (const char *const *)links, n_links);
    json_t *examples = json_array();
    int rc = !e || !examples ? sm_err(err, SM_ENOMEM, "out of memory") : sm_jsonl_open(&r, path, err);
    long count = 0;
    time_t start = time(NULL);
    json_t *obj = NULL;
    while (!rc && (!o->limit || count < o->limit)) {
        int got = sm_jsonl_next(r, &obj, err);
        if (got <= 0) { rc = got; break; }
        const char *prompt = json_string_value(json_object_get(obj, "prompt"));
        const char *gold = json_string_value(json_object_get(obj, "completion"));
        char *lang = NULL, *code = NULL;
        if (!prompt || !gold || sm_baseline_parse_prompt(prompt, &lang, &code)) {
            rc = sm_err(err, SM_EFORMAT, "%s:%ld: expected {\"prompt\": \"Language: L\\nCode:\\n...\\n### Marker:\\n\", \"completion\": ...}",
                        path, sm_jsonl_line(r));
        } else {
            char *pred = predict(p, o, t, lang, code, err);
            if (!pred) rc = err->code ? err->code : SM_ENOMEM;
            else if (sm_eval_add(e, lang, pred, gold)) rc = sm_err(err, SM_ENOMEM, "out of memory");
            else {
                json_array_append_new(examples, json_pack("{s:O?, s:s, s:s, s:s}", "id", json_object_get(obj, "id"), "lang", lang,
                                                          "pred", pred, "gold", gold));
                count++;
                if (!o->quiet && !p->baseline)
                    fprintf(stderr, "\reval %s: %ld snippets, %lds", sm_task_name(t), count, (long)(time(NULL) - start));
            }
            free(pred);
        }
        free(lang);
        free(code);
        json_decref(obj);
        obj = NULL;
    }
    if (!o->quiet && !p->baseline && count) fprintf(stderr, "\n");
    if (!rc && count == 0) rc = sm_err(err, SM_EFORMAT, "%s: no snippets", path);
    if (!rc) {
        json_t *j = sm_eval_json(e);
        if (!j) rc = sm_err(err, SM_ENOMEM, "out of memory");
        else {
            json_object_set_new(tasks_out, sm_task_name(t), j);
            json_object_set(examples_out, sm_task_name(t), examples);
        }
    }
    json_decref(examples);
    sm_jsonl_close(r);
    sm_eval_free(e);
    free(path);
    return rc;
}

/* ---- printing ---- */

static void print_table(const json_t *res) {
    const char *task;
    json_t *m;
    printf("%s", json_string_value(json_object_get(res, "label")));
    if (json_integer_value(json_object_get(res, "train_size")) > 0) printf(" (%lld training snippets)", json_integer_value(json_object_get(res, "train_size")));
    printf("\n");
    json_object_foreach(json_object_get(res, "tasks"), task, m) {
        printf("  %-12s n=%-4lld", task, (long long)json_integer_value(json_object_get(m, "n")));
        const char *key;
        json_t *v;
        json_object_foreach(m, key, v) if (json_is_real(v)) printf(" %s %.4f", key, json_real_value(v));
        printf("\n");
    }
}

int cmd_eval(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!is_dir(o.data) && (o.tasks & (o.tasks - 1)))
        return cli_usage_error("eval", "several tasks need the dataset directory as --data, not the file '%s'", o.data);
    cli_set_threads((int)o.threads);
    sm_error err = {0};
    char *tags_path = o.tags ? strdup(o.tags) : beside_data(&o, "tags.txt");
    char *links_path = o.links ? strdup(o.links) : beside_data(&o, "links.txt");
    int n_tags = 0, n_links = 0;
    char **tags = tags_path ? read_lines(tags_path, &n_tags) : NULL;
    char **links = links_path ? read_lines(links_path, &n_links) : NULL;
    if ((o.tags && n_tags < 0) || (o.links && n_links < 0)) {
        fprintf(stderr, "snipmeta eval: cannot read %s\n", n_tags < 0 && o.tags ? o.tags : o.links);
        rc = EXIT_USAGE;
        goto done;
    }
    if (n_links < 0 && (o.tasks & (1u << SM_TASK_LINKS)))
        fprintf(stderr, "snipmeta eval: no links index at %s: every predicted link counts as invalid\n", links_path ? links_path : "?");
    if (n_tags < 0) n_tags = 0;
    if (n_links < 0) n_links = 0;

    predictor p = {0};
    if (o.baseline) {
        if (!(p.baseline = sm_baseline_new((const char *const *)tags, n_tags, (const char *const *)links, n_links))) {
            fprintf(stderr, "snipmeta eval: out of memory\n");
            rc = EXIT_FAIL;
            goto done;
        }
    } else {
        int ok = (p.model = sm_model_load(o.model, &err)) != NULL;
        if (ok && !o.adapters) ok = !make_registry_dir(&p, &o, tags_path, links_path, &err);
        if (ok) ok = (p.registry = sm_registry_open(p.model, o.adapters ? o.adapters : p.tmp_dir, &err)) != NULL;
        if (ok) ok = (p.worker = sm_meta_worker_new(p.model, (int)o.n_ctx, &err)) != NULL;
        if (!ok) { rc = cli_report(&err); predictor_free(&p); goto done; }
    }

    char label[256];
    if (o.label) snprintf(label, sizeof label, "%s", o.label);
    else if (o.baseline) snprintf(label, sizeof label, "baseline");
    else if (o.lora) {
        const char *base = strrchr(o.lora, '/');
        snprintf(label, sizeof label, "%s", base ? base + 1 : o.lora);
    } else snprintf(label, sizeof label, "%s", o.adapters ? "adapters" : "base");
    json_t *res = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:I}", "label", label, "system",
                            o.baseline ? "baseline" : o.lora || o.adapters ? "adapter" : "base", "model", o.model, "lora", o.lora,
                            "adapters", o.adapters, "data", o.data, "train_size", (json_int_t)o.train_size);
    json_t *tasks_out = json_object(), *examples = json_object();
    for (int t = 0; t < SM_TASK_COUNT && !rc; t++)
        if ((o.tasks & (1u << t)) && eval_task(&p, &o, (sm_task)t, links, n_links, tasks_out, examples, &err)) rc = cli_report(&err);
    predictor_free(&p);
    json_object_set_new(res, "tasks", tasks_out);
    if (!rc) {
        if (o.json) {
            char *s = json_dumps(res, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
            if (s) printf("%s\n", s);
            free(s);
        } else {
            print_table(res);
        }
        json_object_set(res, "examples", examples);
        if (o.output && json_dump_file(res, o.output, JSON_INDENT(1) | JSON_REAL_PRECISION(8))) {
            fprintf(stderr, "snipmeta eval: cannot write %s\n", o.output);
            rc = EXIT_FAIL;
        }
    }
    if (!rc && o.report) {
        json_t *runs[MAX_EXTRA + 1] = {res};
        int n_runs = 1;
        for (int i = 0; i < o.n_with && !rc; i++) {
            json_error_t jerr;
            if (!(runs[n_runs] = json_load_file(o.with[i], 0, &jerr)) || !json_is_object(json_object_get(runs[n_runs], "tasks"))) {
                fprintf(stderr, "snipmeta eval: %s:%d: %s\n", o.with[i], jerr.line, runs[n_runs] ? "expected eval results (-o)" : jerr.text);
                json_decref(runs[n_runs]);
                rc = EXIT_USAGE;
            } else {
                n_runs++;
            }
        }
        if (!rc && sm_report_write(o.report, runs, n_runs, o.logs, o.n_logs, &err)) rc = cli_report(&err);
        else if (!rc && !o.quiet) fprintf(stderr, "snipmeta eval: wrote %s/index.html\n", o.report);
        for (int i = 1; i < n_runs; i++) json_decref(runs[i]);
    }
    json_decref(examples);
    json_decref(res);
done:
    if (tags) free_lines(tags, n_tags);
    if (links) free_lines(links, n_links);
    free(tags_path);
    free(links_path);
    return rc;
}
