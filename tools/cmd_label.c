/* cmd_label.c: placeholder until the 'label' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_label(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta label: not implemented yet\n");
    return EXIT_FAIL;
}
