/* cli.c: helpers shared by the subcommands (error reporting, number parsing, threads). */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#ifndef SM_SOURCE_MODELS_DIR
#define SM_SOURCE_MODELS_DIR "models"
#endif

int cli_default_models(const char **base, const char **adapters, char *looked, size_t n) {
    static char base_path[PATH_MAX + 32], adapters_path[PATH_MAX + 32];
    char exe[PATH_MAX], beside[PATH_MAX + 16] = "";
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *bin_dir = dirname(exe); /* .../build */
        snprintf(beside, sizeof beside, "%s/../models", bin_dir);
    }
    const char *env = getenv("SNIPMETA_MODELS");
    /* $SNIPMETA_MODELS, when set, is the one place to look: the user asked for it */
    const char *dirs[3] = {env && *env ? env : NULL, env && *env ? NULL : beside[0] ? beside : NULL,
                           env && *env ? NULL : SM_SOURCE_MODELS_DIR};
    size_t used = 0;
    if (n) looked[0] = 0;
    for (int i = 0; i < 3; i++) {
        if (!dirs[i] || !dirs[i][0]) continue;
        snprintf(base_path, sizeof base_path, "%s/snipmeta-base.gguf", dirs[i]);
        if (access(base_path, R_OK) == 0) {
            snprintf(adapters_path, sizeof adapters_path, "%s/adapters", dirs[i]);
            *base = base_path;
            *adapters = adapters_path;
            return 0;
        }
        if (used < n) used += (size_t)snprintf(looked + used, n - used, "%s%s", used ? ", " : "", dirs[i]);
    }
    return -1;
}
