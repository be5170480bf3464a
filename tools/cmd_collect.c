/* cmd_collect.c: `snipmeta collect PATH... -o snippets.jsonl`: cut function-level snippets from
 * files, folders and git checkouts (src/collect.h) and print a summary to stderr. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "collect.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: snipmeta collect PATH... -o OUT.jsonl [options]\n\n"
            "Walks files, folders and git checkouts (honouring .gitignore, skipping .git and symbolic\n"
            "links) and writes one JSON object per function, method or class of min..max lines:\n"
            "  {\"id\", \"lang\", \"source\", \"license\", \"path\", \"symbol\", \"kind\", \"lines\": [start, end], \"code\"}\n"
            "Duplicates (same id: sha256 of the whitespace-normalised code) are written once. Huge,\n"
            "binary, non-UTF-8, generated and minified files are skipped and counted.\n\n"
            "options:\n"
            "  -o, --output FILE       where to write (\"-\": stdout); written to a temporary file, then renamed\n"
            "  --min-lines N           shortest snippet in lines (default 6)\n"
            "  --max-lines N           longest snippet in lines (default 45)\n"
            "  --max-file-bytes N      skip larger files unread (default 1048576)\n"
            "  --stats FILE            also write the summary as one JSON object to FILE (\"-\": stdout)\n"
            "  -q, --quiet             no summary and no progress on stderr\n"
            "  -h, --help              this help\n");
}

static void summary(const sm_collect_stats *s) {
    fprintf(stderr, "collect: %lld files seen, %lld snippets written (%lld definitions, %lld outside the line bounds, "
                    "%lld duplicates) in %.2f s\n",
            s->files_seen, s->snippets, s->definitions, s->out_of_range, s->duplicates, s->seconds);
    fprintf(stderr, "  per language (files / snippets):");
    int any = 0;
    for (int l = 1; l < SM_LANG_COUNT; l++)
        if (s->files_by_lang[l]) { fprintf(stderr, " %s %lld/%lld", sm_lang_name(l), s->files_by_lang[l], s->snippets_by_lang[l]); any = 1; }
    fprintf(stderr, "%s\n  skipped:", any ? "" : " none");
    any = 0;
    for (int r = 0; r < SM_SKIP_COUNT; r++)
        if (s->skipped[r]) { fprintf(stderr, " %s %lld", sm_skip_name(r), s->skipped[r]); any = 1; }
    fprintf(stderr, "%s\n", any ? "" : " none");
}

int cmd_collect(int argc, char **argv) {
    sm_collect_opts opts;
    sm_collect_opts_default(&opts);
    const char *out = NULL, *stats_path = NULL;
    const char *paths[1024];
    int n_paths = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(stdout); return EXIT_OK; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        int has_value = !strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--min-lines") ||
                        !strcmp(a, "--max-lines") || !strcmp(a, "--max-file-bytes") || !strcmp(a, "--stats");
        if (has_value && i + 1 >= argc) return cli_usage_error("collect", "%s needs a value", a);
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = argv[++i];
        else if (!strcmp(a, "--stats")) stats_path = argv[++i];
        else if (!strcmp(a, "--min-lines") || !strcmp(a, "--max-lines")) {
            if (cli_parse_int(argv[i + 1], 1, 100000, &v)) return cli_usage_error("collect", "%s: '%s' is not a line count", a, argv[i + 1]);
            *(a[3] == 'i' ? &opts.min_lines : &opts.max_lines) = (int)v;
            i++;
        } else if (!strcmp(a, "--max-file-bytes")) {
            if (cli_parse_int(argv[i + 1], 1, (long long)1 << 40, &v)) return cli_usage_error("collect", "--max-file-bytes: '%s' is not a size", argv[i + 1]);
            opts.max_file_bytes = v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("collect", "unknown option '%s'", a);
        } else {
            if (n_paths == (int)(sizeof paths / sizeof paths[0])) return cli_usage_error("collect", "too many paths");
            paths[n_paths++] = a;
        }
    }
    if (!n_paths) return cli_usage_error("collect", "no PATH given");
    if (!out) return cli_usage_error("collect", "no output given (-o FILE, or -o - for stdout)");
    if (opts.min_lines > opts.max_lines) return cli_usage_error("collect", "--min-lines is larger than --max-lines");
    opts.progress = !quiet && isatty(STDERR_FILENO);

    sm_collect_stats stats;
    sm_error err = {0};
    int rc = sm_collect(paths, n_paths, out, &opts, &stats, &err);
    if (rc) return cli_report(&err);
    if (!quiet) summary(&stats);
    if (stats_path) {
        FILE *f = strcmp(stats_path, "-") ? fopen(stats_path, "w") : stdout;
        if (!f) { fprintf(stderr, "snipmeta collect: cannot write %s\n", stats_path); return EXIT_FAIL; }
        sm_collect_stats_json(f, &stats);
        fputc('\n', f);
        if (f != stdout && fclose(f)) { fprintf(stderr, "snipmeta collect: cannot write %s\n", stats_path); return EXIT_FAIL; }
    }
    return EXIT_OK;
}
