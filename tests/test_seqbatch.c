/* test_seqbatch.c: batched decoding of several sequences that share a prefix
 * (sm_context_seqs_begin / sm_forward_seqs) against the one-sequence path it replaces, and the
 * metadata tasks with activated adapters decoded side by side against one after another.
 *
 * For each model (random ones of the StarCoder vocabulary, F32 and Q8_0, and llama2.c's
 * stories260K when the fixture is there): a prefix with no adapter, then five sequences (four
 * with their own random adapter, one with none), each with a marker of its own length and its own
 * number of greedy steps, so that sequences drop out of the batch at different steps. The
 * reference runs each sequence alone (truncate to the prefix, attach its adapter from the
 * prefix on, forward the marker, then one token at a time). The batch must pick the same tokens
 * at every step, and its logits must match within a tolerance for float summation order (a
 * product over 2-5 rows adds in another order than over 1; with one row left it is the same
 * call). At the end, sequence 0 is in the context's own cache: a further sm_forward continues it.
 *
 * Then sm_meta_run with activated adapters, batched (the default) and sequential (params.sequential)
 * give the same JSON, for all four tasks and for pairs of them, greedy and sampled, and for long
 * code cut to a small context.
 */
#include "gguf.h"
#include "llama2c.h"
#include "lora.h"
#include "metadata.h"
#include "model_init.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

enum { N_SEQ = 5, MAX_GEN = 12 };

static sm_lora *random_adapter(const sm_model *m, uint64_t seed) {
    sm_error err = {0};
    sm_lora *l = sm_lora_new(&m->config, 4, 8.0f, 0, SM_LORA_TARGETS_ATTN, &err);
    if (!l) { fprintf(stderr, "FAIL: adapter: %s\n", err.msg); exit(1); }
    sm_lora_init(l, seed);
    uint64_t state = seed * 7919 + 1;
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            for (size_t i = 0; pair->b && i < (size_t)pair->out * l->rank; i++) pair->b[i] = 0.2f * (2 * sm_rng_f32(&state) - 1);
        }
    return l;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The batched decode of N_SEQ sequences against each alone, on model m. */
static void check_model(const char *what, const sm_model *m, double tol) {
    sm_error err = {0};
    int n_vocab = m->config.n_vocab;
    sm_context *c = sm_context_new(m, 256, 64, &err);
    if (!c) { fprintf(stderr, "FAIL %s: context: %s\n", what, err.msg); failures++; return; }
    sm_lora *owned[N_SEQ] = {0};
    const sm_lora *adapters[N_SEQ];
    float scales[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        owned[s] = s == 2 ? NULL : random_adapter(m, 31 + (uint64_t)s); /* sequence 2 runs the base alone */
        adapters[s] = owned[s];
        scales[s] = s == 3 ? 0.5f : 1.0f;
    }
    uint64_t state = 12345;
    int prefix[40], markers[N_SEQ][4], n_marker[N_SEQ], n_gen[N_SEQ];
    int n_prefix = (int)(sizeof prefix / sizeof prefix[0]);
    for (int i = 0; i < n_prefix; i++) prefix[i] = 1 + (int)(sm_rng_f32(&state) * (float)(n_vocab - 2));
    for (int s = 0; s < N_SEQ; s++) {
        n_marker[s] = 1 + s % 4;
        n_gen[s] = MAX_GEN - 2 * s; /* 12, 10, 8, 6, 4: the batch shrinks as it goes */
        for (int i = 0; i < n_marker[s]; i++) markers[s][i] = 1 + (int)(sm_rng_f32(&state) * (float)(n_vocab - 2));
    }
    float *ref = malloc(sizeof(float) * N_SEQ * (MAX_GEN + 1) * (size_t)n_vocab);
    float *logits = malloc(sizeof(float) * N_SEQ * (size_t)n_vocab);
    int ref_ids[N_SEQ][MAX_GEN + 1];

    /* the reference: each sequence alone */
    sm_context_set_adapter_start(c, 0);
    CHECK(sm_forward(c, prefix, n_prefix, NULL, 0, &err) == SM_OK, "%s: prefix: %s", what, err.msg);
    for (int s = 0; s < N_SEQ; s++) {
        float *row = ref + (size_t)s * (MAX_GEN + 1) * n_vocab;
        CHECK(sm_context_truncate(c, n_prefix, &err) == SM_OK, "%s: truncate", what);
        if (adapters[s]) CHECK(sm_context_set_adapters(c, &adapters[s], &scales[s], 1, &err) == SM_OK, "%s: set: %s", what, err.msg);
        else sm_context_set_adapters(c, NULL, NULL, 0, NULL);
        sm_context_set_adapter_start(c, n_prefix);
        CHECK(sm_forward(c, markers[s], n_marker[s], row, 0, &err) == SM_OK, "%s: marker: %s", what, err.msg);
        for (int k = 0; k < n_gen[s]; k++) {
            ref_ids[s][k] = argmax(row + (size_t)k * n_vocab, n_vocab);
            if (k + 1 < n_gen[s])
                CHECK(sm_forward(c, &ref_ids[s][k], 1, row + (size_t)(k + 1) * n_vocab, 0, &err) == SM_OK, "%s: step: %s", what, err.msg);
        }
    }
    sm_context_set_adapters(c, NULL, NULL, 0, NULL);
    sm_context_set_adapter_start(c, 0);

    /* the batch */
    CHECK(sm_context_truncate(c, n_prefix, &err) == SM_OK, "%s: truncate", what);
    CHECK(sm_context_seqs_begin(c, N_SEQ, adapters, scales, 4 + MAX_GEN, &err) == SM_OK, "%s: begin: %s", what, err.msg);
    CHECK(sm_context_n_seq(c) == N_SEQ, "%s: %d sequences", what, sm_context_n_seq(c));
    int tokens[N_SEQ * 4], n_tokens[N_SEQ], n = 0;
    for (int s = 0; s < N_SEQ; s++) {
        n_tokens[s] = n_marker[s];
        for (int i = 0; i < n_marker[s]; i++) tokens[n++] = markers[s][i];
    }
    double max_diff = 0;
    int same = 1;
    CHECK(sm_forward_seqs(c, tokens, n_tokens, logits, &err) == SM_OK, "%s: markers: %s", what, err.msg);
    for (int k = 0;; k++) {
        int j = 0, running = 0;
        for (int s = 0; s < N_SEQ; s++) {
            if (n_tokens[s] == 0) continue;
            const float *got = logits + (size_t)j++ * n_vocab, *want = ref + ((size_t)s * (MAX_GEN + 1) + k) * n_vocab;
            for (int i = 0; i < n_vocab; i++) {
                double d = fabs((double)got[i] - want[i]);
                if (!(d <= max_diff)) max_diff = d; /* NaN too */
            }
            int id = argmax(got, n_vocab);
            if (id != ref_ids[s][k]) {
                same = 0;
                CHECK(0, "%s: sequence %d step %d: token %d batched, %d alone", what, s, k, id, ref_ids[s][k]);
            }
            CHECK(sm_context_seq_pos(c, s) == n_prefix + n_marker[s] + k, "%s: sequence %d at position %d", what, s, sm_context_seq_pos(c, s));
            tokens[running] = ref_ids[s][k]; /* go on with the reference's tokens, so a difference is reported once */
            n_tokens[s] = k + 1 < n_gen[s];
            running += n_tokens[s];
        }
        if (running == 0) break;
        /* tokens were written in sequence order, only for the sequences going on */
        CHECK(sm_forward_seqs(c, tokens, n_tokens, logits, &err) == SM_OK, "%s: step %d: %s", what, k, err.msg);
    }
    printf("%s: %d sequences batched vs alone: tokens %s, max |logit difference| %.3g (tolerance %.g)\n", what, N_SEQ,
           same ? "identical" : "DIFFER", max_diff, tol);
    CHECK(max_diff <= tol, "%s: logits differ by %.3g", what, max_diff);

    /* errors: a sequence past its room, nothing to run, not split */
    int none[N_SEQ] = {0}, too_many[N_SEQ] = {0};
    too_many[1] = 4 + MAX_GEN;
    CHECK(sm_forward_seqs(c, tokens, none, logits, &err) == SM_EINVAL, "%s: an empty pass accepted", what);
    CHECK(sm_forward_seqs(c, tokens, too_many, logits, &err) == SM_EINVAL, "%s: an overflow accepted", what);
    int bad[N_SEQ] = {1, 0, 0, 0, 0}, bad_token = n_vocab;
    CHECK(sm_forward_seqs(c, &bad_token, bad, logits, &err) == SM_EINVAL, "%s: a token out of range accepted", what);

    /* sequence 0 stays in the context: a plain forward continues it exactly as it would alone */
    int pos0 = sm_context_seq_pos(c, 0);
    sm_context_seqs_end(c);
    CHECK(sm_context_n_seq(c) == 0 && sm_context_pos(c) == pos0, "%s: after the split: %d sequences, position %d (expected %d)", what,
          sm_context_n_seq(c), sm_context_pos(c), pos0);
    CHECK(sm_forward_seqs(c, tokens, bad, logits, &err) == SM_EINVAL, "%s: a batch after the split ended", what);
    sm_context_free(c);
    for (int s = 0; s < N_SEQ; s++) sm_lora_free(owned[s]);
    free(ref);
    free(logits);
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static char *to_json(const sm_meta_result *r) {
    json_t *j = sm_meta_result_json(r, "python", 0);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

/* sm_meta_run, activated adapters: batched and sequential give the same answers. */
static void check_meta(const sm_model *m, const char *dir) {
    sm_error err = {0};
    char fp[65];
    if (sm_model_fingerprint(m, fp)) { failures++; return; }
    static const char *names[] = {"title", "description", "tags", "links"};
    for (int t = 0; t < 4; t++) {
        sm_lora *l = random_adapter(m, 11 + (uint64_t)t);
        snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", fp);
        snprintf(l->task, sizeof l->task, "%s", names[t]);
        l->activated = 1;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, names[t]);
        if (sm_lora_save_gguf(l, path, &err)) { fprintf(stderr, "FAIL: %s\n", err.msg); exit(1); }
        sm_lora_free(l);
    }
    write_file(dir, "tags.txt", "python\nsorting\nalgorithm\nrecursion\nlinked-list\njson\nregex\nhttp\n");
    write_file(dir, "links.txt", "https://docs.python.org/3/library/functions.html#sorted\nhttps://docs.python.org/3/library/json.html\n");
    sm_registry *reg = sm_registry_open(m, dir, &err);
    sm_meta_worker *w = reg ? sm_meta_worker_new(m, 0, &err) : NULL;
    if (!w) { fprintf(stderr, "FAIL: meta: %s\n", err.msg); failures++; sm_registry_free(reg); return; }
    const char *code = "def merge_sorted(a, b):\n    \"\"\"Merge two sorted lists.\"\"\"\n    out = []\n    i = j = 0\n"
                       "    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n"
                       "        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n";
    const unsigned masks[] = {SM_TASK_ALL, (1u << SM_TASK_TITLE) | (1u << SM_TASK_TAGS), (1u << SM_TASK_DESCRIPTION) | (1u << SM_TASK_LINKS)};
    for (int temp = 0; temp < 2; temp++)
        for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
            sm_meta_params p = sm_meta_default_params();
            p.tasks = masks[i];
            if (temp) p.sampling.temp = 1.2f, p.sampling.seed = 7;
            sm_meta_result a, b;
            p.sequential = 1;
            CHECK(sm_meta_run(w, reg, "python", code, &p, &a, &err) == SM_OK, "meta sequential: %s", err.msg);
            p.sequential = 0;
            CHECK(sm_meta_run(w, reg, "python", code, &p, &b, &err) == SM_OK, "meta batched: %s", err.msg);
            char *x = to_json(&a), *y = to_json(&b);
            CHECK(!strcmp(x, y), "meta, tasks 0x%x, temp %d: sequential and batched differ:\n  %s\n  %s", masks[i], temp, x, y);
            int gen_a = 0, gen_b = 0;
            for (int t = 0; t < SM_TASK_COUNT; t++) gen_a += a.n_generated[t], gen_b += b.n_generated[t];
            CHECK(gen_a == gen_b && a.prefill_ms > 0 && b.prefill_ms > 0, "meta: %d vs %d tokens generated", gen_a, gen_b);
            printf("meta, tasks 0x%x, temp %d: %d tokens, sequential %.1f ms, batched %.1f ms: %s\n", masks[i], temp, gen_b, a.total_ms,
                   b.total_ms, !strcmp(x, y) ? "same" : "DIFFERENT");
            free(x), free(y);
            sm_meta_result_free(&a), sm_meta_result_free(&b);
        }
    /* long code cut to a small context: the same side by side as one after another */
    sm_meta_worker *small = sm_meta_worker_new(m, 320, &err);
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big[i] = i % 40 == 39 ? '\n' : "abcdefgh ="[i % 10];
    big[big_len] = 0;
    sm_meta_params p = sm_meta_default_params();
    sm_meta_result a, b;
    p.sequential = 1;
    CHECK(small && sm_meta_run(small, reg, "python", big, &p, &a, &err) == SM_OK && a.code_cut, "small context, sequential: %s", err.msg);
    p.sequential = 0;
    CHECK(small && sm_meta_run(small, reg, "python", big, &p, &b, &err) == SM_OK && b.code_cut, "small context, batched: %s", err.msg);
    char *x = to_json(&a), *y = to_json(&b);
    CHECK(x && y && !strcmp(x, y), "small context: sequential and batched differ:\n  %s\n  %s", x, y);
    free(x), free(y), free(big);
    sm_meta_result_free(&a), sm_meta_result_free(&b);
    sm_meta_worker_free(small);
    sm_meta_worker_free(w);
    sm_registry_free(reg);
}

static sm_model *random_model(const char *vocab_path, const char *path, int type) {
    sm_error err = {0};
    sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
    sm_model_shape shape = {.n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_ctx = 1024,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied = 1};
    sm_init_scheme scheme;
    if (!vocab || sm_init_scheme_preset("decode", &shape, &scheme) || sm_init_write_gguf(path, &shape, &scheme, vocab, type, 5, &err)) {
        fprintf(stderr, "FAIL: base: %s\n", err.msg);
        exit(1);
    }
    sm_gguf_close(vocab);
    sm_model *m = sm_model_load(path, &err);
    if (!m) { fprintf(stderr, "FAIL: load: %s\n", err.msg); exit(1); }
    return m;
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char vocab_path[4096], path[4200];
    snprintf(vocab_path, sizeof vocab_path, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    if (access(vocab_path, R_OK) != 0) { printf("test_seqbatch: skipped (no %s)\n", vocab_path); return 77; }
    omp_set_num_threads(2);
    char dir[] = "/tmp/test_seqbatch.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }

    snprintf(path, sizeof path, "%s/f32.gguf", dir);
    sm_model *m = random_model(vocab_path, path, SM_TYPE_F32);
    check_model("random f32", m, 1e-4);
    char meta_dir[4200];
    snprintf(meta_dir, sizeof meta_dir, "%s/adapters", dir);
    mkdir(meta_dir, 0755);
    check_meta(m, meta_dir);
    sm_model_free(m);

    snprintf(path, sizeof path, "%s/q8.gguf", dir);
    m = random_model(vocab_path, path, SM_TYPE_Q8_0);
    check_model("random q8_0", m, 1e-4);
    sm_model_free(m);

    char ckpt[4200], tok[4200];
    snprintf(ckpt, sizeof ckpt, "%s/fixtures/stories260K/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/fixtures/stories260K/tok512.bin", shared);
    snprintf(path, sizeof path, "%s/stories.gguf", dir);
    sm_error err = {0};
    if (access(ckpt, R_OK) == 0 && access(tok, R_OK) == 0) {
        if (sm_llama2c_convert(ckpt, tok, path, NULL, &err) || !(m = sm_model_load(path, &err))) {
            fprintf(stderr, "FAIL: stories260K: %s\n", err.msg);
            failures++;
        } else {
            check_model("stories260K", m, 1e-4);
            sm_model_free(m);
        }
    } else {
        printf("stories260K: skipped (no fixture)\n");
    }

    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) { fprintf(stderr, "test_seqbatch: %d failures\n", failures); return 1; }
    printf("test_seqbatch: ok\n");
    return 0;
}
