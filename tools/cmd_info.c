/* cmd_info.c: placeholder until the 'info' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta info: not implemented yet\n");
    return EXIT_FAIL;
}
