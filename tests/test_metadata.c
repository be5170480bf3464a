/* test_metadata.c: the adapter registry and the metadata tasks on a tiny random model (StarCoder's
 * vocabulary) with random adapters. The output text is gibberish; what is tested is the
 * mechanics: tags only from tags.txt with the language first and no duplicates, links only from
 * links.txt, titles one line of at most 10 words without a trailing period, descriptions within
 * 60 words; the same answer twice and the same answer whether a task runs alone or with the
 * others (standard and activated adapters, so truncating the shared prefill and swapping
 * adapters leaves nothing behind); sampling with a seed is repeatable and keeps the constraints;
 * code cut to fit a small context; the registry's names, missing files, fingerprint refusal,
 * unloading while in use; the swap time. */
#include "gguf.h"
#include "lora.h"
#include "metadata.h"
#include "model_init.h"
#include "tensor.h"

#include <omp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
            failures++;                                           \
        }                                                         \
    } while (0)

static const char *task_files[] = {"title", "description", "tags", "links"};
static const char *tags_txt = "python\nc\ngo\nsorting\nalgorithm\nstring-parsing\nhttp\nhttp-client\nfile-io\nrecursion\n"
                              "data-structures\nlinked-list\ntesting\njson\nregex\nconcurrency\n";
static const char *links_txt = "https://docs.python.org/3/library/functions.html#sorted\nhttps://docs.python.org/3/library/json.html\n"
                               "https://go.dev/doc/effective_go\nhttps://en.cppreference.com/w/c/string/byte/strlen\n";
static const char *snippet = "def merge_sorted(a, b):\n    \"\"\"Merge two sorted lists into one sorted list.\"\"\"\n"
                             "    out = []\n    i = j = 0\n    while i < len(a) and j < len(b):\n"
                             "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n"
                             "        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n";

static void write_file(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

/* A random adapter for m with non-zero B, saved as dir/name.gguf. */
static void write_adapter(const sm_model *m, const char *fingerprint, const char *dir, const char *name, int activated, uint64_t seed) {
    sm_error err = {0};
    sm_lora *l = sm_lora_new(&m->config, 4, 8.0f, 0, SM_LORA_TARGETS_ATTN, &err);
    if (!l) { fprintf(stderr, "FAIL: %s\n", err.msg); exit(1); }
    sm_lora_init(l, seed);
    uint64_t state = seed * 7919;
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            for (size_t i = 0; pair->b && i < (size_t)pair->out * l->rank; i++) pair->b[i] = 0.1f * (2 * sm_rng_f32(&state) - 1);
        }
    snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", fingerprint);
    snprintf(l->task, sizeof l->task, "%s", name);
    l->activated = activated;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    if (sm_lora_save_gguf(l, path, &err)) { fprintf(stderr, "FAIL: %s\n", err.msg); exit(1); }
    sm_lora_free(l);
}

static char *to_json(const sm_meta_result *r, const char *lang) {
    json_t *j = sm_meta_result_json(r, lang, 0);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

static int in_file(const char *text, const char *item) {
    size_t n = strlen(item);
    for (const char *p = text; (p = strstr(p, item)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    return 0;
}

/* The rules every answer must keep, whatever the model. */
static void check_rules(const char *what, const sm_meta_result *r, const char *lang) {
    if (r->tasks & (1u << SM_TASK_TITLE)) {
        const char *t = r->title;
        CHECK(t && !strchr(t, '\n'), "%s: title not one line", what);
        size_t n = t ? strlen(t) : 0;
        CHECK(n == 0 || t[n - 1] != '.', "%s: title ends with a period", what);
        int words = 0, in = 0;
        for (size_t i = 0; i < n; i++) { int sp = t[i] == ' ' || t[i] == '\t'; if (!sp && !in) words++; in = !sp; }
        CHECK(words >= 1 && words <= 10, "%s: title of %d words", what, words);
    }
    if (r->tasks & (1u << SM_TASK_DESCRIPTION)) {
        int words = 0, in = 0;
        for (const char *p = r->description; *p; p++) { int sp = *p == ' ' || *p == '\n' || *p == '\t'; if (!sp && !in) words++; in = !sp; }
        CHECK(words >= 1 && words <= 60, "%s: description of %d words", what, words);
    }
    if (r->tasks & (1u << SM_TASK_TAGS)) {
        CHECK(r->n_tags >= 1 && r->n_tags <= 6, "%s: %d tags", what, r->n_tags);
        CHECK(r->n_tags >= 1 && !strcmp(r->tags[0], lang), "%s: the first tag is '%s', not the language '%s'", what, r->n_tags ? r->tags[0] : "", lang);
        for (int i = 0; i < r->n_tags; i++) {
            CHECK(i == 0 || in_file(tags_txt, r->tags[i]), "%s: tag '%s' is not in tags.txt", what, r->tags[i]);
            for (int j = 0; j < i; j++) CHECK(strcmp(r->tags[i], r->tags[j]), "%s: tag '%s' twice", what, r->tags[i]);
        }
        CHECK(r->check[SM_TASK_TAGS][0] == 0, "%s: tags fail their check: %s", what, r->check[SM_TASK_TAGS]);
    }
    if (r->tasks & (1u << SM_TASK_LINKS)) {
        CHECK(r->n_links <= 3, "%s: %d links", what, r->n_links);
        for (int i = 0; i < r->n_links; i++) {
            CHECK(in_file(links_txt, r->links[i]), "%s: link '%s' is not in links.txt", what, r->links[i]);
            for (int j = 0; j < i; j++) CHECK(strcmp(r->links[i], r->links[j]), "%s: link '%s' twice", what, r->links[i]);
        }
        CHECK(r->check[SM_TASK_LINKS][0] == 0, "%s: links fail their check: %s", what, r->check[SM_TASK_LINKS]);
    }
}

/* all four tasks together, then each alone: the same fields; and a second run: the same again */
static void check_tasks(const char *what, sm_meta_worker *w, sm_registry *reg, int expect_shared) {
    sm_meta_params p = sm_meta_default_params();
    sm_meta_result all, again;
    sm_error err = {0};
    CHECK(sm_meta_run(w, reg, "python", snippet, &p, &all, &err) == SM_OK, "%s: run: %s", what, err.msg);
    check_rules(what, &all, "python");
    CHECK(expect_shared ? all.prefill_ms > 0 : all.prefill_ms == 0, "%s: shared prefill %.3f ms", what, all.prefill_ms);
    char *a = to_json(&all, "python");
    CHECK(sm_meta_run(w, reg, "python", snippet, &p, &again, &err) == SM_OK, "%s: run: %s", what, err.msg);
    char *b = to_json(&again, "python");
    CHECK(!strcmp(a, b), "%s: two runs differ:\n  %s\n  %s", what, a, b);
    printf("%s: %s\n  prompt %d tokens, prefill %.1f ms, title %.1f, description %.1f, tags %.1f, links %.1f ms\n", what, a,
           all.n_prompt_tokens, all.prefill_ms, all.task_ms[0], all.task_ms[1], all.task_ms[2], all.task_ms[3]);
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        sm_meta_params one = p;
        one.tasks = 1u << t;
        sm_meta_result r;
        CHECK(sm_meta_run(w, reg, "python", snippet, &one, &r, &err) == SM_OK, "%s: %s alone: %s", what, sm_task_name((sm_task)t), err.msg);
        json_t *x = sm_meta_result_json(&all, "python", 0), *y = sm_meta_result_json(&r, "python", 0);
        const char *name = sm_task_name((sm_task)t);
        CHECK(json_equal(json_object_get(x, name), json_object_get(y, name)), "%s: %s differs alone and with the others", what, name);
        json_decref(x);
        json_decref(y);
        sm_meta_result_free(&r);
    }
    free(a);
    free(b);
    sm_meta_result_free(&all);
    sm_meta_result_free(&again);
}

static void check_registry(const sm_model *m, const char *dir, const char *fingerprint) {
    sm_error err = {0};
    sm_registry *reg = sm_registry_open(m, dir, &err);
    CHECK(reg != NULL, "registry: %s", err.msg);
    if (!reg) return;
    CHECK(!strcmp(sm_registry_fingerprint(reg), fingerprint), "registry: fingerprint differs");
    CHECK(sm_constraint_size(sm_registry_tags(reg)) == 16 && sm_constraint_size(sm_registry_links(reg)) == 4,
          "registry: %d tags, %d links", sm_constraint_size(sm_registry_tags(reg)), sm_constraint_size(sm_registry_links(reg)));
    const char *bad[] = {"../title", "..", ".hidden", "a/b", "", "x\\y", "name with space", "%2e%2e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!sm_registry_valid_name(bad[i]), "name '%s' accepted", bad[i]);
        CHECK(sm_registry_load(reg, bad[i], &err) == SM_EINVAL, "load '%s': %d %s", bad[i], err.code, err.msg);
    }
    CHECK(sm_registry_load(reg, "missing", &err) == SM_EIO, "a missing adapter: %d %s", err.code, err.msg);
    CHECK(sm_registry_load(reg, "title", &err) == SM_EINVAL && strstr(err.msg, "already"), "title loaded twice: %s", err.msg);
    CHECK(sm_registry_load(reg, "extra", &err) == SM_OK, "extra: %s", err.msg);
    CHECK(sm_registry_load(reg, "wrongbase", &err) == SM_EINVAL && strstr(err.msg, "ingerprint"), "an adapter of another base: %d %s", err.code, err.msg);
    sm_registry_info *info = NULL;
    int n = 0;
    CHECK(sm_registry_list(reg, &info, &n) == SM_OK && n == 5, "list: %d adapters (expected 5)", n);
    CHECK(n == 5 && !strcmp(info[0].name, "description") && !strcmp(info[1].name, "extra") && info[1].rank == 4, "list: wrong order or fields");
    free(info);
    const sm_lora *l = sm_registry_acquire(reg, "extra");
    CHECK(l != NULL, "acquire extra");
    CHECK(sm_registry_unload(reg, "extra", &err) == SM_OK, "unload: %s", err.msg);
    CHECK(sm_registry_acquire(reg, "extra") == NULL, "extra still acquirable after unloading");
    CHECK(sm_registry_unload(reg, "extra", &err) == SM_EINVAL, "unloaded twice");
    CHECK(l && l->rank == 4, "an unloaded adapter in use was freed"); /* ASan would see a use after free */
    CHECK(sm_registry_load(reg, "extra", &err) == SM_OK, "reload while the old one is in use: %s", err.msg);
    sm_registry_release(reg, l);
    CHECK(sm_registry_list(reg, &info, &n) == SM_OK && n == 5, "list after reload: %d", n);
    free(info);
    sm_registry_free(reg);
    CHECK(sm_registry_open(m, "/nonexistent/dir", &err) == NULL && err.code == SM_EIO, "a missing directory: %s", err.msg);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char vocab_path[4096];
    snprintf(vocab_path, sizeof vocab_path, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    if (access(vocab_path, R_OK) != 0) { printf("test_metadata: skipped (no %s)\n", vocab_path); return 77; }
    omp_set_num_threads(1); /* a tiny model: threads only add waiting on a busy machine */
    char dir[] = "/tmp/test_metadata.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[4200], std_dir[4200], act_dir[4200], partial_dir[4200], mixed_dir[4200];
    sm_error err = {0};
    sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
    sm_model_shape shape = {.n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_ctx = 1024,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied = 1};
    sm_init_scheme scheme;
    snprintf(path, sizeof path, "%s/base.gguf", dir);
    if (!vocab || sm_init_scheme_preset("decode", &shape, &scheme) || sm_init_write_gguf(path, &shape, &scheme, vocab, SM_TYPE_F32, 5, &err)) {
        fprintf(stderr, "FAIL: base: %s\n", err.msg);
        return 1;
    }
    sm_gguf_close(vocab);
    sm_model *m = sm_model_load(path, &err);
    char fp[65];
    if (!m || sm_model_fingerprint(m, fp)) { fprintf(stderr, "FAIL: load: %s\n", err.msg); return 1; }
    snprintf(std_dir, sizeof std_dir, "%s/std", dir);
    snprintf(act_dir, sizeof act_dir, "%s/act", dir);
    snprintf(partial_dir, sizeof partial_dir, "%s/partial", dir);
    snprintf(mixed_dir, sizeof mixed_dir, "%s/mixed", dir);
    mkdir(std_dir, 0755), mkdir(act_dir, 0755), mkdir(partial_dir, 0755), mkdir(mixed_dir, 0755);
    for (int t = 0; t < 4; t++) {
        write_adapter(m, fp, std_dir, task_files[t], 0, 11 + t);
        write_adapter(m, fp, act_dir, task_files[t], 1, 11 + t);
        write_adapter(m, fp, mixed_dir, task_files[t], t == 1 || t == 3, 11 + t); /* description, links activated */
        if (t < 3) write_adapter(m, fp, partial_dir, task_files[t], 0, 11 + t);
    }
    write_adapter(m, fp, std_dir, "extra", 0, 99);
    write_adapter(m, "0000000000000000000000000000000000000000000000000000000000000000", std_dir, "wrongbase", 0, 98);
    const char *dirs[] = {std_dir, act_dir, mixed_dir};
    for (int i = 0; i < 3; i++) {
        write_file(dirs[i], "tags.txt", tags_txt);
        write_file(dirs[i], "links.txt", links_txt);
    }

    check_registry(m, std_dir, fp);

    sm_meta_worker *w = sm_meta_worker_new(m, 0, &err);
    sm_registry *std_reg = sm_registry_open(m, std_dir, &err);
    sm_registry *act_reg = std_reg ? sm_registry_open(m, act_dir, &err) : NULL;
    if (!w || !act_reg) { fprintf(stderr, "FAIL: %s\n", err.msg); return 1; }
    check_tasks("standard adapters", w, std_reg, 0);
    check_tasks("activated adapters", w, act_reg, 1);
    sm_registry *mixed_reg = sm_registry_open(m, mixed_dir, &err);
    CHECK(mixed_reg != NULL, "mixed: %s", err.msg);
    if (mixed_reg) check_tasks("mixed adapters (a standard task between activated ones)", w, mixed_reg, 1);
    sm_registry_free(mixed_reg);

    /* sampling: repeatable with a seed, the constraints still hold */
    sm_meta_params p = sm_meta_default_params();
    p.sampling.temp = 1.5f;
    for (int seed = 0; seed < 6; seed++) {
        p.sampling.seed = (uint64_t)seed;
        sm_meta_result a, b;
        CHECK(sm_meta_run(w, std_reg, "go", snippet, &p, &a, &err) == SM_OK && sm_meta_run(w, std_reg, "go", snippet, &p, &b, &err) == SM_OK,
              "sampling: %s", err.msg);
        char *x = to_json(&a, "go"), *y = to_json(&b, "go");
        CHECK(!strcmp(x, y), "sampling with seed %d is not repeatable", seed);
        char what[64];
        snprintf(what, sizeof what, "sampling, seed %d", seed);
        check_rules(what, &a, "go");
        free(x), free(y);
        sm_meta_result_free(&a), sm_meta_result_free(&b);
    }

    /* errors */
    sm_meta_result r;
    const sm_meta_params defaults = sm_meta_default_params();
    CHECK(sm_meta_run(w, std_reg, "C++", snippet, &defaults, &r, &err) == SM_EINVAL, "lang 'C++' accepted");
    sm_registry *partial = sm_registry_open(m, partial_dir, &err);
    CHECK(partial && sm_meta_run(w, partial, "python", snippet, &defaults, &r, &err) == SM_EINVAL &&
          strstr(err.msg, "links"), "a missing links adapter: %s", err.msg);
    p = sm_meta_default_params();
    p.tasks = 1u << SM_TASK_TAGS;
    CHECK(partial && sm_meta_run(w, partial, "python", snippet, &p, &r, &err) == SM_OK && r.n_tags == 1,
          "tags with no tags.txt: %d tags (expected the language alone): %s", r.n_tags, err.msg);
    sm_meta_result_free(&r);
    sm_registry_free(partial);

    /* long code in a small context: cut, and the rules still hold */
    sm_meta_worker *small = sm_meta_worker_new(m, 320, &err);
    size_t big_len = 40000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big[i] = i % 40 == 39 ? '\n' : "abcdefgh ="[i % 10];
    big[big_len] = 0;
    CHECK(small && sm_meta_run(small, std_reg, "python", big, &defaults, &r, &err) == SM_OK && r.code_cut &&
          r.n_prompt_tokens + 160 <= 320, "long code: %s (cut %d, %d prompt tokens)", err.msg, r.code_cut, r.n_prompt_tokens);
    check_rules("long code", &r, "python");
    sm_meta_result_free(&r);
    free(big);
    sm_meta_worker_free(small);

    /* plain completion */
    char *text = NULL;
    const char *finish = NULL;
    int n_prompt = 0, n_comp = 0;
    sm_sampler_params greedy = sm_sampler_default_params();
    greedy.temp = 0;
    const sm_lora *title = sm_registry_acquire(std_reg, "title");
    CHECK(sm_meta_complete(w, title, "def add(a, b):", 12, &greedy, NULL, 0, &text, &finish, &n_prompt, &n_comp, &err) == SM_OK &&
          n_comp <= 12 && n_prompt > 3, "complete: %s", err.msg);
    free(text);
    CHECK(sm_meta_complete(w, title, "x", 5000, &greedy, NULL, 0, &text, &finish, &n_prompt, &n_comp, &err) == SM_EINVAL,
          "max_tokens past the context accepted");

    /* swapping adapters is a pointer change: time it */
    const sm_lora *other = sm_registry_acquire(std_reg, "tags");
    float one = 1.0f;
    int n_swaps = 2000;
    double t0 = now_us();
    for (int i = 0; i < n_swaps; i++) sm_context_set_adapters(sm_meta_worker_context(w), i & 1 ? &other : &title, &one, 1, &err);
    double swap_us = (now_us() - t0) / n_swaps;
    printf("adapter swap: %.2f us\n", swap_us);
    CHECK(swap_us < 1000, "an adapter swap takes %.1f us", swap_us);
    sm_registry_release(std_reg, title);
    sm_registry_release(std_reg, other);

    /* helpers */
    CHECK(sm_meta_is_binary("a\0b", 3) && sm_meta_is_binary("\xff\xfe", 2) && !sm_meta_is_binary("é ü\tok\n", 9), "sm_meta_is_binary");
    CHECK(!strcmp(sm_meta_guess_lang(NULL, snippet), "python"), "guess python: %s", sm_meta_guess_lang(NULL, snippet));
    CHECK(!strcmp(sm_meta_guess_lang("x.go", "x"), "go"), "guess from the name");
    CHECK(!strcmp(sm_meta_guess_lang(NULL, "#include <stdio.h>\nint main(void) { printf(\"hi\"); return 0; }\n"), "c"), "guess c");
    CHECK(sm_meta_guess_lang(NULL, "hello world") == NULL, "a guess for prose");

    sm_meta_worker_free(w);
    sm_registry_free(std_reg);
    sm_registry_free(act_reg);
    sm_model_free(m);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) { printf("test_metadata: %d FAILED\n", failures); return 1; }
    printf("test_metadata: ok\n");
    return 0;
}
