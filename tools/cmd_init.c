/* cmd_init.c: `snipmeta init`, a Llama-architecture model of a given shape with seeded random
 * weights and the tokenizer of a vocabulary file (model_init.h does the work). */
#include "cli.h"

#include "gguf.h"
#include "model_init.h"
#include "tensor.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta init --vocab VOCAB.gguf (--shape NAME | --n-embd E --n-layer L --n-head H\n"
            "                     [--n-head-kv K] --n-ff F) [--ctx N] [--type T] [--seed S] [--tied]\n"
            "                     [--init SCHEME] [-t THREADS] [-q] -o OUT.gguf\n\n"
            "Writes a Llama-architecture GGUF model with random weights (normal, base std %.2f; norms\n"
            "1.0), the same for a given seed on every machine and thread count, with the tokenizer.*\n"
            "metadata of VOCAB.gguf (its token count is the vocabulary size).\n\n"
            "  --shape NAME      a preset: smollm2-135m (576 wide, 30 layers, 9 heads, 3 KV heads,\n"
            "                    ffn 1536, context 8192, rope_theta 100000); flags after it override it\n"
            "  --n-embd E --n-layer L --n-head H --n-head-kv K --n-ff F   the shape by hand\n"
            "                    (K defaults to H)\n"
            "  --ctx N           llama.context_length (default 2048, or the preset's)\n"
            "  --rope-theta X    llama.rope.freq_base (default 10000, or the preset's)\n"
            "  --type T          f32 (default), f16, bf16, q8_0 or q4_0 for the matrices; norms stay f32\n"
            "  --seed S          random seed (default 1)\n"
            "  --tied            no output.weight: the output reuses token_embd.weight (as SmolLM2)\n"
            "  --init SCHEME     decode (default: sharp attention and heavy-tailed output rows, so\n"
            "                    that greedy decoding varies and rarely meets a near-tie) or gpt2\n"
            "                    (std 0.02, residual writes 0.02/sqrt(2*n_layer), for training)\n",
            SM_INIT_STD);
}

int cmd_init(int argc, char **argv) {
    const char *vocab_path = NULL, *out_path = NULL, *scheme_name = "decode";
    sm_model_shape shape = {.n_ctx = 2048, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    int type = SM_TYPE_F32, quiet = 0, threads = 0, have_preset = 0;
    long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return EXIT_OK; }
        if (!strcmp(a, "--tied")) { shape.tied = 1; continue; }
        if (!strcmp(a, "-q")) { quiet = 1; continue; }
        if (i + 1 >= argc) return cli_usage_error("init", "%s needs a value", a);
        const char *v = argv[++i];
        long long n = 0;
        int *size = NULL;
        if (!strcmp(a, "--vocab")) vocab_path = v;
        else if (!strcmp(a, "-o")) out_path = v;
        else if (!strcmp(a, "--init")) scheme_name = v;
        else if (!strcmp(a, "--shape")) {
            if (sm_model_shape_preset(v, &shape)) return cli_usage_error("init", "unknown shape '%s'", v);
            have_preset = 1;
        } else if (!strcmp(a, "--type")) {
            type = sm_type_from_name(v);
            if (type < 0) return cli_usage_error("init", "unknown type '%s' (f32, f16, bf16, q8_0, q4_0)", v);
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(v, 0, INT64_MAX, &seed)) return cli_usage_error("init", "bad --seed '%s'", v);
        } else if (!strcmp(a, "--rope-theta")) {
            double x;
            if (cli_parse_float(v, &x) || !(x > 0)) return cli_usage_error("init", "bad --rope-theta '%s'", v);
            shape.rope_theta = (float)x;
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_int(v, 1, 1024, &n)) return cli_usage_error("init", "bad -t '%s'", v);
            threads = (int)n;
        } else {
            if (!strcmp(a, "--n-embd")) size = &shape.n_embd;
            else if (!strcmp(a, "--n-layer")) size = &shape.n_layer;
            else if (!strcmp(a, "--n-head")) size = &shape.n_head;
            else if (!strcmp(a, "--n-head-kv")) size = &shape.n_head_kv;
            else if (!strcmp(a, "--n-ff")) size = &shape.n_ff;
            else if (!strcmp(a, "--ctx")) size = &shape.n_ctx;
            else return cli_usage_error("init", "unknown option '%s'", a);
            if (cli_parse_int(v, 1, 1 << 24, &n)) return cli_usage_error("init", "bad %s '%s'", a, v);
            *size = (int)n;
        }
    }
    if (!vocab_path) return cli_usage_error("init", "--vocab VOCAB.gguf is required");
    if (!out_path) return cli_usage_error("init", "-o OUT.gguf is required");
    if (!have_preset && (!shape.n_embd || !shape.n_layer || !shape.n_head || !shape.n_ff))
        return cli_usage_error("init", "give --shape, or all of --n-embd, --n-layer, --n-head and --n-ff");
    if (!shape.n_head_kv) shape.n_head_kv = shape.n_head;
    if (!sm_type_supported(type)) return cli_usage_error("init", "unsupported type");
    sm_init_scheme scheme;
    if (sm_init_scheme_preset(scheme_name, &shape, &scheme))
        return cli_usage_error("init", "unknown --init '%s' (decode, gpt2)", scheme_name);
    cli_set_threads(threads);

    sm_error err = {0};
    sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
    if (!vocab) return cli_report(&err);
    int rc = sm_init_write_gguf(out_path, &shape, &scheme, vocab, type, (uint64_t)seed, &err);
    if (!rc && !quiet) {
        const int64_t tokens = sm_gguf_find_key(vocab, "tokenizer.ggml.tokens");
        fprintf(stderr, "snipmeta init: %s: llama, n_vocab %llu, n_embd %d, n_layer %d, n_head %d/%d, n_ff %d, "
                        "%s%s, %s init, seed %lld\n", out_path, (unsigned long long)sm_gguf_arr_n(vocab, tokens), shape.n_embd,
                shape.n_layer, shape.n_head, shape.n_head_kv, shape.n_ff, sm_type_name(type),
                shape.tied ? ", tied" : "", scheme_name, seed);
    }
    sm_gguf_close(vocab);
    return rc ? cli_report(&err) : EXIT_OK;
}
