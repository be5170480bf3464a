/* cmd_convert.c: `snipmeta convert`: other models' files to GGUF (llama2.c checkpoints), and
 * LoRA adapters between PEFT directories and GGUF files; `convert lora --init` writes a fresh
 * adapter (for tests and experiments). */
#include "cli.h"
#include "llama2c.h"
#include "lora.h"
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta convert llama2c CKPT.bin TOKENIZER.bin -o OUT.gguf\n"
            "       snipmeta convert peft DIR [-m BASE.gguf] -o OUT.gguf [--task T]\n"
            "       snipmeta convert lora A.gguf --peft -o DIR [-m BASE.gguf]\n"
            "       snipmeta convert lora A.gguf[:S]... --merge -m BASE.gguf -o MERGED.gguf\n"
            "       snipmeta convert lora --init -m BASE.gguf -o A.gguf [--rank R] [--alpha A] [--rslora]\n"
            "                [--targets q,k,v,o] [--seed S] [--b-std X] [--task T] [--activated]\n"
            "\n"
            "llama2c: converts a llama2.c checkpoint (legacy version 0 header of 7 int32; a negative\n"
            "  vocab_size means an unshared classifier) and its tokenizer.bin into a GGUF model that\n"
            "  snipmeta and llama.cpp load: general.architecture=llama, f32 tensors with llama.cpp's\n"
            "  names, a SentencePiece-style vocabulary (tokenizer.ggml.model=llama) with scores and\n"
            "  token types, BOS 1, EOS 2, UNK 0.\n"
            "\n"
            "peft: converts a Hugging Face PEFT LoRA directory (adapter_config.json and\n"
            "  adapter_model.safetensors) into a GGUF LoRA adapter that llama.cpp and snipmeta load. The\n"
            "  base (-m) gives the architecture and head counts (q/k rows are permuted into llama.cpp's\n"
            "  RoPE order for llama and mistral) and its fingerprint, which the adapter then carries;\n"
            "  without -m only a directory written by snipmeta (which records them) converts.\n"
            "lora --peft: the other way; with -m the adapter is first checked against that base, whose\n"
            "  general.name becomes base_model_name_or_path.\n"
            "lora --merge: a copy of BASE whose targeted projections are F32 W + S*s*B*A, summed over\n"
            "  the adapters (scale S, default 1), for a single-task deployment without adapters.\n"
            "lora --init: a fresh adapter for BASE: A Kaiming-uniform as PEFT, B zero, or with --b-std X\n"
            "  uniform with standard deviation X (a non-identity adapter for tests). Defaults: rank 8,\n"
            "  alpha 16, targets q,k,v,o, seed 1.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH   the file or directory to write (written atomically)\n"
            "  -q                  print nothing on success\n"
            "  -h, --help          this help\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

static int convert_llama2c(int argc, char **argv) {
    const char *pos[2] = {0}, *out = NULL;
    int n_pos = 0, quiet = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return EXIT_OK; }
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (++i >= argc) return cli_usage_error("convert", "%s needs a path", a);
            out = argv[i];
        } else if (!strcmp(a, "-q")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("convert", "unknown option '%s'", a);
        } else {
            if (n_pos == 2) return cli_usage_error("convert", "unexpected argument '%s'", a);
            pos[n_pos++] = a;
        }
    }
    if (n_pos < 2) return cli_usage_error("convert", "llama2c needs CKPT.bin and TOKENIZER.bin");
    if (!out) return cli_usage_error("convert", "llama2c needs -o OUT.gguf");
    sm_error err = {0};
    sm_llama2c_config c;
    if (sm_llama2c_convert(pos[0], pos[1], out, &c, &err)) return cli_report(&err);
    if (!quiet)
        fprintf(stderr, "wrote %s: dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, context %d, %s output\n", out,
                c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
                c.shared_classifier ? "tied" : "separate");
    return EXIT_OK;
}

enum { MAX_MERGE = 16 };

typedef struct {
    const char *input, *out, *base, *task;
    const char *inputs[MAX_MERGE];
    int n_inputs;
    int peft, init, merge, quiet, rank, rslora, activated;
    double alpha, b_std;
    unsigned targets;
    unsigned long long seed;
} lora_options;

static int parse_lora_args(int argc, char **argv, lora_options *o) {
    *o = (lora_options){.rank = 8, .alpha = 16, .targets = SM_LORA_TARGETS_ATTN, .seed = 1};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
#define NEED_VALUE() do { if (!v) return cli_usage_error("convert", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { NEED_VALUE(); o->out = v; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->base = v; }
        else if (!strcmp(a, "--task")) { NEED_VALUE(); o->task = v; }
        else if (!strcmp(a, "--peft")) o->peft = 1;
        else if (!strcmp(a, "--init")) o->init = 1;
        else if (!strcmp(a, "--merge")) o->merge = 1;
        else if (!strcmp(a, "--rslora")) o->rslora = 1;
        else if (!strcmp(a, "--activated")) o->activated = 1;
        else if (!strcmp(a, "-q")) o->quiet = 1;
        else if (!strcmp(a, "--rank")) {
            NEED_VALUE();
            if (cli_parse_int(v, 1, 65536, &n)) return cli_usage_error("convert", "--rank wants 1..65536, not '%s'", v);
            o->rank = (int)n;
        } else if (!strcmp(a, "--alpha")) {
            NEED_VALUE();
            if (cli_parse_float(v, &o->alpha) || !isfinite(o->alpha)) return cli_usage_error("convert", "--alpha wants a number, not '%s'", v);
        } else if (!strcmp(a, "--b-std")) {
            NEED_VALUE();
            if (cli_parse_float(v, &o->b_std) || !(o->b_std >= 0)) return cli_usage_error("convert", "--b-std wants a number >= 0, not '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            o->seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return cli_usage_error("convert", "--seed wants a non-negative integer, not '%s'", v);
        } else if (!strcmp(a, "--targets")) {
            NEED_VALUE();
            if (sm_lora_parse_targets(v, &o->targets))
                return cli_usage_error("convert", "--targets wants a list of q,k,v,o,gate,up,down (or attn, mlp, all), not '%s'", v);
        } else if (a[0] == '-' && a[1]) return cli_usage_error("convert", "unknown option '%s'", a);
        else if (o->n_inputs == MAX_MERGE) return cli_usage_error("convert", "unexpected argument '%s'", a);
        else o->inputs[o->n_inputs++] = a;
#undef NEED_VALUE
    }
    if (!o->out) return cli_usage_error("convert", "%s needs -o", argv[1]);
    if (o->n_inputs > 1 && !o->merge) return cli_usage_error("convert", "unexpected argument '%s'", o->inputs[1]);
    o->input = o->inputs[0];
    return 0;
}

/* Loads the base of -m and its fingerprint; returns the model or NULL after reporting. */
static sm_model *load_base(const char *path, char fingerprint[65], int *rc) {
    sm_error err = {0};
    sm_model *m = sm_model_load(path, &err);
    if (!m) { *rc = cli_report(&err); return NULL; }
    if (sm_model_fingerprint(m, fingerprint)) {
        sm_model_free(m);
        fprintf(stderr, "snipmeta convert: out of memory\n");
        *rc = EXIT_FAIL;
        return NULL;
    }
    return m;
}

static int convert_peft(int argc, char **argv) {
    lora_options o;
    int rc = parse_lora_args(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!o.input) return cli_usage_error("convert", "peft needs the PEFT directory");
    char fingerprint[65] = "";
    sm_model *m = NULL;
    if (o.base && !(m = load_base(o.base, fingerprint, &rc))) return rc;
    sm_error err = {0};
    sm_lora *l = sm_lora_load_peft(o.input, m ? &m->config : NULL, &err);
    if (!l || (m && sm_lora_check_base(l, o.input, m, fingerprint, &err))) rc = cli_report(&err);
    else {
        if (m) snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", fingerprint);
        if (o.task) snprintf(l->task, sizeof l->task, "%s", o.task);
        if (sm_lora_save_gguf(l, o.out, &err)) rc = cli_report(&err);
        else if (!o.quiet)
            fprintf(stderr, "wrote %s: rank %d, alpha %g%s, %d layers, %zu parameters\n", o.out, l->rank, l->alpha,
                    l->rslora ? " (rsLoRA)" : "", l->n_layer, l->n_params);
    }
    sm_lora_free(l);
    sm_model_free(m);
    return rc;
}

/* convert lora A.gguf[:S]... --merge -m BASE.gguf -o MERGED.gguf */
static int merge_loras(const lora_options *o) {
    if (!o->base) return cli_usage_error("convert", "lora --merge needs the base model (-m BASE.gguf)");
    sm_lora *loras[MAX_MERGE] = {0};
    float scales[MAX_MERGE];
    char fingerprint[65];
    int rc = EXIT_OK;
    sm_error err = {0};
    sm_model *m = load_base(o->base, fingerprint, &rc);
    if (!m) return rc;
    for (int i = 0; i < o->n_inputs && !rc; i++) {
        /* PATH[:SCALE], as generate --lora */
        const char *arg = o->inputs[i], *colon = strrchr(arg, ':');
        double x;
        size_t len = strlen(arg);
        scales[i] = 1.0f;
        if (colon && !cli_parse_float(colon + 1, &x)) scales[i] = (float)x, len = (size_t)(colon - arg);
        char *path = strndup(arg, len);
        if (!path) { fprintf(stderr, "snipmeta convert: out of memory\n"); rc = EXIT_FAIL; break; }
        loras[i] = sm_lora_load_gguf(path, &err);
        if (!loras[i] || sm_lora_check_base(loras[i], path, m, fingerprint, &err)) rc = cli_report(&err);
        free(path);
    }
    if (!rc && sm_lora_merge_gguf(m, (const sm_lora *const *)loras, scales, o->n_inputs, o->out, &err)) rc = cli_report(&err);
    if (!rc && !o->quiet) fprintf(stderr, "wrote %s: %s with %d adapter%s merged\n", o->out, o->base, o->n_inputs, o->n_inputs > 1 ? "s" : "");
    for (int i = 0; i < o->n_inputs; i++) sm_lora_free(loras[i]);
    sm_model_free(m);
    return rc;
}

static int convert_lora(int argc, char **argv) {
    lora_options o;
    int rc = parse_lora_args(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    sm_error err = {0};
    char fingerprint[65] = "";
    sm_model *m = NULL;
    sm_lora *l = NULL;
    if (o.init) {
        if (!o.base) return cli_usage_error("convert", "lora --init needs the base model (-m BASE.gguf)");
        if (!(m = load_base(o.base, fingerprint, &rc))) return rc;
        l = sm_lora_new(&m->config, o.rank, (float)o.alpha, o.rslora, o.targets, &err);
        if (!l) { rc = cli_report(&err); goto done; }
        sm_lora_init(l, o.seed);
        if (o.b_std > 0) { /* uniform on [-sqrt(3) std, sqrt(3) std) */
            uint64_t state = o.seed ^ 0x5bd1e995u;
            for (int layer = 0; layer < l->n_layer; layer++)
                for (int p = 0; p < SM_PROJ_COUNT; p++) {
                    sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
                    for (size_t i = 0; pair->b && i < (size_t)pair->out * l->rank; i++)
                        pair->b[i] = (float)((2.0 * sm_rng_f32(&state) - 1.0) * sqrt(3.0) * o.b_std);
                }
        }
        snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", fingerprint);
        if (o.task) snprintf(l->task, sizeof l->task, "%s", o.task);
        l->activated = o.activated;
        if (sm_lora_save_gguf(l, o.out, &err)) rc = cli_report(&err);
        else if (!o.quiet)
            fprintf(stderr, "wrote %s: rank %d, alpha %g, %zu parameters\n", o.out, l->rank, l->alpha, l->n_params);
        goto done;
    }
    if (!o.input) return cli_usage_error("convert", "lora needs the adapter A.gguf (or --init)");
    if (o.merge) return merge_loras(&o);
    if (!o.peft) return cli_usage_error("convert", "lora converts to PEFT only: add --peft");
    if (!(l = sm_lora_load_gguf(o.input, &err))) { rc = cli_report(&err); goto done; }
    const char *base_name = "";
    if (o.base) {
        if (!(m = load_base(o.base, fingerprint, &rc))) goto done;
        if (sm_lora_check_base(l, o.input, m, fingerprint, &err)) { rc = cli_report(&err); goto done; }
        if (!l->n_head) l->n_head = m->config.n_head, l->n_head_kv = m->config.n_head_kv;
        if (!l->arch[0]) snprintf(l->arch, sizeof l->arch, "%s", m->config.arch);
        const char *name = sm_gguf_get_str(m->gguf, "general.name");
        base_name = name ? name : o.base;
    }
    if (o.task) snprintf(l->task, sizeof l->task, "%s", o.task);
    if (sm_lora_save_peft(l, base_name, o.out, &err)) rc = cli_report(&err);
    else if (!o.quiet) fprintf(stderr, "wrote %s/adapter_model.safetensors and adapter_config.json: rank %d, alpha %g\n", o.out, l->rank, l->alpha);
done:
    sm_lora_free(l);
    sm_model_free(m);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    const char *kind = argv[1];
    if (!strcmp(kind, "-h") || !strcmp(kind, "--help")) { usage(stdout); return EXIT_OK; }
    if (!strcmp(kind, "llama2c")) return convert_llama2c(argc, argv);
    if (!strcmp(kind, "peft")) return convert_peft(argc, argv);
    if (!strcmp(kind, "lora")) return convert_lora(argc, argv);
    return cli_usage_error("convert", "unknown source format '%s' (llama2c, peft, lora)", kind);
}
