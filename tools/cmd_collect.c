/* cmd_collect.c: placeholder until the 'collect' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_collect(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta collect: not implemented yet\n");
    return EXIT_FAIL;
}
