/* snipmeta.c: the command-line entry point. It only dispatches: each subcommand lives in its
 * own tools/cmd_*.c and parses its own flags. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"all", cmd_meta, "a snippet's title, description, tags and links"},
    {"title", cmd_meta, "a snippet's title"},
    {"describe", cmd_meta, "a snippet's description"},
    {"tags", cmd_meta, "a snippet's tags"},
    {"links", cmd_meta, "a snippet's documentation links"},
    {"serve", cmd_serve, "serve the metadata over HTTP (JSON API, OpenAI-compatible, web page)"},
    {"generate", cmd_generate, "continue a prompt with a model (and LoRA adapters)"},
    {"tokenize", cmd_tokenize, "text on stdin to token ids"},
    {"info", cmd_info, "show a GGUF file's metadata and tensor table"},
    {"convert", cmd_convert, "convert llama2.c checkpoints (and adapters) to GGUF"},
    {"quantize", cmd_quantize, "rewrite a GGUF model in f16, bf16, q8_0 or q4_0"},
    {"init", cmd_init, "write a model of a given shape with random weights"},
    {"collect", cmd_collect, "cut function-level snippets from source trees"},
    {"label", cmd_label, "label snippets with a teacher LLM (OpenAI-compatible API)"},
    {"dataset", cmd_dataset, "build per-task training sets from labels"},
    {"store", cmd_store, "merge labels stores (the shards of a labelling job)"},
    {"train", cmd_train, "train a task's LoRA adapter (or a full fine-tune) on a base model"},
    {"vocab", cmd_vocab, "train a byte-level BPE vocabulary on a corpus (and count tokens)"},
    {"pretrain", cmd_pretrain, "pretrain a base model from random weights on text"},
    {"eval", cmd_eval, "score a task's test split (model and adapter, or the heuristic baseline)"},
};

static void usage(FILE *f) {
    fprintf(f, "snipmeta %s: code-snippet metadata from a small language model, on this machine\n\n"
               "usage: snipmeta COMMAND [ARGS]   (snipmeta COMMAND --help for each)\n\ncommands:\n", SM_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return EXIT_OK; }
    if (!strcmp(argv[1], "--version")) { printf("snipmeta %s\n", SM_VERSION); return EXIT_OK; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "snipmeta: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
