/* cli.c: helpers shared by the subcommands (error reporting, number parsing, threads). */
#include "cli.h"

#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_report(const sm_error *err) {
    fprintf(stderr, "snipmeta: %s\n", err->msg[0] ? err->msg : sm_strerror(err->code));
    return (err->code == SM_EFORMAT || err->code == SM_EINVAL || err->code == SM_EUNSUPPORTED) ? EXIT_USAGE : EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "snipmeta %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run 'snipmeta %s --help' for usage)\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

void cli_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}
