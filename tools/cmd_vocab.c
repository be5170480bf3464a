/* cmd_vocab.c: `snipmeta vocab train` (a byte-level BPE vocabulary from a corpus, bpe_train.h)
 * and `snipmeta vocab count` (tokens and bytes per token of files under a vocabulary). */
#include "bpe_train.h"
#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The student prompt's marker lines (prompts/student.txt), as USER_DEFINED tokens. */
static const char default_markers[] = "Language:,\\nCode:\\n,\\n### Title:\\n,\\n### Description:\\n,"
                                      "\\n### Tags:\\n,\\n### Links:\\n";

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta vocab train --corpus PATH... --vocab-size N -o VOCAB.gguf [options]\n"
            "       snipmeta vocab count -m VOCAB.gguf PATH...\n"
            "\n"
            "train: learns a byte-level BPE vocabulary (GPT-2's kind: merges by pair frequency, ties to\n"
            "the smaller pair of ids) on every file under the PATHs (folders are walked, each file is one\n"
            "text), and writes a vocabulary-only GGUF (tokenizer.ggml.model gpt2) that `snipmeta tokenize\n"
            "-m`, `snipmeta pretrain --vocab` and llama.cpp load. Same corpus, same file, byte for byte.\n"
            "\n"
            "  --corpus PATH...     files or folders of text\n"
            "  --vocab-size N       tokens in all: specials, markers, 256 bytes and the merges\n"
            "  --pre NAME           the pre-tokenizer regex (tokenizer.ggml.pre): starcoder (default; digits\n"
            "                       one by one), gpt2, llama3, qwen2, deepseek-coder, default, ...\n"
            "  --special LIST       control tokens, comma-separated; the first is BOS, EOS and padding\n"
            "                       (default <|endoftext|>; \"none\" for none)\n"
            "  --markers LIST       user-defined tokens, always matched whole in text, comma-separated,\n"
            "                       \\n for a newline (default: the student prompt's markers\n"
            "                       Language:,\\nCode:\\n,\\n### Title:\\n,...; \"none\" for none)\n"
            "  --min-frequency K    merge only pairs seen at least K times (default 2)\n"
            "  --max-bytes N        read at most N bytes of the corpus, whole files, in path order\n"
            "  -o VOCAB.gguf        the output\n"
            "  -q                   no progress\n"
            "\n"
            "count: prints {\"files\", \"bytes\", \"tokens\", \"bytes_per_token\"} for the files under the PATHs.\n"
            "\n"
            "exit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the files under the paths, in name order -------------------------------------------------- */

typedef struct {
    char **path;
    size_t n, cap;
} path_list;

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* Appends the regular files at or under path (symbolic links not followed), sorted per folder. */
static int list_files(path_list *l, const char *path, int depth) {
    struct stat st;
    if (lstat(path, &st)) {
        fprintf(stderr, "snipmeta vocab: %s: no such file or folder\n", path);
        return EXIT_USAGE;
    }
    if (S_ISREG(st.st_mode)) {
        if (l->n == l->cap) {
            size_t c = l->cap ? 2 * l->cap : 256;
            char **p = realloc(l->path, c * sizeof *p);
            if (!p) return EXIT_FAIL;
            l->path = p;
            l->cap = c;
        }
        if (!(l->path[l->n] = strdup(path))) return EXIT_FAIL;
        l->n++;
        return EXIT_OK;
    }
    if (!S_ISDIR(st.st_mode) || depth > 64) return EXIT_OK;
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "snipmeta vocab: %s: cannot list the folder\n", path);
        return EXIT_FAIL;
    }
    path_list sub = {0};
    int rc = EXIT_OK;
    for (struct dirent *e; rc == EXIT_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) { rc = EXIT_FAIL; break; }
        snprintf(p, n, "%s/%s", path, e->d_name);
        if (sub.n == sub.cap) {
            size_t c = sub.cap ? 2 * sub.cap : 64;
            char **q = realloc(sub.path, c * sizeof *q);
            if (!q) { free(p); rc = EXIT_FAIL; break; }
            sub.path = q;
            sub.cap = c;
        }
        sub.path[sub.n++] = p;
    }
    closedir(d);
    if (sub.n) qsort(sub.path, sub.n, sizeof *sub.path, cmp_str);
    for (size_t i = 0; i < sub.n; i++) {
        if (rc == EXIT_OK) rc = list_files(l, sub.path[i], depth + 1);
        free(sub.path[i]);
    }
    free(sub.path);
    return rc;
}

static void free_list(path_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
}

/* Reads a whole file into a new buffer (*len bytes); NULL when it cannot. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t c = cap ? 2 * cap : 1 << 16;
            char *b = realloc(buf, c);
            if (!b) { free(buf); fclose(f); return NULL; }
            buf = b;
            cap = c;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return NULL; }
    *len = n;
    return buf;
}

/* Splits a comma list into a new array of new strings, "\n" unescaped; "none" is empty. */
static char **split_list(const char *s, int *n) {
    *n = 0;
    size_t len = strlen(s);
    char **out = calloc(len + 1, sizeof *out);
    if (!out || !strcmp(s, "none")) return out;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        char *t = malloc((size_t)(end - p) + 1);
        if (!t) break;
        size_t k = 0;
        for (const char *q = p; q < end; q++) {
            if (q[0] == '\\' && q + 1 < end && q[1] == 'n') { t[k++] = '\n'; q++; }
            else if (q[0] == '\\' && q + 1 < end && q[1] == 't') { t[k++] = '\t'; q++; }
            else t[k++] = *q;
        }
        t[k] = 0;
        out[(*n)++] = t;
        if (!*end) break;
        p = end + 1;
    }
    return out;
}

static void free_strs(char **s, int n) {
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

typedef struct {
    int quiet;
    double t0;
} progress_ctx;

static void on_progress(void *ctx, int done, int total) {
    progress_ctx *p = ctx;
    if (!p->quiet) fprintf(stderr, "\rsnipmeta vocab: merges %d / %d (%.1f s)", done, total, now() - p->t0);
}

/* ---- vocab train ------------------------------------------------------------------------------- */

static int vocab_train(int argc, char **argv) {
    const char **corpus = calloc((size_t)argc, sizeof *corpus);
    const char *out = NULL, *pre = "qwen2", *special = "<|endoftext|>", *markers = default_markers;
    long long vocab_size = 0, min_freq = 2, max_bytes = -1;
    int n_corpus = 0, quiet = 0;
    if (!corpus) return EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(corpus); return EXIT_OK; }
        if (!strcmp(a, "-q")) { quiet = 1; continue; }
        if (!strcmp(a, "--corpus")) {
            while (i + 1 < argc && argv[i + 1][0] != '-') corpus[n_corpus++] = argv[++i];
            continue;
        }
        if (i + 1 >= argc) { free(corpus); return cli_usage_error("vocab train", "%s needs a value (or is not an option)", a); }
        const char *v = argv[++i];
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--pre")) pre = v;
        else if (!strcmp(a, "--special")) special = v;
        else if (!strcmp(a, "--markers")) markers = v;
        else if (!strcmp(a, "--vocab-size") && !cli_parse_int(v, 257, 1 << 24, &vocab_size)) {}
        else if (!strcmp(a, "--min-frequency") && !cli_parse_int(v, 1, 1LL << 40, &min_freq)) {}
        else if (!strcmp(a, "--max-bytes") && !cli_parse_int(v, 1, 1LL << 50, &max_bytes)) {}
        else { free(corpus); return cli_usage_error("vocab train", "bad option or value '%s %s'", a, v); }
    }
    if (!n_corpus || !vocab_size || !out) {
        free(corpus);
        return cli_usage_error("vocab train", "--corpus PATH..., --vocab-size N and -o VOCAB.gguf are required");
    }

    int rc = EXIT_OK, n_special = 0, n_markers = 0;
    char **specials = split_list(special, &n_special), **mark = split_list(markers, &n_markers);
    path_list files = {0};
    sm_bpe_trainer *t = NULL;
    sm_error err = {0};
    for (int i = 0; rc == EXIT_OK && i < n_corpus; i++) rc = list_files(&files, corpus[i], 0);
    if (rc) goto done;
    if (!specials || !mark) { rc = EXIT_FAIL; goto done; }
    sm_bpe_params p = {(int)vocab_size, pre, (const char *const *)specials, n_special,
                       (const char *const *)mark, n_markers, (int)min_freq};
    if (!(t = sm_bpe_trainer_new(&p, &err))) { rc = cli_report(&err); goto done; }

    progress_ctx pc = {quiet, now()};
    long long total = 0;
    size_t n_read = 0;
    for (size_t i = 0; i < files.n && (max_bytes < 0 || total < max_bytes); i++) {
        size_t len = 0;
        char *text = read_file(files.path[i], &len);
        if (!text) {
            fprintf(stderr, "snipmeta vocab: %s: cannot read\n", files.path[i]);
            rc = EXIT_FAIL;
            goto done;
        }
        int e = sm_bpe_add_text(t, text, len, &err);
        free(text);
        if (e) { rc = cli_report(&err); goto done; }
        total += (long long)len;
        n_read++;
        if (!quiet && (n_read % 500 == 0 || n_read == files.n))
            fprintf(stderr, "\rsnipmeta vocab: counted %zu files, %.1f MB (%.1f s)", n_read, total / 1e6, now() - pc.t0);
    }
    double t_count = now() - pc.t0;
    if (!quiet) fputc('\n', stderr);
    double t1 = now();
    pc.t0 = t1;
    if (sm_bpe_train(t, on_progress, &pc, &err)) { rc = cli_report(&err); goto done; }
    double t_merge = now() - t1;
    if (!quiet) fputc('\n', stderr);
    if (sm_bpe_write_gguf(t, out, &err)) { rc = cli_report(&err); goto done; }
    sm_bpe_stats s;
    sm_bpe_get_stats(t, &s);
    if (!quiet)
        fprintf(stderr,
                "snipmeta vocab: %s: %d tokens (%d merges), pre %s, from %zu files, %.1f MB, %llu words "
                "(%llu distinct); counting %.1f s (%.2f MB/s), merging %.1f s\n",
                out, s.n_vocab, s.n_merges, pre, n_read, s.bytes / 1e6, (unsigned long long)s.pieces,
                (unsigned long long)s.words, t_count, t_count > 0 ? s.bytes / 1e6 / t_count : 0.0, t_merge);
    if (s.n_vocab < vocab_size)
        fprintf(stderr, "snipmeta vocab: warning: only %d tokens: no pair occurs %lld times any more\n", s.n_vocab,
                min_freq);
done:
    sm_bpe_trainer_free(t);
    free_list(&files);
    free_strs(specials, n_special);
    free_strs(mark, n_markers);
    free(corpus);
    return rc;
}

/* ---- vocab count ------------------------------------------------------------------------------- */

static int vocab_count(int argc, char **argv) {
    const char *model = NULL;
    path_list files = {0};
    int rc = EXIT_OK;
    for (int i = 1; rc == EXIT_OK && i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); free_list(&files); return EXIT_OK; }
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (argv[i][0] == '-') rc = cli_usage_error("vocab count", "unknown option '%s'", argv[i]);
        else rc = list_files(&files, argv[i], 0);
    }
    if (rc == EXIT_OK && (!model || !files.n)) rc = cli_usage_error("vocab count", "-m VOCAB.gguf and PATH... are required");
    if (rc) { free_list(&files); return rc; }
    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(model, &err);
    sm_tokenizer *tok = g ? sm_tokenizer_from_gguf(g, &err) : NULL;
    sm_gguf_close(g);
    if (!tok) { free_list(&files); return cli_report(&err); }
    unsigned long long bytes = 0, tokens = 0;
    for (size_t i = 0; rc == EXIT_OK && i < files.n; i++) {
        size_t len = 0;
        char *text = read_file(files.path[i], &len);
        int *ids = NULL, n = 0;
        if (!text) {
            fprintf(stderr, "snipmeta vocab: %s: cannot read\n", files.path[i]);
            rc = EXIT_FAIL;
        } else if (sm_tokenize(tok, text, len, 0, 0, &ids, &n, &err)) {
            rc = cli_report(&err);
        } else {
            bytes += len;
            tokens += (unsigned long long)n;
        }
        free(ids);
        free(text);
    }
    if (rc == EXIT_OK)
        printf("{\"files\": %zu, \"bytes\": %llu, \"tokens\": %llu, \"bytes_per_token\": %.4f}\n", files.n, bytes, tokens,
               tokens ? (double)bytes / (double)tokens : 0.0);
    sm_tokenizer_free(tok);
    free_list(&files);
    return rc;
}

int cmd_vocab(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "train")) return vocab_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "count")) return vocab_count(argc - 1, argv + 1);
    return cli_usage_error("vocab", "unknown subcommand '%s' (train or count)", argv[1]);
}
