/* bench_meta.c: latency and memory of the metadata tasks (metadata.h), as JSON lines.
 *
 *   bench_meta [--model BASE.gguf] [--adapters DIR] [--vocab VOCAB.gguf] [-t THREADS] [--rank R] [--gen N] [--reps N]
 *              [--full 1] [--meta 0]
 *
 * Without --model it writes a random model of SmolLM2-135M's shape in Q8_0 with the vocabulary
 * file (default ../shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf, 49152 tokens as
 * SmolLM2's) to a temporary directory. Random adapters of rank R (default 8) on q, k, v, o are
 * written twice, as standard and as activated adapters, with a tag vocabulary and a links index.
 * With --adapters DIR (trained activated adapters with their tags.txt and links.txt, as
 * models/adapters of the bundled default) those are the activated adapters and the ones the
 * memory lines measure; the standard adapters stay random. The snippet is Python code cut to 200
 * tokens. Measured (best of --reps runs, default 3):
 *   - all four tasks against each task alone, with standard and with activated adapters, every
 *     answer capped at --gen tokens (default 16: a random adapter rarely stops by itself, a
 *     trained one writes a title in about that many), and with --full 1 also with each task's own
 *     answer limit; runs are interleaved so that a busy moment hits both sides alike (--meta 0
 *     skips these); with activated adapters also all four one after another (params.sequential,
 *     the path before decoding side by side);
 *   - the prefill of the snippet and the time per generated token;
 *   - one decode step of 1-4 sequences side by side (sm_forward_seqs) against one of a single
 *     sequence, and the copy of the prefix's cache that splitting into four sequences makes;
 *   - an adapter swap (sm_context_set_adapters between two resident adapters);
 *   - resident memory (VmRSS, freed heap pages given back first) of the base with a context after a
 *     forward pass; with the four adapters alone, held as f16 as a registry holds them
 *     ("memory_adapters"); with a registry of them and its tag and link tries ("memory");
 *     at the end, after the runs, with the caches that decoding side by side keeps.
 */
#include "gguf.h"
#include "lora.h"
#include "metadata.h"
#include "model_init.h"
#include "tensor.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* VmRSS after giving freed heap pages back (glibc keeps the pages of freed chunks below live ones
 * resident; what a run freed would otherwise count, more or less depending on the thread count). */
static long rss_kb(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static void die(const char *what, const sm_error *err) {
    fprintf(stderr, "bench_meta: %s: %s\n", what, err->msg);
    exit(1);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static void write_adapters(const sm_model *m, const char *fp, const char *dir, int rank, int activated) {
    static const char *names[] = {"title", "description", "tags", "links"};
    mkdir(dir, 0755);
    for (int t = 0; t < 4; t++) {
        sm_error err = {0};
        sm_lora *l = sm_lora_new(&m->config, rank, 2.0f * rank, 0, SM_LORA_TARGETS_ATTN, &err);
        if (!l) die("adapter", &err);
        sm_lora_init(l, 100 + (uint64_t)t);
        uint64_t state = 7 + (uint64_t)t;
        for (size_t i = 0; i < l->n_params; i++) l->params[i] += 0.01f * (2 * sm_rng_f32(&state) - 1);
        snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", fp);
        snprintf(l->task, sizeof l->task, "%s", names[t]);
        l->activated = activated;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, names[t]);
        if (sm_lora_save_gguf(l, path, &err)) die(path, &err);
        sm_lora_free(l);
    }
    write_text(dir, "tags.txt", "python\nalgorithm\nsorting\nrecursion\ndata-structures\nstring-parsing\nfile-io\nhttp\njson\n"
                                "testing\nconcurrency\ncli\nregex\nlinked-list\nmath\ngeometry\n");
    write_text(dir, "links.txt", "https://docs.python.org/3/library/functions.html#sorted\nhttps://docs.python.org/3/library/heapq.html\n"
                                 "https://docs.python.org/3/library/json.html\nhttps://docs.python.org/3/library/re.html\n");
}

/* Python code of exactly n tokens (cut at a token boundary). */
static char *snippet_of(const sm_tokenizer *tok, int n) {
    const char *unit = "def merge_sorted(a, b):\n    \"\"\"Merge two sorted lists into one sorted list.\"\"\"\n"
                       "    out = []\n    i = j = 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n"
                       "            out.append(a[i]); i += 1\n        else:\n            out.append(b[j]); j += 1\n"
                       "    return out + a[i:] + b[j:]\n\n";
    size_t cap = strlen(unit) * 8 + 1;
    char *text = malloc(cap);
    text[0] = 0;
    for (int i = 0; i < 8; i++) strcat(text, unit);
    int *ids = NULL, n_ids = 0;
    sm_error err = {0};
    if (sm_tokenize(tok, text, strlen(text), 0, 0, &ids, &n_ids, &err) || n_ids < n) die("snippet", &err);
    char *out = NULL;
    size_t len = 0;
    if (sm_detokenize(tok, ids, n, 0, &out, &len, &err)) die("snippet", &err);
    free(ids);
    free(text);
    return out;
}

/* One run of the tasks in mask; the result in *res (the caller frees it). */
static double time_run(sm_meta_worker *w, sm_registry *r, const char *code, unsigned mask, int gen, int sequential, sm_meta_result *res) {
    sm_meta_params p = sm_meta_default_params();
    p.tasks = mask;
    p.sequential = sequential;
    p.max_tokens = gen;
    sm_error err = {0};
    sm_meta_result_free(res);
    double t0 = now_ms();
    if (sm_meta_run(w, r, "python", code, &p, res, &err)) die("run", &err);
    return now_ms() - t0;
}

/* all four tasks and each alone, interleaved rep by rep (so that a busy moment of the machine
 * hits both sides alike), best of reps each */
static void bench_kind(const char *kind, sm_meta_worker *w, sm_registry *r, const char *code, int gen, int reps) {
    sm_meta_result res = {0};
    double best[SM_TASK_COUNT + 1], prefill = 0, best_seq = 1e30;
    int generated[SM_TASK_COUNT + 1] = {0}, prompt_tokens = 0, activated = !strcmp(kind, "activated");
    for (int k = 0; k <= SM_TASK_COUNT; k++) best[k] = 1e30;
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k <= SM_TASK_COUNT + activated; k++) {
            if (k > SM_TASK_COUNT) { /* activated: the four one after another, as before decoding side by side */
                double ms = time_run(w, r, code, SM_TASK_ALL, gen, 1, &res);
                if (ms < best_seq) best_seq = ms;
                continue;
            }
            double ms = time_run(w, r, code, k == SM_TASK_COUNT ? SM_TASK_ALL : 1u << k, gen, 0, &res);
            if (ms < best[k]) best[k] = ms;
            if (k == SM_TASK_COUNT) {
                prefill = res.prefill_ms, prompt_tokens = res.n_prompt_tokens, generated[k] = 0;
                for (int t = 0; t < SM_TASK_COUNT; t++) generated[k] += res.n_generated[t];
            } else {
                generated[k] = res.n_generated[k];
            }
        }
    double all = best[SM_TASK_COUNT], sum_one = 0;
    printf("{\"bench\":\"meta\",\"adapters\":\"%s\",\"gen_cap\":%d,\"tasks\":\"all\",\"ms\":%.1f,\"prefill_ms\":%.1f,\"prompt_tokens\":%d,\"generated\":%d}\n",
           kind, gen, all, prefill, prompt_tokens, generated[SM_TASK_COUNT]);
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        sum_one += best[t];
        printf("{\"bench\":\"meta\",\"adapters\":\"%s\",\"gen_cap\":%d,\"tasks\":\"%s\",\"ms\":%.1f,\"generated\":%d,\"all_over_one\":%.2f}\n",
               kind, gen, sm_task_name((sm_task)t), best[t], generated[t], all / best[t]);
    }
    printf("{\"bench\":\"meta\",\"adapters\":\"%s\",\"gen_cap\":%d,\"all_ms\":%.1f,\"mean_one_ms\":%.1f,\"all_over_mean_one\":%.2f,\"sum_of_ones_ms\":%.1f}\n",
           kind, gen, all, sum_one / 4, all / (sum_one / 4), sum_one);
    if (activated)
        printf("{\"bench\":\"meta\",\"adapters\":\"activated\",\"gen_cap\":%d,\"all_sequential_ms\":%.1f,\"sequential_over_mean_one\":%.2f,"
               "\"batched_over_sequential\":%.2f}\n", gen, best_seq, best_seq / (sum_one / 4), all / best_seq);
    fflush(stdout);
    sm_meta_result_free(&res);
}

/* One decode step of k sequences side by side (sm_forward_seqs, k rows, each its own adapter)
 * against one step of one sequence (sm_forward, one row), after the snippet's prefill; the copy
 * of the prefix's cache that a split makes (sm_context_seqs_begin) timed too. 16 steps each, best
 * of reps, interleaved. */
static void bench_steps(const sm_model *m, sm_meta_worker *w, sm_registry *r, const char *code, int reps) {
    static const char *names[] = {"title", "description", "tags", "links"};
    const sm_lora *ad[4];
    float scales[4] = {1, 1, 1, 1};
    for (int t = 0; t < 4; t++) ad[t] = sm_registry_acquire(r, names[t]);
    sm_context *c = sm_meta_worker_context(w);
    sm_error err = {0};
    int *ids = NULL, n = 0;
    sm_tokenize(m->tokenizer, code, strlen(code), 0, 0, &ids, &n, &err);
    float *logits = malloc(4 * (size_t)m->config.n_vocab * sizeof *logits);
    double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30}, best_split = 1e30;
    enum { STEPS = 16 };
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k <= 4; k++) {
            sm_context_set_adapters(c, NULL, NULL, 0, NULL);
            sm_context_set_adapter_start(c, 0);
            sm_context_truncate(c, 0, NULL);
            if (sm_forward(c, ids, n, NULL, 0, &err)) die("prefill", &err);
            int tok[4] = {ids[0], ids[1], ids[2], ids[3]}, n_tok[4] = {0};
            double t0 = now_ms();
            if (k == 0) { /* one sequence, the one-row path */
                sm_context_set_adapters(c, &ad[0], scales, 1, &err);
                sm_context_set_adapter_start(c, n);
                for (int s = 0; s < STEPS; s++)
                    if (sm_forward(c, tok, 1, logits, 0, &err)) die("step", &err);
            } else {
                if (sm_context_seqs_begin(c, k, ad, scales, STEPS + 1, &err)) die("split", &err);
                double split = now_ms() - t0;
                if (k == 4 && split < best_split) best_split = split;
                t0 = now_ms();
                for (int i = 0; i < k; i++) n_tok[i] = 1;
                for (int s = 0; s < STEPS; s++)
                    if (sm_forward_seqs(c, tok, n_tok, logits, &err)) die("step", &err);
                sm_context_seqs_end(c);
            }
            double ms = (now_ms() - t0) / STEPS;
            if (ms < best[k]) best[k] = ms;
        }
    sm_context_set_adapters(c, NULL, NULL, 0, NULL);
    sm_context_set_adapter_start(c, 0);
    printf("{\"bench\":\"decode_step\",\"threads\":%d,\"prefix_tokens\":%d,\"one_seq_ms\":%.2f,\"batched_ms\":[%.2f,%.2f,%.2f,%.2f],"
           "\"four_over_one\":%.2f,\"split_copy_ms\":%.2f}\n",
           omp_get_max_threads(), n, best[0], best[1], best[2], best[3], best[4], best[4] / best[0], best_split);
    fflush(stdout);
    for (int t = 0; t < 4; t++) sm_registry_release(r, ad[t]);
    free(logits);
    free(ids);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *adapters_path = NULL, *vocab_path = "../shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf";
    int threads = 2, rank = 8, gen = 16, reps = 3, n_snippet = 200, full = 0, meta = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model_path = argv[i + 1];
        else if (!strcmp(argv[i], "--adapters")) adapters_path = argv[i + 1];
        else if (!strcmp(argv[i], "--vocab")) vocab_path = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen")) gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--full")) full = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--meta")) meta = atoi(argv[i + 1]);
        else { fprintf(stderr, "usage: bench_meta [--model BASE.gguf] [--adapters DIR] [--vocab V.gguf] [-t N] [--rank R] [--gen N] [--reps N] [--full 1] [--meta 0]\n"); return 2; }
    }
    omp_set_num_threads(threads);
    char dir[] = "/tmp/bench_meta.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[4200];
    sm_error err = {0};
    if (!model_path) {
        sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
        if (!vocab) die(vocab_path, &err);
        sm_model_shape shape;
        sm_init_scheme scheme;
        sm_model_shape_preset("smollm2-135m", &shape);
        shape.tied = 1;
        sm_init_scheme_preset("decode", &shape, &scheme);
        snprintf(path, sizeof path, "%s/base-q8_0.gguf", dir);
        double t0 = now_ms();
        if (sm_init_write_gguf(path, &shape, &scheme, vocab, SM_TYPE_Q8_0, 1, &err)) die("init", &err);
        sm_gguf_close(vocab);
        fprintf(stderr, "bench_meta: wrote a SmolLM2-135M-shaped Q8_0 model in %.1f s\n", (now_ms() - t0) / 1e3);
        model_path = path;
    }
    long rss0 = rss_kb();
    sm_model *m = sm_model_load(model_path, &err);
    if (!m) die(model_path, &err);
    char fp[65];
    if (sm_model_fingerprint(m, fp)) return 1;
    char std_dir[4300], act_dir[4300];
    snprintf(std_dir, sizeof std_dir, "%s/standard", dir);
    snprintf(act_dir, sizeof act_dir, "%s/activated", dir);
    write_adapters(m, fp, std_dir, rank, 0);
    if (adapters_path) snprintf(act_dir, sizeof act_dir, "%s", adapters_path);
    else write_adapters(m, fp, act_dir, rank, 1);
    const char *mem_dir = adapters_path ? act_dir : std_dir; /* the adapters the memory lines hold */
    char *code = snippet_of(m->tokenizer, n_snippet);

    /* memory: the base with a worker after a forward pass, then with the registry too */
    sm_meta_worker *w = sm_meta_worker_new(m, 0, &err);
    if (!w) die("worker", &err);
    {
        int *ids = NULL, n = 0;
        sm_tokenize(m->tokenizer, code, strlen(code), 0, 0, &ids, &n, &err);
        sm_context_truncate(sm_meta_worker_context(w), 0, NULL);
        if (sm_forward(sm_meta_worker_context(w), ids, n, NULL, 0, &err)) die("forward", &err);
        free(ids);
    }
    long rss_base = rss_kb();
    /* the four adapters alone, held as a registry holds them (f16), then freed */
    {
        static const char *names[] = {"title", "description", "tags", "links"};
        sm_lora *held[4];
        char apath[4400];
        for (int t = 0; t < 4; t++) {
            snprintf(apath, sizeof apath, "%s/%s.gguf", mem_dir, names[t]);
            if (!(held[t] = sm_lora_load_gguf(apath, &err)) || sm_lora_to_f16(held[t], &err)) die(apath, &err);
        }
        long rss_held = rss_kb();
        printf("{\"bench\":\"memory_adapters\",\"rss_base_kb\":%ld,\"rss_base_four_adapters_kb\":%ld,\"ratio\":%.4f,\"adapter_bytes\":%zu}\n",
               rss_base, rss_held, (double)rss_held / (double)rss_base, 4 * sm_lora_bytes(held[0]));
        for (int t = 0; t < 4; t++) sm_lora_free(held[t]);
    }
    rss_base = rss_kb();
    sm_registry *mem_reg = sm_registry_open(m, mem_dir, &err);
    if (!mem_reg) die(mem_dir, &err);
    long rss_adapters = rss_kb();
    printf("{\"bench\":\"memory\",\"model\":\"%s\",\"rss_before_load_kb\":%ld,\"rss_base_kb\":%ld,\"rss_base_adapters_kb\":%ld,"
           "\"ratio\":%.4f,\"adapter_bytes\":%zu,\"tags_trie_bytes\":%zu,\"links_trie_bytes\":%zu,\"rank\":%d,\"n_ctx\":%d}\n",
           model_path, rss0, rss_base, rss_adapters, (double)rss_adapters / (double)rss_base, sm_registry_bytes(mem_reg),
           sm_constraint_bytes(sm_registry_tags(mem_reg)), sm_constraint_bytes(sm_registry_links(mem_reg)), rank,
           sm_context_n_ctx(sm_meta_worker_context(w)));
    sm_registry *std_reg = mem_reg, *act_reg = mem_reg;
    if (adapters_path) std_reg = sm_registry_open(m, std_dir, &err);
    else act_reg = sm_registry_open(m, act_dir, &err);
    if (!std_reg || !act_reg) die("registry", &err);

    /* adapter swap */
    const sm_lora *a = sm_registry_acquire(std_reg, "title"), *b = sm_registry_acquire(std_reg, "tags");
    float one = 1.0f;
    int n_swaps = 100000;
    double t0 = now_ms();
    for (int i = 0; i < n_swaps; i++) sm_context_set_adapters(sm_meta_worker_context(w), i & 1 ? &a : &b, &one, 1, &err);
    double swap_us = (now_ms() - t0) * 1e3 / n_swaps;
    sm_context_set_adapters(sm_meta_worker_context(w), NULL, NULL, 0, NULL);
    sm_registry_release(std_reg, a);
    sm_registry_release(std_reg, b);
    printf("{\"bench\":\"swap\",\"us\":%.3f,\"swaps\":%d}\n", swap_us, n_swaps);

    /* prefill and per-token decode of the bare base, for reference */
    {
        int *ids = NULL, n = 0;
        sm_tokenize(m->tokenizer, code, strlen(code), 0, 0, &ids, &n, &err);
        float *logits = malloc((size_t)m->config.n_vocab * sizeof *logits);
        sm_context *c = sm_meta_worker_context(w);
        double best_prefill = 1e30, best_tok = 1e30;
        for (int r = 0; r < reps; r++) {
            sm_context_truncate(c, 0, NULL);
            double t1 = now_ms();
            sm_forward(c, ids, n, logits, 0, &err);
            double t2 = now_ms();
            int next = sm_argmax(logits, m->config.n_vocab);
            for (int k = 0; k < 16; k++) {
                sm_forward(c, &next, 1, logits, 0, &err);
                next = sm_argmax(logits, m->config.n_vocab);
            }
            double t3 = now_ms();
            if (t2 - t1 < best_prefill) best_prefill = t2 - t1;
            if ((t3 - t2) / 16 < best_tok) best_tok = (t3 - t2) / 16;
        }
        printf("{\"bench\":\"forward\",\"threads\":%d,\"snippet_tokens\":%d,\"prefill_ms\":%.1f,\"decode_ms_per_token\":%.2f}\n", threads, n,
               best_prefill, best_tok);
        free(logits);
        free(ids);
    }
    fflush(stdout);
    bench_steps(m, w, act_reg, code, reps);

    if (meta) bench_kind("activated", w, act_reg, code, gen, reps);
    if (meta) bench_kind("standard", w, std_reg, code, gen, reps);
    if (full && meta) { /* each task's own answer limit: random adapters rarely stop early, so mostly the limits */
        bench_kind("activated", w, act_reg, code, 0, reps);
        bench_kind("standard", w, std_reg, code, 0, reps);
    }
    /* what decoding side by side keeps: the caches of sequences 1-3 (a copy of the prefix each
     * plus room for the answers), grown to the largest request so far */
    long rss_end = rss_kb();
    printf("{\"bench\":\"memory_after\",\"rss_base_kb\":%ld,\"rss_base_adapters_kb\":%ld,\"rss_now_kb\":%ld,\"ratio_to_base\":%.4f}\n",
           rss_base, rss_adapters, rss_end, (double)rss_end / (double)rss_base);

    sm_meta_worker_free(w);
    sm_registry_free(std_reg);
    sm_registry_free(act_reg);
    sm_model_free(m);
    free(code);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_meta: could not remove %s\n", dir);
    return 0;
}
