/* cmd_meta.c: `snipmeta all|title|describe|tags|links`: a snippet's metadata from a base model and
 * a directory of task adapters (metadata.h does the work; `snipmeta serve` answers the same). */
#include "cli.h"

#include "metadata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, const char *cmd) {
    fprintf(f,
            "usage: snipmeta %s [FILE|-] [-m BASE.gguf --adapters DIR] [options]\n"
            "\n"
            "Reads a code snippet from FILE (or standard input) and prints its metadata: `all` gives the\n"
            "title, description, tags and links; `title`, `describe`, `tags` and `links` one of them.\n"
            "Each task runs the base with its adapter from DIR (title.gguf, description.gguf, tags.gguf,\n"
            "links.gguf); tags come only from DIR/tags.txt (the first is the language) and links only\n"
            "from DIR/links.txt, as `snipmeta dataset` writes them. Decoding is greedy unless --temp.\n"
            "Without -m and --adapters: the bundled default (models/snipmeta-base.gguf and\n"
            "models/adapters; $SNIPMETA_MODELS names another folder holding the same).\n"
            "\n"
            "options:\n"
            "  -m, --model PATH     the base model (GGUF); the adapters must have been trained on it\n"
            "                       (default: the bundled one)\n"
            "  --adapters DIR       the adapter directory\n"
            "  --lang L             the snippet's language (python, c, cpp, go, rust, java, ...); default:\n"
            "                       from the file name, the first line, then keywords\n"
            "  --json               print one JSON object (as POST /v1/metadata answers)\n"
            "  --temp T             sample with temperature T (default 0: greedy)\n"
            "  --top-k K, --top-p P sampling filters (defaults 40, 0.95)\n"
            "  --seed S             the sampling seed (default 0)\n"
            "  --max-code BYTES     cut longer code (default %d, as the training data)\n"
            "  --ctx N              context positions (default %d)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -v, --verbose        print timings and failed checks to stderr\n"
            "  -h, --help           this help\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n",
            cmd, SM_META_MAX_CODE_BYTES, SM_META_DEFAULT_CTX);
}

typedef struct {
    const char *cmd, *input, *model, *adapters, *lang;
    int json, verbose;
    long long threads, n_ctx, max_code;
    sm_meta_params params;
} options;

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.cmd = argv[0], .params = sm_meta_default_params()};
    const char *cmd = argv[0];
    if (!strcmp(cmd, "all")) o->params.tasks = SM_TASK_ALL;
    else if (!strcmp(cmd, "title")) o->params.tasks = 1u << SM_TASK_TITLE;
    else if (!strcmp(cmd, "describe")) o->params.tasks = 1u << SM_TASK_DESCRIPTION;
    else if (!strcmp(cmd, "tags")) o->params.tasks = 1u << SM_TASK_TAGS;
    else o->params.tasks = 1u << SM_TASK_LINKS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
#define NEED_VALUE() do { if (!v) return cli_usage_error(cmd, "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout, cmd); return -1; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->model = v; }
        else if (!strcmp(a, "--adapters")) { NEED_VALUE(); o->adapters = v; }
        else if (!strcmp(a, "--lang")) { NEED_VALUE(); o->lang = v; }
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) o->verbose = 1;
        else if (!strcmp(a, "--temp")) {
            NEED_VALUE();
            if (cli_parse_float(v, &x) || x < 0) return cli_usage_error(cmd, "--temp wants a number >= 0, not '%s'", v);
            o->params.sampling.temp = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            long long k;
            if (cli_parse_int(v, 0, 1 << 30, &k)) return cli_usage_error(cmd, "--top-k wants a count >= 0, not '%s'", v);
            o->params.sampling.top_k = (int)k;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (cli_parse_float(v, &x) || !(x > 0 && x <= 1)) return cli_usage_error(cmd, "--top-p wants a number in (0, 1], not '%s'", v);
            o->params.sampling.top_p = (float)x;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return cli_usage_error(cmd, "--seed wants a non-negative integer, not '%s'", v);
            o->params.sampling.seed = s;
        } else if (!strcmp(a, "--max-code")) {
            NEED_VALUE();
            if (cli_parse_int(v, 64, 1 << 24, &o->max_code)) return cli_usage_error(cmd, "--max-code wants bytes >= 64, not '%s'", v);
            o->params.max_code_bytes = (size_t)o->max_code;
        } else if (!strcmp(a, "--ctx")) {
            NEED_VALUE();
            if (cli_parse_int(v, 64, 1 << 20, &o->n_ctx)) return cli_usage_error(cmd, "--ctx wants positions >= 64, not '%s'", v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (cli_parse_int(v, 0, 4096, &o->threads)) return cli_usage_error(cmd, "-t wants a thread count, not '%s'", v);
        } else if (a[0] == '-' && a[1]) return cli_usage_error(cmd, "unknown option '%s'", a);
        else if (o->input) return cli_usage_error(cmd, "one snippet at a time ('%s' and '%s')", o->input, a);
        else o->input = a;
#undef NEED_VALUE
    }
    if (!o->model && !o->adapters) { /* the bundled default */
        char looked[1024];
        if (cli_default_models(&o->model, &o->adapters, looked, sizeof looked))
            return cli_usage_error(cmd, "no bundled model (snipmeta-base.gguf) in %s: pass -m BASE.gguf --adapters DIR "
                                        "or set SNIPMETA_MODELS to the folder that holds it", looked);
    }
    if (!o->model || !o->adapters)
        return cli_usage_error(cmd, "pass both the base model and its adapter directory (-m BASE.gguf --adapters DIR), "
                                    "or neither for the bundled default");
    return 0;
}

/* The whole of FILE or stdin ("-" or NULL) as a string; NULL with a message printed. */
static char *read_input(const char *path, size_t *len) {
    FILE *f = !path || !strcmp(path, "-") ? stdin : fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf; n += got) {
        if (n + 1 >= cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) { free(buf); buf = NULL; break; }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
    }
    int bad = buf && ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) { fprintf(stderr, "snipmeta: %s: %s\n", path ? path : "stdin", bad ? "read error" : "out of memory"); free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void print_text(const options *o, const sm_meta_result *r) {
    int all = o->params.tasks == SM_TASK_ALL;
    if (r->tasks & (1u << SM_TASK_TITLE)) printf("%s%s\n", all ? "Title:       " : "", r->title);
    if (r->tasks & (1u << SM_TASK_DESCRIPTION)) printf("%s%s\n", all ? "Description: " : "", r->description);
    if (r->tasks & (1u << SM_TASK_TAGS)) {
        printf("%s", all ? "Tags:        " : "");
        for (int i = 0; i < r->n_tags; i++) printf("%s%s", i ? ", " : "", r->tags[i]);
        printf("\n");
    }
    if (r->tasks & (1u << SM_TASK_LINKS)) {
        if (all) printf("Links:       %s", r->n_links ? "" : "(none)\n");
        for (int i = 0; i < r->n_links; i++) printf("%s%s\n", all && i ? "             " : "", r->links[i]);
    }
}

int cmd_meta(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    cli_set_threads((int)o.threads);
    size_t len = 0;
    char *code = read_input(o.input, &len);
    if (!code) return EXIT_USAGE;
    if (sm_meta_is_binary(code, len)) {
        fprintf(stderr, "snipmeta %s: %s does not look like source code (NUL, control or non-UTF-8 bytes)\n", o.cmd,
                o.input ? o.input : "stdin");
        free(code);
        return EXIT_USAGE;
    }
    const char *lang = o.lang ? o.lang : sm_meta_guess_lang(o.input, code);
    if (!lang) {
        fprintf(stderr, "snipmeta %s: cannot tell the snippet's language: pass --lang (python, c, go, ...)\n", o.cmd);
        free(code);
        return EXIT_USAGE;
    }
    sm_error err = {0};
    sm_model *m = sm_model_load(o.model, &err);
    sm_registry *reg = m ? sm_registry_open(m, o.adapters, &err) : NULL;
    sm_meta_worker *w = reg ? sm_meta_worker_new(m, (int)o.n_ctx, &err) : NULL;
    sm_meta_result res = {0};
    if (!w || sm_meta_run(w, reg, lang, code, &o.params, &res, &err)) rc = cli_report(&err);
    else if (o.json) {
        json_t *j = sm_meta_result_json(&res, lang, 1);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (s) printf("%s\n", s);
        else rc = EXIT_FAIL, fprintf(stderr, "snipmeta: out of memory\n");
        free(s);
        json_decref(j);
    } else {
        print_text(&o, &res);
    }
    if (!rc && o.verbose) {
        fprintf(stderr, "lang %s, %d prompt tokens%s; prefill %.1f ms", lang, res.n_prompt_tokens,
                res.code_cut ? " (code cut)" : "", res.prefill_ms);
        for (int t = 0; t < SM_TASK_COUNT; t++)
            if (res.tasks & (1u << t)) fprintf(stderr, ", %s %.1f ms (%d tokens)", sm_task_name((sm_task)t), res.task_ms[t], res.n_generated[t]);
        fprintf(stderr, "; total %.1f ms\n", res.total_ms);
        for (int t = 0; t < SM_TASK_COUNT; t++)
            if ((res.tasks & (1u << t)) && res.check[t][0]) fprintf(stderr, "check failed: %s\n", res.check[t]);
    }
    sm_meta_result_free(&res);
    sm_meta_worker_free(w);
    sm_registry_free(reg);
    sm_model_free(m);
    free(code);
    return rc;
}
