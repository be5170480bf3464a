/* cmd_convert.c: placeholder until the 'convert' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_convert(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta convert: not implemented yet\n");
    return EXIT_FAIL;
}
