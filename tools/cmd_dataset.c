/* cmd_dataset.c: `snipmeta dataset`: per-task training sets from labels (the work is in
 * src/dataset.c); this file parses flags and prints the stats report. */
#include "cli.h"

#include "dataset.h"
#include "tasks.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: snipmeta dataset LABELS.db|LABELS.jsonl|CHAT.jsonl --task T -o DIR [options]\n"
    "\n"
    "Writes DIR/TASK/{train,validation,test}.jsonl in the student prompt format\n"
    "({\"id\", \"lang\", \"prompt\", \"completion\"}), split 80/10/10 by a hash of each snippet's\n"
    "near-duplicate group (so copies stay in one split), plus DIR/tags.txt (the training tags),\n"
    "DIR/links.txt (the training links) and DIR/stats.json. Reads a labels store, labels JSONL\n"
    "(the format of shared/data/labels.jsonl) or OpenAI fine-tuning chat JSONL.\n"
    "\n"
    "  --task T             title, description, tags, links, a comma list, or all\n"
    "  -o DIR               the output folder (created when absent)\n"
    "  --max-code-bytes N   cut longer code to its first lines and a cut marker (default 3000; 0: never)\n"
    "  --model NAME         from a store, only this teacher model's labels\n"
    "  -q                   no report\n";

static void print_counts(const char *what, json_t *o) {
    fprintf(stderr, "dataset: %s:", what);
    const char *key;
    json_t *v;
    int first = 1;
    json_object_foreach(o, key, v) {
        if (json_is_object(v))
            fprintf(stderr, "%s %s %lld/%lld/%lld", first ? "" : ",", key,
                    (long long)json_integer_value(json_object_get(v, "train")),
                    (long long)json_integer_value(json_object_get(v, "validation")),
                    (long long)json_integer_value(json_object_get(v, "test")));
        else fprintf(stderr, "%s %s %lld", first ? "" : ",", key, (long long)json_integer_value(v));
        first = 0;
    }
    fprintf(stderr, "%s\n", first ? " none" : "");
}

int cmd_dataset(int argc, char **argv) {
    sm_dataset_params p = {.max_code_bytes = 3000};
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage_text, stdout); return EXIT_OK; }
        if (!strcmp(a, "-q")) { quiet = 1; continue; }
        if (a[0] != '-') {
            if (p.input) return cli_usage_error("dataset", "more than one input file ('%s')", a);
            p.input = a;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error("dataset", "%s needs a value", a);
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "--task") || !strcmp(a, "--tasks")) {
            sm_error e = {0};
            if (sm_task_parse_list(v, &p.tasks, &e)) return cli_usage_error("dataset", "%s", e.msg);
        } else if (!strcmp(a, "-o")) p.out_dir = v;
        else if (!strcmp(a, "--model")) p.model = v;
        else if (!strcmp(a, "--max-code-bytes")) {
            if (cli_parse_int(v, 0, 1 << 30, &n)) return cli_usage_error("dataset", "--max-code-bytes takes a byte count, not '%s'", v);
            p.max_code_bytes = (size_t)n;
        } else return cli_usage_error("dataset", "unknown option '%s'", a);
    }
    if (!p.input) return cli_usage_error("dataset", "no labels file");
    if (!p.tasks) return cli_usage_error("dataset", "no --task (title, description, tags, links or all)");
    if (!p.out_dir) return cli_usage_error("dataset", "no -o DIR");
    sm_error err = {0};
    json_t *st;
    if (sm_dataset_build(&p, &st, &err)) return cli_report(&err);
    if (!quiet) {
        json_t *sp = json_object_get(st, "splits");
        fprintf(stderr, "dataset: %lld records, %lld snippets in %lld near-duplicate groups (%lld snippets share a group)\n",
                (long long)json_integer_value(json_object_get(st, "records")),
                (long long)json_integer_value(json_object_get(st, "snippets")),
                (long long)json_integer_value(json_object_get(st, "groups")),
                (long long)json_integer_value(json_object_get(st, "snippets_in_shared_groups")));
        fprintf(stderr, "dataset: splits train %lld, validation %lld, test %lld; %lld snippets cut to %lld bytes of code\n",
                (long long)json_integer_value(json_object_get(sp, "train")),
                (long long)json_integer_value(json_object_get(sp, "validation")),
                (long long)json_integer_value(json_object_get(sp, "test")),
                (long long)json_integer_value(json_object_get(st, "code_cut")),
                (long long)json_integer_value(json_object_get(st, "max_code_bytes")));
        print_counts("per task (train/validation/test)", json_object_get(st, "tasks"));
        print_counts("per language (train/validation/test)", json_object_get(st, "languages"));
        print_counts("rejects by reason", json_object_get(st, "rejects"));
        print_counts("missing fields", json_object_get(st, "missing"));
        fprintf(stderr, "dataset: tag vocabulary %lld, links index %lld; wrote %s/stats.json\n",
                (long long)json_integer_value(json_object_get(st, "tag_vocabulary")),
                (long long)json_integer_value(json_object_get(st, "links_index")), p.out_dir);
    }
    json_decref(st);
    return EXIT_OK;
}
