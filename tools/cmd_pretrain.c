/* cmd_pretrain.c: `snipmeta pretrain`: a base model from random weights (model_init.h) trained
 * on text files with the same loop as `snipmeta train --full`. */
#include "cli.h"
#include "train_cli.h"

#include "batch.h"
#include "gguf.h"
#include "model.h"
#include "model_init.h"
#include "sha256.h"
#include "tensor.h"
#include "train.h"
#include "train_model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta pretrain --corpus PATH... --vocab VOCAB.gguf (--config NAME | --n-embd E\n"
            "                         --n-layer L --n-head H [--n-head-kv K] --n-ff F) -o BASE.gguf [options]\n"
            "\n"
            "Pretrains a Llama-architecture model from seeded random weights (the gpt2 init scheme)\n"
            "on text: every file of the corpus (a directory: its files, in name order) is one\n"
            "document, [BOS] text EOS, cut into --seq + 1 token chunks; every 100th chunk is held\n"
            "out for the validation loss. The tokenizer is VOCAB.gguf's (a vocabulary or a model).\n"
            "\n"
            "model:\n"
            "  --config NAME      a preset; flags after it override it:\n"
            "                       default       the bundled base (models/README.md): its shape and\n"
            "                                     its recipe (seq, batch, steps, lr, warmup, wd,\n"
            "                                     validation, checkpoints, seed)\n"
            "                       smollm2-135m  SmolLM2-135M's shape\n"
            "  --n-embd E --n-layer L --n-head H --n-head-kv K --n-ff F   the shape by hand\n"
            "  --ctx N            llama.context_length (default 2048, at least --seq)\n"
            "  --rope-theta X     (default 10000)\n"
            "  --tied             tie the output projection to token_embd\n"
            "  --type T           the matrices' type in BASE.gguf: f32 (default), f16, bf16, q8_0\n"
            "  --val-every K      hold out every K-th chunk for validation (0: none; default 100)\n"
            "\n");
    train_flags_usage(f);
    fprintf(f, "\nDefaults for pretraining: lr 1e-3, warmup 5%% of the steps, wd 0.1.\n"
               "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

/* `--config default`: the bundled base, shape and recipe, as the flags it stands for (so that
 * flags after it override any of them). models/README.md records the run it made. */
static const char *const default_recipe[] = {
    "--n-embd", "256", "--n-layer", "8", "--n-head", "4", "--n-head-kv", "4", "--n-ff", "768", "--tied",
    "--ctx", "2048", "--rope-theta", "10000", "--seq", "512", "--batch", "8", "--steps", "1400",
    "--lr", "2e-3", "--warmup", "70", "--wd", "0.1", "--val-every", "1000", "--eval-every", "350",
    "--ckpt-every", "100", "--seed", "1"};
#define N_DEFAULT_RECIPE ((int)(sizeof default_recipe / sizeof *default_recipe))

/* argv with every `--config default` replaced by default_recipe (a new array of pointers into
 * argv and the recipe; the caller frees it), or NULL when out of memory. */
static char **expand_default(int argc, char **argv, int *out_argc) {
    char **v = malloc(((size_t)argc * N_DEFAULT_RECIPE + 1) * sizeof *v);
    if (!v) return NULL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--config") && !strcmp(argv[i + 1], "default")) {
            for (int k = 0; k < N_DEFAULT_RECIPE; k++) v[n++] = (char *)default_recipe[k];
            i++;
        } else {
            v[n++] = argv[i];
        }
    }
    v[n] = NULL;
    *out_argc = n;
    return v;
}

static int pretrain_main(int argc, char **argv);

int cmd_pretrain(int argc, char **argv) {
    int n = 0;
    char **v = expand_default(argc, argv, &n);
    if (!v) { fprintf(stderr, "snipmeta pretrain: out of memory\n"); return EXIT_FAIL; }
    int rc = pretrain_main(n, v);
    free(v);
    return rc;
}

static int pretrain_main(int argc, char **argv) {
    const char *vocab_path = NULL, *out = NULL;
    const char **corpus = calloc((size_t)argc, sizeof *corpus);
    int n_corpus = 0, type = SM_TYPE_F32, val_every = 100, warmup_set = 0;
    sm_model_shape shape = {.n_ctx = 2048, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    train_flags tf;
    train_flags_init(&tf);
    if (!corpus) { fprintf(stderr, "snipmeta pretrain: out of memory\n"); return EXIT_FAIL; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(corpus); return EXIT_OK; }
        if (!strcmp(a, "--warmup")) warmup_set = 1;
        int k = train_flags_parse(&tf, "pretrain", argc, argv, &i);
        if (k < 0) { free(corpus); return EXIT_USAGE; }
        if (k > 0) continue;
        if (!strcmp(a, "--tied")) { shape.tied = 1; continue; }
        if (!strcmp(a, "--corpus")) {
            while (i + 1 < argc && argv[i + 1][0] != '-') corpus[n_corpus++] = argv[++i];
            continue;
        }
        if (i + 1 >= argc) { free(corpus); return cli_usage_error("pretrain", "%s needs a value (or is not an option)", a); }
        const char *v = argv[++i];
        long long n = 0;
        double x = 0;
        int *dim = NULL;
        if (!strcmp(a, "--vocab")) vocab_path = v;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--config")) {
            if (sm_model_shape_preset(v, &shape)) { free(corpus); return cli_usage_error("pretrain", "unknown --config '%s'", v); }
        } else if (!strcmp(a, "--type")) {
            type = sm_type_from_name(v);
            if (type != SM_TYPE_F32 && type != SM_TYPE_F16 && type != SM_TYPE_BF16 && type != SM_TYPE_Q8_0) {
                free(corpus);
                return cli_usage_error("pretrain", "--type wants f32, f16, bf16 or q8_0, not '%s'", v);
            }
        } else if (!strcmp(a, "--rope-theta")) {
            if (cli_parse_float(v, &x) || !(x > 0)) { free(corpus); return cli_usage_error("pretrain", "bad --rope-theta '%s'", v); }
            shape.rope_theta = (float)x;
        } else if (!strcmp(a, "--val-every")) {
            if (cli_parse_int(v, 0, 1 << 30, &n)) { free(corpus); return cli_usage_error("pretrain", "bad --val-every '%s'", v); }
            val_every = (int)n;
        } else {
            if (!strcmp(a, "--n-embd")) dim = &shape.n_embd;
            else if (!strcmp(a, "--n-layer")) dim = &shape.n_layer;
            else if (!strcmp(a, "--n-head")) dim = &shape.n_head;
            else if (!strcmp(a, "--n-head-kv")) dim = &shape.n_head_kv;
            else if (!strcmp(a, "--n-ff")) dim = &shape.n_ff;
            else if (!strcmp(a, "--ctx")) dim = &shape.n_ctx;
            if (!dim) { free(corpus); return cli_usage_error("pretrain", "unknown option '%s'", a); }
            if (cli_parse_int(v, 1, 1 << 24, &n)) { free(corpus); return cli_usage_error("pretrain", "%s wants a positive integer, not '%s'", a, v); }
            *dim = (int)n;
        }
    }
    if (!n_corpus) { free(corpus); return cli_usage_error("pretrain", "--corpus PATH... is required"); }
    if (!vocab_path) { free(corpus); return cli_usage_error("pretrain", "--vocab VOCAB.gguf is required"); }
    if (!out) { free(corpus); return cli_usage_error("pretrain", "-o BASE.gguf is required"); }
    if (tf.steps_set && tf.epochs_set) { free(corpus); return cli_usage_error("pretrain", "give --steps or --epochs, not both"); }
    if (!shape.n_head_kv) shape.n_head_kv = shape.n_head;
    sm_train_config *cfg = &tf.cfg;
    if (shape.n_ctx < cfg->seq) shape.n_ctx = cfg->seq;
    if (!tf.lr_set) cfg->lr = 1e-3f;
    if (!tf.wd_set) cfg->weight_decay = 0.1f;
    cli_set_threads((int)tf.threads);

    sm_error err = {0};
    int rc = EXIT_OK;
    sm_dist *dist = NULL; /* under mpirun: this rank of the data-parallel group (train.h) */
    if (sm_dist_init(&dist, &err)) return cli_report(&err);
    int root = sm_dist_rank(dist) == 0, interrupted = 0;
    cfg->dist = dist;
    if (!root) tf.quiet = 1, tf.log_path = NULL; /* rank 0 alone prints and writes files */
    sm_gguf *vocab = NULL;
    sm_model *m = NULL;
    sm_train_model *tm = NULL;
    sm_examples *train = NULL, *val = NULL;
    char *init_path = NULL, *ckpt = NULL, *identity = NULL;
    sm_init_scheme scheme;
    if (!(vocab = sm_gguf_open(vocab_path, &err))) { rc = cli_report(&err); goto done; }
    int64_t tokens_key = sm_gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (tokens_key < 0 || sm_gguf_kv_type(vocab, tokens_key) != SM_GGUF_ARRAY) {
        fprintf(stderr, "snipmeta pretrain: %s: expected a vocabulary (tokenizer.ggml.tokens), found none\n", vocab_path);
        rc = EXIT_USAGE;
        goto done;
    }
    shape.n_vocab = (int)sm_gguf_arr_n(vocab, tokens_key);
    if (sm_model_shape_check(&shape, SM_TYPE_F32, &err)) { rc = cli_report(&err); goto done; }
    sm_init_scheme_preset("gpt2", &shape, &scheme);
    size_t n = strlen(out) + 32;
    init_path = malloc(n);
    ckpt = malloc(n);
    if (!init_path || !ckpt) { fprintf(stderr, "snipmeta pretrain: out of memory\n"); rc = EXIT_FAIL; goto done; }
    snprintf(init_path, n, "%s.init.%ld.gguf", out, (long)getpid());
    snprintf(ckpt, n, "%s.ckpt", out);
    /* the random model goes to a file that is mapped and unlinked at once: the same seed gives
     * the same file, so a resumed run starts from the same model */
    if (sm_init_write_gguf(init_path, &shape, &scheme, vocab, SM_TYPE_F32, cfg->seed, &err)) { rc = cli_report(&err); goto done; }
    m = sm_model_load(init_path, &err);
    unlink(init_path);
    if (!m) { rc = cli_report(&err); goto done; }
    if (sm_examples_from_text(&train, &val, corpus, n_corpus, m->tokenizer, cfg->seq + 1, val_every, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    if (val && val->n == 0) { sm_examples_free(val); val = NULL; }
    if (!(tm = sm_train_model_new(m, NULL, SM_TRAIN_FULL, cfg->batch, cfg->seq, 0.0f, cfg->seed, &err))) { rc = cli_report(&err); goto done; }
    if (!tf.steps_set) cfg->steps = sm_train_steps_for_epochs(train, cfg->batch, cfg->seq, cfg->accum, cfg->epochs, cfg->seed);
    if (!warmup_set) cfg->warmup = cfg->steps / 20;
    if (!tf.eval_set && val) cfg->eval_every = cfg->steps >= 10 ? (int)(cfg->steps / 10) : 1;

    char hash[65];
    sm_sha256_hex(hash, train->hash);
    json_t *id = json_object();
    json_object_set_new(id, "command", json_string("pretrain"));
    json_object_set_new(id, "corpus_sha256", json_string(hash));
    json_object_set_new(id, "seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(id, "n_vocab", json_integer(m->config.n_vocab));
    json_object_set_new(id, "n_embd", json_integer(shape.n_embd));
    json_object_set_new(id, "n_layer", json_integer(shape.n_layer));
    json_object_set_new(id, "n_head", json_integer(shape.n_head));
    json_object_set_new(id, "n_head_kv", json_integer(shape.n_head_kv));
    json_object_set_new(id, "n_ff", json_integer(shape.n_ff));
    json_object_set_new(id, "n_ctx", json_integer(shape.n_ctx));
    json_object_set_new(id, "tied", json_boolean(shape.tied));
    json_object_set_new(id, "val_every", json_integer(val_every));
    identity = json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(id);
    cfg->identity = identity;
    cfg->ckpt_path = tf.ckpt_path ? tf.ckpt_path : ckpt;
    if (!tf.quiet) {
        size_t np = 0;
        sm_train_params(tm, &np);
        fprintf(stderr, "snipmeta pretrain: %zu parameters, %d training chunks (%zu tokens), %d validation; %ld steps\n", np,
                train->n, train->n_targets, val ? val->n : 0, cfg->steps);
    }
    if ((rc = train_cli_start(&tf, "pretrain"))) goto done;
    sm_train_result res;
    int trc = sm_train_run(tm, train, val, cfg, &res, &err);
    train_cli_finish(&tf);
    if (trc) { rc = cli_report(&err); goto done; }
    if (res.interrupted) {
        interrupted = 1;
        if (root)
            fprintf(stderr, "snipmeta pretrain: stopped at step %ld; checkpoint %s (continue with --resume)\n", res.steps, cfg->ckpt_path);
        rc = EXIT_FAIL;
        goto done;
    }
    if (!root) goto done; /* rank 0 alone writes the outputs */
    if (sm_train_model_save_gguf(tm, out, type, &err)) { rc = cli_report(&err); goto done; }
    if (!tf.keep_ckpt) unlink(cfg->ckpt_path);
    if (!tf.quiet) {
        fprintf(stderr, "snipmeta pretrain: %ld steps, final loss %.4f", res.steps, res.final_loss);
        if (!isnan(res.first_val)) fprintf(stderr, ", validation loss %.4f -> %.4f", res.first_val, res.last_val);
        fprintf(stderr, ", %.1f s; wrote %s\n", res.elapsed_s, out);
    }
done:
    if (rc != EXIT_OK && !interrupted) sm_dist_abort(dist, rc); /* an error on one rank ends them all */
    sm_train_model_free(tm);
    sm_examples_free(train);
    sm_examples_free(val);
    sm_model_free(m);
    sm_gguf_close(vocab);
    free(init_path);
    free(ckpt);
    free(identity);
    free(corpus);
    sm_dist_finalize(dist);
    return rc;
}
