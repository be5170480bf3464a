/* cmd_convert.c: `snipmeta convert`: other models' files to GGUF. llama2.c checkpoints now;
 * PEFT and LoRA adapters come with the training issue. */
#include "cli.h"
#include "llama2c.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta convert llama2c CKPT.bin TOKENIZER.bin -o OUT.gguf\n"
            "       snipmeta convert peft DIR -o OUT.gguf           (not supported yet)\n"
            "       snipmeta convert lora A.gguf --peft -o DIR      (not supported yet)\n"
            "\n"
            "llama2c: converts a llama2.c checkpoint (legacy version 0 header of 7 int32; a negative\n"
            "  vocab_size means an unshared classifier) and its tokenizer.bin into a GGUF model that\n"
            "  snipmeta and llama.cpp load: general.architecture=llama, f32 tensors with llama.cpp's\n"
            "  names, a SentencePiece-style vocabulary (tokenizer.ggml.model=llama) with scores and\n"
            "  token types, BOS 1, EOS 2, UNK 0.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH   the GGUF file to write (written atomically)\n"
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

int cmd_convert(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    const char *kind = argv[1];
    if (!strcmp(kind, "-h") || !strcmp(kind, "--help")) { usage(stdout); return EXIT_OK; }
    if (!strcmp(kind, "llama2c")) return convert_llama2c(argc, argv);
    if (!strcmp(kind, "peft") || !strcmp(kind, "lora")) {
        fprintf(stderr, "snipmeta convert %s: not supported yet (adapters arrive with training)\n", kind);
        return EXIT_USAGE;
    }
    return cli_usage_error("convert", "unknown source format '%s' (llama2c, peft, lora)", kind);
}
