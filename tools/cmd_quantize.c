/* cmd_quantize.c: placeholder until the 'quantize' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_quantize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta quantize: not implemented yet\n");
    return EXIT_FAIL;
}
