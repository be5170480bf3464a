/* cmd_generate.c: placeholder until the 'generate' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_generate(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta generate: not implemented yet\n");
    return EXIT_FAIL;
}
