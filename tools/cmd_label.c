/* cmd_label.c: `snipmeta label`: label snippets with a teacher LLM into the labels store (the
 * work is in src/label.c); this file parses flags, shows progress and prints the summary. */
#include "cli.h"

#include "label.h"
#include "tasks.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: snipmeta label SNIPPETS.jsonl --teacher URL --model NAME --store LABELS.db [options]\n"
    "\n"
    "Sends each snippet with the task prompt template (prompts/) to a teacher LLM through the\n"
    "OpenAI-compatible chat-completions API, checks each answer with the task checks, and keeps\n"
    "every finished answer in the store, keyed by (model, template version, snippet id, task).\n"
    "A rerun asks only for what is missing; a rerun of a finished job makes no request.\n"
    "\n"
    "  --teacher URL        server root (http://localhost:8080 -> /v1/chat/completions), API base\n"
    "                       (https://api.openai.com/v1 -> /v1/chat/completions) or the full\n"
    "                       .../chat/completions endpoint\n"
    "  --model NAME         the teacher model\n"
    "  --store FILE         the labels store (SQLite; created when absent)\n"
    "  -o FILE              also write the labels as JSONL (the format of shared/data/labels.jsonl)\n"
    "  --tasks LIST         title,description,tags,links or all (default all); in joint mode the\n"
    "                       fields that must pass the checks and are kept\n"
    "  --mode joint|per-task  one request for all fields as one JSON object (default), or one per task\n"
    "  --concurrency N      requests in flight (default 4)\n"
    "  --timeout S          seconds per attempt (default 60)\n"
    "  --retries N          retries of a failed request, and re-asks of an answer that fails the\n"
    "                       checks, each (default 3)\n"
    "  --backoff S          first retry delay, doubling, with jitter, up to 60 s (default 1);\n"
    "                       a Retry-After from the server wins\n"
    "  --budget TOKENS      start no request once this run has used this many tokens (default: none)\n"
    "  --api-key-env VAR    the environment variable holding the API key (default OPENAI_API_KEY);\n"
    "                       the key is never printed or stored\n"
    "  --price-in P, --price-out P   dollars per 1M prompt / completion tokens, for the cost estimate\n"
    "  --temperature T      sampling temperature sent to the teacher (default 0)\n"
    "  --max-tokens N       max_tokens sent to the teacher (default: not sent)\n"
    "  --prompts DIR        read the templates from DIR instead of the built-in ones\n"
    "  --retry-rejected     ask again for jobs stored as rejected\n"
    "  --shard K/N          only shard K of N (1 <= K <= N) of the snippets, by a hash of the id:\n"
    "                       N machines each label one shard, into their own stores, with no\n"
    "                       overlap; `snipmeta store merge` combines the stores afterwards\n"
    "  --json               print the summary as one JSON object on stdout\n"
    "  -q                   no progress\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

typedef struct {
    int tty, quiet;
    double last;
} progress_state;

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(void *ctx, const sm_label_stats *st) {
    progress_state *ps = ctx;
    if (ps->quiet) return;
    double now = wall_s();
    long long todo = st->jobs - st->skipped;
    int last = st->done == todo;
    if (!last && now - ps->last < (ps->tty ? 0.2 : 10.0)) return;
    ps->last = now;
    fprintf(stderr, "%slabel: %lld/%lld done (%lld ok, %lld rejected), %.1f jobs/s, %lld tokens%s", ps->tty ? "\r" : "",
            st->done, todo, st->ok, st->rejected, st->elapsed_s > 0 ? (double)st->done / st->elapsed_s : 0.0,
            st->prompt_tokens + st->completion_tokens, ps->tty ? (last ? "\n" : "\033[K") : "\n");
}

static void print_reasons(const char *what, const sm_reason_count *r, int n) {
    if (!n) return;
    fprintf(stderr, "label: %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s %s %lld", i ? "," : "", r[i].code, r[i].n);
    fputc('\n', stderr);
}

static void print_summary(const sm_label_stats *st, double price_in, double price_out) {
    double cost = (double)st->prompt_tokens * price_in / 1e6 + (double)st->completion_tokens * price_out / 1e6;
    fprintf(stderr, "label: %lld snippets (%lld duplicate lines), %lld jobs: %lld already stored, %lld done (%lld ok, %lld rejected)\n",
            st->snippets, st->duplicates, st->jobs, st->skipped, st->done, st->ok, st->rejected);
    if (st->other_shards) fprintf(stderr, "label: %lld input lines belong to other shards\n", st->other_shards);
    fprintf(stderr, "label: %lld requests (%lld retries), %lld prompt + %lld completion tokens, %.2f s, %.2f jobs/s\n",
            st->requests, st->retries, st->prompt_tokens, st->completion_tokens, st->elapsed_s,
            st->elapsed_s > 0 ? (double)st->done / st->elapsed_s : 0.0);
    print_reasons("failed attempts by reason", st->failures, st->n_failures);
    print_reasons("rejected by reason", st->rejects, st->n_rejects);
    fprintf(stderr, "label: cost estimate $%.4f (at $%g in, $%g out per 1M tokens)\n", cost, price_in, price_out);
    if (st->budget_reached) fprintf(stderr, "label: token budget reached; rerun with a larger --budget to finish\n");
    if (st->interrupted) fprintf(stderr, "label: interrupted; rerun to finish\n");
}

static void print_json(const sm_label_stats *st, double price_in, double price_out) {
    json_t *failures = json_object(), *rejects = json_object();
    for (int i = 0; i < st->n_failures; i++) json_object_set_new(failures, st->failures[i].code, json_integer(st->failures[i].n));
    for (int i = 0; i < st->n_rejects; i++) json_object_set_new(rejects, st->rejects[i].code, json_integer(st->rejects[i].n));
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:b, s:o, s:o}",
                          "snippets", (json_int_t)st->snippets, "duplicates", (json_int_t)st->duplicates,
                          "other_shards", (json_int_t)st->other_shards,
                          "jobs", (json_int_t)st->jobs, "skipped", (json_int_t)st->skipped,
                          "done", (json_int_t)st->done, "ok", (json_int_t)st->ok,
                          "rejected", (json_int_t)st->rejected, "requests", (json_int_t)st->requests,
                          "retries", (json_int_t)st->retries, "prompt_tokens", (json_int_t)st->prompt_tokens,
                          "completion_tokens", (json_int_t)st->completion_tokens, "elapsed_s", st->elapsed_s,
                          "cost", (double)st->prompt_tokens * price_in / 1e6 + (double)st->completion_tokens * price_out / 1e6,
                          "budget_reached", st->budget_reached, "interrupted", st->interrupted,
                          "failures", failures, "rejects", rejects);
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

int cmd_label(int argc, char **argv) {
    sm_label_params p = {.teacher = sm_teacher_default_params(), .tasks = SM_TASK_ALL, .retries = 3};
    p.teacher.max_retries = 3;
    const char *store_path = NULL, *out_path = NULL, *key_env = "OPENAI_API_KEY";
    double price_in = 0, price_out = 0;
    int json = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage_text, stdout); return EXIT_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "-q")) { quiet = 1; continue; }
        if (!strcmp(a, "--retry-rejected")) { p.retry_rejected = 1; continue; }
        if (a[0] != '-' || !a[1]) {
            if (p.snippets_path) return cli_usage_error("label", "more than one input file ('%s')", a);
            p.snippets_path = a;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error("label", "%s needs a value", a);
        const char *v = argv[++i];
        long long n;
        double d;
        if (!strcmp(a, "--teacher")) p.teacher.base_url = v;
        else if (!strcmp(a, "--model")) p.teacher.model = v;
        else if (!strcmp(a, "--store")) store_path = v;
        else if (!strcmp(a, "-o")) out_path = v;
        else if (!strcmp(a, "--prompts")) p.prompts_dir = v;
        else if (!strcmp(a, "--api-key-env")) key_env = v;
        else if (!strcmp(a, "--shard")) {
            sm_error e = {0};
            if (sm_shard_parse(v, &p.shard, &e)) return cli_usage_error("label", "--shard: %s", e.msg);
        }
        else if (!strcmp(a, "--tasks")) {
            sm_error e = {0};
            if (sm_task_parse_list(v, &p.tasks, &e)) return cli_usage_error("label", "%s", e.msg);
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "joint")) p.per_task = 0;
            else if (!strcmp(v, "per-task")) p.per_task = 1;
            else return cli_usage_error("label", "--mode is joint or per-task, not '%s'", v);
        } else if (!strcmp(a, "--concurrency")) {
            if (cli_parse_int(v, 1, 1024, &n)) return cli_usage_error("label", "--concurrency takes 1-1024, not '%s'", v);
            p.teacher.concurrency = (int)n;
        } else if (!strcmp(a, "--retries")) {
            if (cli_parse_int(v, 0, 100, &n)) return cli_usage_error("label", "--retries takes 0-100, not '%s'", v);
            p.teacher.max_retries = p.retries = (int)n;
        } else if (!strcmp(a, "--budget")) {
            if (cli_parse_int(v, 1, (long long)1 << 62, &n)) return cli_usage_error("label", "--budget takes a positive token count, not '%s'", v);
            p.budget_tokens = n;
        } else if (!strcmp(a, "--max-tokens")) {
            if (cli_parse_int(v, 1, 1 << 30, &n)) return cli_usage_error("label", "--max-tokens takes a positive count, not '%s'", v);
            p.teacher.max_tokens = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(v, 0, (long long)1 << 62, &n)) return cli_usage_error("label", "bad --seed '%s'", v);
            p.teacher.seed = (uint64_t)n;
        } else if (!strcmp(a, "--timeout") || !strcmp(a, "--backoff") || !strcmp(a, "--price-in") ||
                   !strcmp(a, "--price-out") || !strcmp(a, "--temperature")) {
            if (cli_parse_float(v, &d) || d < 0 || (d == 0 && !strcmp(a, "--timeout")))
                return cli_usage_error("label", "%s takes a non-negative number, not '%s'", a, v);
            if (!strcmp(a, "--timeout")) p.teacher.timeout_s = d;
            else if (!strcmp(a, "--backoff")) p.teacher.backoff_base_s = d;
            else if (!strcmp(a, "--price-in")) price_in = d;
            else if (!strcmp(a, "--price-out")) price_out = d;
            else p.teacher.temperature = d;
        } else return cli_usage_error("label", "unknown option '%s'", a);
    }
    if (!p.snippets_path) return cli_usage_error("label", "no snippets file");
    if (!p.teacher.base_url) return cli_usage_error("label", "no --teacher URL");
    if (!p.teacher.model) return cli_usage_error("label", "no --model");
    if (!store_path) return cli_usage_error("label", "no --store");
    p.teacher.api_key = getenv(key_env);

    sm_error err = {0};
    sm_store *store;
    if (sm_store_open(&store, store_path, &err)) return cli_report(&err);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    p.stop = &stop_flag;
    progress_state ps = {.tty = isatty(2), .quiet = quiet, .last = wall_s()};
    p.progress = progress;
    p.progress_ctx = &ps;
    sm_label_stats st;
    int rc = sm_label_run(store, &p, &st, &err);
    if (!quiet || rc) print_summary(&st, price_in, price_out);
    if (json) print_json(&st, price_in, price_out);
    if (rc == SM_OK && out_path) {
        long long n = 0;
        rc = sm_label_export(store, p.teacher.model, p.prompts_dir, p.per_task, out_path, &n, &err);
        if (rc == SM_OK && !quiet) fprintf(stderr, "label: wrote %lld labelled snippets to %s\n", n, out_path);
    }
    sm_store_close(store);
    if (rc) return cli_report(&err);
    return st.interrupted ? EXIT_FAIL : EXIT_OK;
}
