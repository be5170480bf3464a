/* cmd_generate.c: `snipmeta generate`: continue a prompt with a model, printing text as it is
 * produced. The step count and the decoding follow llama2.c's run.c, so that its greedy output
 * is reproduced byte for byte: -n N runs N positions (prompt included) and prints the token that
 * each position predicts, and a leading space right after BOS is dropped. --lora attaches GGUF
 * LoRA adapters, unmerged, from position 0 (checked against the base's fingerprint), as
 * llama.cpp's --lora A:SCALE. */
#include "cli.h"
#include "lora.h"
#include "model.h"
#include "sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta generate -m MODEL.gguf [-p PROMPT] [-n N] [options]\n"
            "\n"
            "Continues PROMPT with the model and prints the text as it is produced (the prompt's own text\n"
            "first), then a newline. The prompt is tokenized with BOS when the vocabulary asks for it.\n"
            "\n"
            "options:\n"
            "  -m, --model PATH     the GGUF model (llama, mistral or qwen2 architecture)\n"
            "  -p, --prompt TEXT    the prompt (default: empty, so generation starts from BOS)\n"
            "  -n N                 positions to run, the prompt's tokens included, as llama2.c's\n"
            "                       'steps': each position predicts one token and it is printed, so\n"
            "                       -n 200 with no prompt runs BOS and the 199 tokens after it and\n"
            "                       prints 200 tokens. 0 or more than the context: the context size.\n"
            "                       A longer prompt raises N to the prompt's length. Default 256.\n"
            "  --temp T             temperature; 0 is greedy (argmax, lowest id on ties). Default 0.8\n"
            "  --top-k K            sample among the K most likely tokens (0: all). Default 40\n"
            "  --top-p P            then among the smallest set holding P of the mass (1: all). Default 0.95\n"
            "  --seed S             seed of the sampler (splitmix64); the same seed gives the same\n"
            "                       tokens. Default: from the clock (printed with -v)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  --ctx N              context size in positions (default: the model's context_length)\n"
            "  --ids                print token ids (prompt ids, BOS included, then generated ids),\n"
            "                       space-separated on one line, instead of text\n"
            "  --lora A.gguf[:S]    apply a GGUF LoRA adapter with scale S (default 1), unmerged; repeat\n"
            "                       for several (up to 16). An adapter that names its base's fingerprint\n"
            "                       is refused on any other base\n"
            "  -v, --verbose        print the settings and timings to stderr\n"
            "  -h, --help           this help\n"
            "\n"
            "Generation stops after N positions, at an end-of-generation token (EOS, EOT) or at a\n"
            "generated BOS (a new document), none of which is printed. stdout carries only the text.\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

enum { MAX_LORA = 16 };

typedef struct {
    const char *model, *prompt;
    char *lora_path[MAX_LORA];
    float lora_scale[MAX_LORA];
    int n_lora;
    long long n_steps, threads, n_ctx;
    int ids, verbose, seed_given;
    sm_sampler_params sampling;
} options;

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.prompt = "", .n_steps = 256, .sampling = sm_sampler_default_params()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        double x;
#define NEED_VALUE() do { if (!v) return cli_usage_error("generate", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->model = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { NEED_VALUE(); o->prompt = v; }
        else if (!strcmp(a, "-n")) {
            NEED_VALUE();
            if (cli_parse_int(v, 0, 1 << 30, &o->n_steps)) return cli_usage_error("generate", "-n wants a count >= 0, not '%s'", v);
        } else if (!strcmp(a, "--temp")) {
            NEED_VALUE();
            if (cli_parse_float(v, &x) || x < 0) return cli_usage_error("generate", "--temp wants a number >= 0, not '%s'", v);
            o->sampling.temp = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            if (cli_parse_int(v, 0, 1 << 30, &n)) return cli_usage_error("generate", "--top-k wants a count >= 0, not '%s'", v);
            o->sampling.top_k = (int)n;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (cli_parse_float(v, &x) || !(x > 0 && x <= 1)) return cli_usage_error("generate", "--top-p wants a number in (0, 1], not '%s'", v);
            o->sampling.top_p = (float)x;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return cli_usage_error("generate", "--seed wants a non-negative integer, not '%s'", v);
            o->sampling.seed = s;
            o->seed_given = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (cli_parse_int(v, 0, 4096, &o->threads)) return cli_usage_error("generate", "-t wants a thread count, not '%s'", v);
        } else if (!strcmp(a, "--ctx")) {
            NEED_VALUE();
            if (cli_parse_int(v, 1, 1 << 24, &o->n_ctx)) return cli_usage_error("generate", "--ctx wants a positive size, not '%s'", v);
        } else if (!strcmp(a, "--lora")) {
            NEED_VALUE();
            if (o->n_lora == MAX_LORA) return cli_usage_error("generate", "at most %d --lora adapters", MAX_LORA);
            /* PATH[:SCALE]: a suffix after the last ':' that is a number is the scale */
            const char *colon = strrchr(v, ':');
            o->lora_scale[o->n_lora] = 1.0f;
            size_t len = strlen(v);
            if (colon && !cli_parse_float(colon + 1, &x)) o->lora_scale[o->n_lora] = (float)x, len = (size_t)(colon - v);
            if (!len) return cli_usage_error("generate", "--lora wants A.gguf[:SCALE], not '%s'", v);
            o->lora_path[o->n_lora] = strndup(v, len);
            if (!o->lora_path[o->n_lora]) return cli_usage_error("generate", "out of memory");
            o->n_lora++;
        } else if (!strcmp(a, "--ids")) o->ids = 1;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) o->verbose = 1;
        else return cli_usage_error("generate", "unknown argument '%s'", a);
#undef NEED_VALUE
    }
    if (!o->model) return cli_usage_error("generate", "a model is required (-m MODEL.gguf)");
    if (!o->seed_given) o->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints what token `id` stands for, after `prev`. A SentencePiece vocabulary's dummy-prefix
 * space is dropped from the first piece after BOS, as llama2.c and llama.cpp do. */
static void print_piece(const sm_tokenizer *tok, int prev, int id, int strip_after_bos, char **buf, int *cap) {
    int len = sm_token_to_piece(tok, id, *buf, *cap, 0);
    if (len > *cap) {
        char *bigger = realloc(*buf, (size_t)len);
        if (!bigger) return;
        *buf = bigger, *cap = len;
        len = sm_token_to_piece(tok, id, *buf, *cap, 0);
    }
    if (len <= 0) return;
    const char *p = *buf;
    if (strip_after_bos && prev == sm_tokenizer_bos(tok) && p[0] == ' ') p++, len--;
    fwrite(p, 1, (size_t)len, stdout);
    fflush(stdout);
}

static int run(const options *o, sm_model *m) {
    const sm_tokenizer *tok = m->tokenizer;
    const sm_model_config *cfg = &m->config;
    sm_error err = {0};
    int *ids = NULL, n_prompt = 0, rc = EXIT_OK;
    if (sm_tokenize(tok, o->prompt, strlen(o->prompt), 1, 0, &ids, &n_prompt, &err)) return cli_report(&err);
    if (n_prompt == 0) {
        int bos = sm_tokenizer_bos(tok);
        if (bos < 0) {
            free(ids);
            fprintf(stderr, "snipmeta generate: the prompt is empty and %s has no BOS token to start from\n", o->model);
            return EXIT_USAGE;
        }
        int *one = realloc(ids, sizeof *ids);
        if (!one) { free(ids); fprintf(stderr, "snipmeta generate: out of memory\n"); return EXIT_FAIL; }
        ids = one, ids[0] = bos, n_prompt = 1;
    }
    long long n_ctx = o->n_ctx ? o->n_ctx : cfg->n_ctx_train;
    long long steps = o->n_steps == 0 || o->n_steps > n_ctx ? n_ctx : o->n_steps;
    if (n_prompt > n_ctx) {
        free(ids);
        fprintf(stderr, "snipmeta generate: the prompt has %d tokens, more than the context of %lld\n", n_prompt, n_ctx);
        return EXIT_USAGE;
    }
    if (steps < n_prompt) steps = n_prompt;

    const char *tok_model = sm_gguf_get_str(m->gguf, "tokenizer.ggml.model");
    int space_prefix = 1;
    sm_gguf_get_bool(m->gguf, "tokenizer.ggml.add_space_prefix", &space_prefix, NULL);
    int strip_after_bos = tok_model && !strcmp(tok_model, "llama") && space_prefix;

    sm_lora *loras[MAX_LORA] = {0};
    char fingerprint[65] = "";
    sm_context *ctx = sm_context_new(m, (int)steps, 0, &err);
    sm_sampler *sampler = sm_sampler_new(&o->sampling, cfg->n_vocab);
    float *logits = malloc((size_t)cfg->n_vocab * sizeof *logits);
    char *piece = malloc(64);
    int piece_cap = 64;
    if (!ctx) { rc = cli_report(&err); goto done; }
    if (!sampler || !logits || !piece) { fprintf(stderr, "snipmeta generate: out of memory\n"); rc = EXIT_FAIL; goto done; }
    for (int i = 0; i < o->n_lora; i++) {
        loras[i] = sm_lora_load_gguf(o->lora_path[i], &err);
        if (!loras[i]) { rc = cli_report(&err); goto done; }
        if (loras[i]->base_fingerprint[0] && !fingerprint[0]) {
            double t = now_s();
            if (sm_model_fingerprint(m, fingerprint)) { fprintf(stderr, "snipmeta generate: out of memory\n"); rc = EXIT_FAIL; goto done; }
            if (o->verbose) fprintf(stderr, "base fingerprint %s (%.3f s)\n", fingerprint, now_s() - t);
        }
        if (sm_lora_check_base(loras[i], o->lora_path[i], m, fingerprint[0] ? fingerprint : NULL, &err)) {
            rc = cli_report(&err);
            goto done;
        }
        if (o->verbose)
            fprintf(stderr, "adapter %s: task '%s', rank %d, alpha %g%s, scale %g\n", o->lora_path[i], loras[i]->task,
                    loras[i]->rank, loras[i]->alpha, loras[i]->rslora ? " (rsLoRA)" : "", o->lora_scale[i]);
    }
    if (o->n_lora && sm_context_set_adapters(ctx, (const sm_lora *const *)loras, o->lora_scale, o->n_lora, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    if (o->verbose)
        fprintf(stderr, "model %s: %s, %d layers, n_embd %d, vocab %d; %d prompt tokens, %lld positions; "
                        "temp %g top_k %d top_p %g seed %llu\n", o->model, cfg->arch, cfg->n_layer, cfg->n_embd,
                cfg->n_vocab, n_prompt, steps, o->sampling.temp, o->sampling.top_k, o->sampling.top_p,
                (unsigned long long)o->sampling.seed);

    for (int i = 0; i < n_prompt; i++) {
        if (o->ids) printf("%s%d", i ? " " : "", ids[i]);
        else if (i > 0) print_piece(tok, ids[i - 1], ids[i], strip_after_bos, &piece, &piece_cap);
    }
    fflush(stdout);
    double t0 = now_s();
    if (sm_forward(ctx, ids, n_prompt, logits, 0, &err)) { rc = cli_report(&err); goto done; }
    double t1 = now_s();
    int prev = ids[n_prompt - 1], n_gen = 0;
    for (long long pos = n_prompt;; pos++) {
        int next = sm_sample(sampler, logits);
        if (sm_tokenizer_is_eog(tok, next) || next == sm_tokenizer_bos(tok)) break;
        if (o->ids) { printf(" %d", next); fflush(stdout); }
        else print_piece(tok, prev, next, strip_after_bos, &piece, &piece_cap);
        n_gen++;
        if (pos >= steps) break;
        if (sm_forward(ctx, &next, 1, logits, 0, &err)) { rc = cli_report(&err); goto done; }
        prev = next;
    }
    printf("\n");
    fflush(stdout);
    if (o->verbose) {
        double t2 = now_s();
        fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generation: %d tokens in %.3f s (%.1f tok/s)\n",
                n_prompt, t1 - t0, n_prompt / (t1 - t0 + 1e-12), n_gen, t2 - t1, n_gen / (t2 - t1 + 1e-12));
    }
done:
    for (int i = 0; i < o->n_lora; i++) sm_lora_free(loras[i]);
    free(piece);
    free(logits);
    sm_sampler_free(sampler);
    sm_context_free(ctx);
    free(ids);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        for (int i = 0; i < o.n_lora; i++) free(o.lora_path[i]);
        return rc < 0 ? EXIT_OK : rc;
    }
    cli_set_threads((int)o.threads);
    sm_error err = {0};
    sm_model *m = sm_model_load(o.model, &err);
    if (!m) {
        for (int i = 0; i < o.n_lora; i++) free(o.lora_path[i]);
        return cli_report(&err);
    }
    rc = run(&o, m);
    sm_model_free(m);
    for (int i = 0; i < o.n_lora; i++) free(o.lora_path[i]);
    return rc;
}
