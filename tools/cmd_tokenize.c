/* cmd_tokenize.c: placeholder until the 'tokenize' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta tokenize: not implemented yet\n");
    return EXIT_FAIL;
}
