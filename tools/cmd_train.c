/* cmd_train.c: `snipmeta train`: a LoRA adapter (or, with --full, a fully fine-tuned model) for
 * one task, from the task's JSONL splits, on a base model. The loop is train.c; this file reads
 * the data, builds the adapter and the train model, and writes the outputs. */
#include "cli.h"
#include "train_cli.h"

#include "batch.h"
#include "lora.h"
#include "model.h"
#include "sha256.h"
#include "tensor.h"
#include "train.h"
#include "train_model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta train -m BASE.gguf --task T --data DIR -o OUT [options]\n"
            "\n"
            "Trains a LoRA adapter for task T on a frozen base model (any stored type, quantized\n"
            "included) and writes it as a GGUF LoRA adapter to OUT (and as PEFT with --peft DIR);\n"
            "with --full, trains every weight and writes a GGUF model to OUT. The data are\n"
            "DIR/T/train.jsonl (or DIR/train.jsonl), one {\"prompt\", \"completion\"} per line as\n"
            "`snipmeta dataset` writes them; the loss covers the completion and EOS only. When\n"
            "DIR/T/validation.jsonl (or DIR/validation.jsonl) exists, its loss is measured every\n"
            "--eval-every steps.\n"
            "\n"
            "adapter:\n"
            "  --rank R           LoRA rank (default 8)\n"
            "  --alpha A          LoRA alpha (default 2 * rank); the scale is alpha / rank\n"
            "  --rslora           scale alpha / sqrt(rank)\n"
            "  --activated        an activated adapter: on only from the task's marker token (the\n"
            "                     prompt before it runs on the base alone, so the four tasks can\n"
            "                     share one prefill of the snippet when serving)\n"
            "  --targets LIST     projections: q,k,v,o,gate,up,down, attn, mlp, all (default q,k,v,o)\n"
            "  --dropout P        dropout on the adapters' input (default 0)\n"
            "  --peft DIR         also write the adapter as PEFT (adapter_model.safetensors + config)\n"
            "  --full             full fine-tune instead of LoRA (default lr 5e-5, wd 0.01)\n"
            "  --type T           --full: the matrices' type in OUT: f32 (default), f16, bf16, q8_0\n"
            "\n");
    train_flags_usage(f);
    fprintf(f,
            "\nDefaults for LoRA: lr 2e-4, wd 0, 1 epoch. SIGINT or SIGTERM writes a checkpoint\n"
            "and exits 1; --resume continues. stdout stays empty; progress goes to stderr.\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

/* DIR/TASK/NAME when it exists, else DIR/NAME. Returns a new string. */
static char *data_file(const char *dir, const char *task, const char *name) {
    size_t n = strlen(dir) + strlen(task) + strlen(name) + 3;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/%s/%s", dir, task, name);
    if (access(p, F_OK) == 0) return p;
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

typedef struct {
    const char *model, *task, *data, *out, *peft;
    int rank, rslora, full, type, activated;
    double alpha, dropout;
    unsigned targets;
    train_flags tf;
} options;

static int parse_args(int argc, char **argv, options *o) {
    train_flags_init(&o->tf);
    o->rank = 8;
    o->alpha = -1;
    o->targets = SM_LORA_TARGETS_ATTN;
    o->type = SM_TYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        int k = train_flags_parse(&o->tf, "train", argc, argv, &i);
        if (k < 0) return EXIT_USAGE;
        if (k > 0) continue;
        if (!strcmp(a, "--full")) { o->full = 1; continue; }
        if (!strcmp(a, "--rslora")) { o->rslora = 1; continue; }
        if (!strcmp(a, "--activated")) { o->activated = 1; continue; }
        if (i + 1 >= argc) return cli_usage_error("train", "%s needs a value (or is not an option)", a);
        const char *v = argv[++i];
        long long n;
        double x;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--task")) o->task = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "-o")) o->out = v;
        else if (!strcmp(a, "--peft")) o->peft = v;
        else if (!strcmp(a, "--rank")) {
            if (cli_parse_int(v, 1, 4096, &n)) return cli_usage_error("train", "--rank wants an integer in [1, 4096], not '%s'", v);
            o->rank = (int)n;
        } else if (!strcmp(a, "--alpha")) {
            if (cli_parse_float(v, &x) || !(x > 0)) return cli_usage_error("train", "--alpha wants a number > 0, not '%s'", v);
            o->alpha = x;
        } else if (!strcmp(a, "--dropout")) {
            if (cli_parse_float(v, &x) || !(x >= 0 && x < 1)) return cli_usage_error("train", "--dropout wants a number in [0, 1), not '%s'", v);
            o->dropout = x;
        } else if (!strcmp(a, "--targets")) {
            if (sm_lora_parse_targets(v, &o->targets) || !o->targets)
                return cli_usage_error("train", "--targets wants a list of q, k, v, o, gate, up, down, attn, mlp, all; not '%s'", v);
        } else if (!strcmp(a, "--type")) {
            o->type = sm_type_from_name(v);
            if (o->type != SM_TYPE_F32 && o->type != SM_TYPE_F16 && o->type != SM_TYPE_BF16 && o->type != SM_TYPE_Q8_0)
                return cli_usage_error("train", "--type wants f32, f16, bf16 or q8_0, not '%s'", v);
        } else {
            return cli_usage_error("train", "unknown option '%s'", a);
        }
    }
    if (o->activated && o->full) return cli_usage_error("train", "--activated is an adapter setting; --full trains no adapter");
    if (!o->model) return cli_usage_error("train", "-m BASE.gguf is required");
    if (!o->task) return cli_usage_error("train", "--task is required");
    if (!o->data) return cli_usage_error("train", "--data DIR is required");
    if (!o->out) return cli_usage_error("train", "-o OUT is required");
    if (o->full && o->peft) return cli_usage_error("train", "--peft is for adapters, not --full");
    if (o->tf.steps_set && o->tf.epochs_set) return cli_usage_error("train", "give --steps or --epochs, not both");
    if (o->alpha < 0) o->alpha = 2.0 * o->rank;
    if (!o->tf.lr_set) o->tf.cfg.lr = o->full ? 5e-5f : 2e-4f;
    if (!o->tf.wd_set) o->tf.cfg.weight_decay = o->full ? 0.01f : 0.0f;
    return 0;
}

static void hex32(char out[65], const uint8_t d[32]) { sm_sha256_hex(out, d); }

int cmd_train(int argc, char **argv) {
    options o = {0};
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc < 0 ? EXIT_OK : prc;
    sm_train_config *cfg = &o.tf.cfg;
    cli_set_threads((int)o.tf.threads);

    sm_error err = {0};
    int rc = EXIT_OK;
    sm_dist *dist = NULL; /* under mpirun: this rank of the data-parallel group (train.h) */
    if (sm_dist_init(&dist, &err)) return cli_report(&err);
    int root = sm_dist_rank(dist) == 0, interrupted = 0;
    cfg->dist = dist;
    if (!root) o.tf.quiet = 1, o.tf.log_path = NULL; /* rank 0 alone prints and writes files */
    sm_model *m = NULL;
    sm_lora *lora = NULL;
    sm_train_model *tm = NULL;
    sm_examples *train = NULL, *val = NULL;
    char *train_path = data_file(o.data, o.task, "train.jsonl");
    char *val_path = data_file(o.data, o.task, "validation.jsonl");
    char *ckpt = NULL, *identity = NULL;
    char fp[65] = "", data_hash[65] = "", val_hash[65] = "";

    if (!(m = sm_model_load(o.model, &err))) { rc = cli_report(&err); goto done; }
    if (sm_examples_from_jsonl(&train, train_path, m->tokenizer, cfg->seq + 1, &err)) { rc = cli_report(&err); goto done; }
    if (access(val_path, F_OK) == 0 && sm_examples_from_jsonl(&val, val_path, m->tokenizer, cfg->seq + 1, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    hex32(data_hash, train->hash);
    if (val) hex32(val_hash, val->hash);
    if (sm_model_fingerprint(m, fp)) { fprintf(stderr, "snipmeta train: out of memory\n"); rc = EXIT_FAIL; goto done; }

    if (!o.full) {
        if (!(lora = sm_lora_new(&m->config, o.rank, (float)o.alpha, o.rslora, o.targets, &err))) { rc = cli_report(&err); goto done; }
        sm_lora_init(lora, cfg->seed);
        snprintf(lora->task, sizeof lora->task, "%s", o.task);
        memcpy(lora->base_fingerprint, fp, sizeof fp);
        lora->prompt_format = 1;
        lora->activated = o.activated;
        cfg->activated = o.activated;
    }
    if (!(tm = sm_train_model_new(m, lora, o.full ? SM_TRAIN_FULL : SM_TRAIN_LORA, cfg->batch, cfg->seq, (float)o.dropout,
                                  cfg->seed, &err))) {
        rc = cli_report(&err);
        goto done;
    }
    if (!o.tf.steps_set)
        cfg->steps = sm_train_steps_for_epochs(train, cfg->batch, cfg->seq, cfg->accum, cfg->epochs, cfg->seed);
    if (!o.tf.eval_set && val) cfg->eval_every = cfg->steps >= 10 ? (int)(cfg->steps / 10) : 1;

    json_t *id = json_object();
    json_object_set_new(id, "command", json_string("train"));
    json_object_set_new(id, "task", json_string(o.task));
    json_object_set_new(id, "base_fingerprint", json_string(fp));
    json_object_set_new(id, "train_sha256", json_string(data_hash));
    json_object_set_new(id, "validation_sha256", json_string(val_hash));
    json_object_set_new(id, "seed", json_integer((json_int_t)cfg->seed));
    if (!o.full) {
        json_object_set_new(id, "rank", json_integer(o.rank));
        json_object_set_new(id, "alpha", json_real(o.alpha));
        json_object_set_new(id, "rslora", json_boolean(o.rslora));
        json_object_set_new(id, "targets", json_integer(o.targets));
        json_object_set_new(id, "dropout", json_real(o.dropout));
        if (o.activated) json_object_set_new(id, "activated", json_true());
    }
    identity = json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(id);
    cfg->identity = identity;
    if (o.tf.ckpt_path) {
        cfg->ckpt_path = o.tf.ckpt_path;
    } else {
        size_t n = strlen(o.out) + 6;
        if ((ckpt = malloc(n))) snprintf(ckpt, n, "%s.ckpt", o.out);
        cfg->ckpt_path = ckpt;
    }
    if (o.tf.cfg.resume && access(cfg->ckpt_path, F_OK) != 0 && !o.tf.quiet)
        fprintf(stderr, "snipmeta train: no checkpoint at %s: starting afresh\n", cfg->ckpt_path);
    if (!o.tf.quiet)
        fprintf(stderr, "snipmeta train: %s, %d training examples (%zu target tokens, %d cut), %d validation; %ld steps\n",
                o.full ? "full fine-tune" : "LoRA", train->n, train->n_targets, train->n_cut, val ? val->n : 0, cfg->steps);
    if ((rc = train_cli_start(&o.tf, "train"))) goto done;
    sm_train_result res;
    int trc = sm_train_run(tm, train, val, cfg, &res, &err);
    train_cli_finish(&o.tf);
    if (trc) { rc = cli_report(&err); goto done; }
    if (res.interrupted) {
        interrupted = 1;
        if (root)
            fprintf(stderr, "snipmeta train: stopped at step %ld; checkpoint %s (continue with --resume)\n", res.steps, cfg->ckpt_path);
        rc = EXIT_FAIL;
        goto done;
    }
    if (!root) goto done; /* rank 0 alone writes the outputs */
    if (o.full) {
        if (sm_train_model_save_gguf(tm, o.out, o.type, &err)) { rc = cli_report(&err); goto done; }
    } else {
        if (sm_lora_save_gguf(lora, o.out, &err)) { rc = cli_report(&err); goto done; }
        if (o.peft && sm_lora_save_peft(lora, o.model, o.peft, &err)) { rc = cli_report(&err); goto done; }
    }
    if (!o.tf.keep_ckpt) unlink(cfg->ckpt_path);
    if (!o.tf.quiet) {
        fprintf(stderr, "snipmeta train: %ld steps, final loss %.4f", res.steps, res.final_loss);
        if (!isnan(res.first_val)) fprintf(stderr, ", validation loss %.4f -> %.4f (best %.4f)", res.first_val, res.last_val, res.best_val);
        fprintf(stderr, "%s, %.1f s; wrote %s\n", res.stopped_early ? " (early stop)" : "", res.elapsed_s, o.out);
    }
done:
    if (rc != EXIT_OK && !interrupted) sm_dist_abort(dist, rc); /* an error on one rank ends them all */
    sm_train_model_free(tm);
    sm_lora_free(lora);
    sm_examples_free(train);
    sm_examples_free(val);
    sm_model_free(m);
    free(train_path);
    free(val_path);
    free(ckpt);
    free(identity);
    sm_dist_finalize(dist);
    return rc;
}
