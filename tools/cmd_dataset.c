/* cmd_dataset.c: placeholder until the 'dataset' subcommand lands; it refuses to run. */
#include "cli.h"

#include <stdio.h>

int cmd_dataset(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "snipmeta dataset: not implemented yet\n");
    return EXIT_FAIL;
}
