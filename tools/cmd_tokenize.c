/* cmd_tokenize.c: `snipmeta tokenize`, text on stdin to token ids with a GGUF file's tokenizer. */
#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta tokenize -m MODEL_OR_VOCAB.gguf [--ids] [--bos] [--add-special] [--no-parse-special]\n"
            "\n"
            "Reads all of stdin (bytes as they are, trailing newline included) and tokenizes it with the\n"
            "tokenizer in the file's tokenizer.ggml.* metadata, as llama.cpp does.\n"
            "\n"
            "  -m FILE             a model or vocabulary-only GGUF file\n"
            "  --ids               print the ids space-separated on one line; otherwise one line per\n"
            "                      token: id, a tab, and its text with \\\\ \\n \\r \\t and \\xNN escapes\n"
            "  --bos               prepend the BOS token (whatever the vocabulary's add_bos_token says)\n"
            "  --add-special       add what the vocabulary asks for: BOS if add_bos_token, EOS if\n"
            "                      add_eos_token (llama.cpp's add_special)\n"
            "  --no-parse-special  treat control-token texts such as <|endoftext|> in the input as\n"
            "                      plain text (by default they become their token)\n"
            "\n"
            "Nothing is added by default, so the output matches llama.cpp's tokenizer test vectors.\n");
}

/* Reads all of f; returns a new buffer (the caller frees it) or NULL. */
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            char *b = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!b) { free(buf); return NULL; }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    if (ferror(f)) { free(buf); return NULL; }
    *len = n;
    return buf;
}

/* Prints a piece on one line: well-formed UTF-8 as it is, backslash and control characters
 * escaped, and bytes that are not UTF-8 (a piece may hold part of a character) as \xNN. */
static void print_escaped(const char *s, int n) {
    for (int i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        int len = c >= 0x80 ? sm_utf8_decode(s + i, (size_t)(n - i), &cp) : 1;
        if (len > 1) fwrite(s + i, 1, (size_t)len, stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c >= 0x7F) printf("\\x%02X", c);
        else putchar(c);
        i += len > 1 ? len : 1;
    }
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int ids_only = 0, bos = 0, add_special = 0, parse_special = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return EXIT_OK; }
        else if (!strcmp(a, "-m")) {
            if (++i == argc) return cli_usage_error("tokenize", "-m needs a file");
            path = argv[i];
        }
        else if (!strcmp(a, "--ids")) ids_only = 1;
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--add-special")) add_special = 1;
        else if (!strcmp(a, "--no-parse-special")) parse_special = 0;
        else return cli_usage_error("tokenize", "unknown argument '%s'", a);
    }
    if (!path) return cli_usage_error("tokenize", "-m MODEL_OR_VOCAB.gguf is required");

    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(path, &err);
    if (!g) return cli_report(&err);
    sm_tokenizer *tok = sm_tokenizer_from_gguf(g, &err);
    sm_gguf_close(g);
    if (!tok) return cli_report(&err);
    if (sm_tokenizer_warning(tok)) fprintf(stderr, "snipmeta tokenize: warning: %s\n", sm_tokenizer_warning(tok));
    if (bos && sm_tokenizer_bos(tok) < 0) {
        sm_tokenizer_free(tok);
        fprintf(stderr, "snipmeta tokenize: %s has no BOS token\n", path);
        return EXIT_USAGE;
    }

    size_t len = 0;
    char *text = read_all(stdin, &len);
    if (!text) {
        sm_tokenizer_free(tok);
        fprintf(stderr, "snipmeta tokenize: cannot read stdin\n");
        return EXIT_FAIL;
    }
    int *ids = NULL, n = 0;
    int rc = sm_tokenize(tok, text, len, add_special, parse_special, &ids, &n, &err);
    free(text);
    if (rc) {
        sm_tokenizer_free(tok);
        return cli_report(&err);
    }
    /* --bos: prepend BOS unless --add-special already did. */
    int lead = bos && !(add_special && sm_tokenizer_add_bos(tok));
    if (ids_only) {
        if (lead) printf("%d", sm_tokenizer_bos(tok));
        for (int i = 0; i < n; i++) printf(i || lead ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        char small[256];
        for (int i = -lead; i < n; i++) {
            int id = i < 0 ? sm_tokenizer_bos(tok) : ids[i];
            int k = sm_token_to_piece(tok, id, small, sizeof small, 1);
            char *p = small;
            if (k > (int)sizeof small) {
                if (!(p = malloc((size_t)k))) { rc = SM_ENOMEM; break; }
                sm_token_to_piece(tok, id, p, k, 1);
            }
            printf("%d\t", id);
            print_escaped(p, k);
            putchar('\n');
            if (p != small) free(p);
        }
    }
    free(ids);
    sm_tokenizer_free(tok);
    if (fflush(stdout) || rc) {
        fprintf(stderr, "snipmeta tokenize: cannot write the output\n");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
