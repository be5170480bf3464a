/* cmd_store.c: `snipmeta store`: work on labels stores as a whole. One subcommand so far:
 * `store merge A.db B.db ... -o ALL.db`, which combines the stores that the shards of a labelling
 * job wrote (src/store_merge.c does the work; this file parses flags and reports conflicts). */
#include "cli.h"

#include "store_merge.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: snipmeta store merge A.db B.db ... -o ALL.db [--conflicts FILE.jsonl] [--json] [-q]\n"
    "\n"
    "Combines labels stores (as N machines wrote them with `snipmeta label --shard K/N`) into a\n"
    "new store: every snippet, and one label per key (teacher model, template version, snippet\n"
    "id, task). When several stores hold a key, the label kept is, in order: an ok label over a\n"
    "rejected one; then the earliest answer (created_at); then the store named first. Keys whose\n"
    "answers differ (status, fields or rejection reason) are conflicts: each is reported with the\n"
    "label kept, the one dropped and the rule that decided. ALL.db must not exist; it appears\n"
    "only when the merge has finished (written beside it, then renamed).\n"
    "\n"
    "  -o FILE            the new store\n"
    "  --conflicts FILE   write every conflict as one JSON object per line\n"
    "  --json             print the summary as one JSON object on stdout\n"
    "  -q                 no conflict lines or summary on stderr\n"
    "\n"
    "exit codes: 0 success (conflicts included), 1 failure at run time, 2 bad usage or bad input file\n";

enum { SHOWN_CONFLICTS = 10 };

typedef struct {
    const char *const *inputs;
    FILE *jsonl;
    int quiet;
    long long n;
} conflict_sink;

static void on_conflict(void *ctx, const sm_merge_conflict *c) {
    conflict_sink *k = ctx;
    k->n++;
    if (!k->quiet && k->n <= SHOWN_CONFLICTS)
        fprintf(stderr, "store merge: conflict %s %s %s %s: kept %s (%s), dropped %s (%s), by %s\n", c->model,
                c->template_hash, c->snippet_id, c->task, k->inputs[c->kept.input], c->kept.status,
                k->inputs[c->dropped.input], c->dropped.status, sm_merge_rule_name(c->rule));
    if (!k->jsonl) return;
    json_t *side[2];
    const sm_merge_side *s[2] = {&c->kept, &c->dropped};
    for (int i = 0; i < 2; i++)
        side[i] = json_pack("{s:s, s:s, s:s, s:s?}", "store", k->inputs[s[i]->input], "status", s[i]->status,
                            "answer", s[i]->answer, "created_at", s[i]->created_at);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s}", "model", c->model, "template", c->template_hash,
                          "snippet_id", c->snippet_id, "task", c->task, "kept", side[0], "dropped", side[1],
                          "rule", sm_merge_rule_name(c->rule));
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (line) fprintf(k->jsonl, "%s\n", line);
    free(line);
    json_decref(o);
}

static int cmd_store_merge(int argc, char **argv) {
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (!inputs) { fprintf(stderr, "snipmeta: out of memory\n"); return EXIT_FAIL; }
    const char *out = NULL, *conflicts_path = NULL;
    int n = 0, json = 0, quiet = 0, rc = EXIT_OK;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage_text, stdout); free(inputs); return EXIT_OK; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q")) quiet = 1;
        else if (a[0] != '-') inputs[n++] = a;
        else if (i + 1 >= argc) rc = cli_usage_error("store merge", "%s needs a value", a);
        else if (!strcmp(a, "-o")) out = argv[++i];
        else if (!strcmp(a, "--conflicts")) conflicts_path = argv[++i];
        else rc = cli_usage_error("store merge", "unknown option '%s'", a);
    }
    if (rc == EXIT_OK && !n) rc = cli_usage_error("store merge", "no input stores");
    if (rc == EXIT_OK && !out) rc = cli_usage_error("store merge", "no -o ALL.db");
    conflict_sink sink = {.inputs = inputs, .quiet = quiet};
    if (rc == EXIT_OK && conflicts_path && !(sink.jsonl = fopen(conflicts_path, "w"))) {
        perror(conflicts_path);
        rc = EXIT_FAIL;
    }
    if (rc != EXIT_OK) { free(inputs); return rc; }

    sm_error err = {0};
    sm_merge_stats st;
    int mrc = sm_store_merge(out, inputs, n, on_conflict, &sink, &st, &err);
    if (sink.jsonl && fclose(sink.jsonl) && mrc == SM_OK) {
        perror(conflicts_path);
        rc = EXIT_FAIL;
    }
    if (mrc) {
        rc = cli_report(&err);
    } else {
        if (!quiet) {
            if (st.conflicts > SHOWN_CONFLICTS)
                fprintf(stderr, "store merge: ... and %lld more conflicts%s\n", st.conflicts - SHOWN_CONFLICTS,
                        conflicts_path ? "" : " (--conflicts FILE lists them all)");
            fprintf(stderr, "store merge: %d stores, %lld labels read: %lld written to %s, %lld duplicates, %lld conflicts;"
                            " %lld snippets (%lld recorded differently)\n", n, st.labels_read, st.labels_written, out,
                    st.duplicates, st.conflicts, st.snippets_written, st.snippet_conflicts);
        }
        if (json) {
            json_t *o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "stores", n, "labels_read", (json_int_t)st.labels_read,
                                  "labels_written", (json_int_t)st.labels_written, "duplicates", (json_int_t)st.duplicates,
                                  "conflicts", (json_int_t)st.conflicts, "snippets", (json_int_t)st.snippets_written,
                                  "snippet_conflicts", (json_int_t)st.snippet_conflicts);
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
            json_decref(o);
        }
    }
    free(inputs);
    return rc;
}

int cmd_store(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "merge")) return cmd_store_merge(argc - 1, argv + 1);
    return cli_usage_error("store", "unknown subcommand '%s' (merge)", argv[1]);
}
