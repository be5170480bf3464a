/* cmd_init.c: placeholder until the 'init' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_init(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta init: not implemented yet\n");
    return EXIT_FAIL;
}
