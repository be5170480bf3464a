/* cmd_serve.c: `snipmeta serve`: loads the base and the adapter directory once and serves the
 * metadata over HTTP until SIGINT or SIGTERM (server.h has the endpoints). */
#include "cli.h"

#include "server.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: snipmeta serve [-m BASE.gguf --adapters DIR] [options]\n"
            "\n"
            "Serves snippet metadata over HTTP: POST /v1/metadata {code, lang?, tasks?}, the web page at /,\n"
            "GET /v1/adapters, POST and DELETE /v1/adapters/NAME (load DIR/NAME.gguf, unload),\n"
            "OpenAI-compatible POST /v1/completions and /v1/chat/completions (`model` or `adapter` names\n"
            "the adapter; temperature defaults to 0), GET /health and GET /metrics (Prometheus).\n"
            "Prints 'listening on http://HOST:PORT' to stderr once ready; stops on SIGINT or SIGTERM.\n"
            "\n"
            "options:\n"
            "  -m, --model PATH     the base model (GGUF; default: the bundled models/snipmeta-base.gguf,\n"
            "                       or the one in $SNIPMETA_MODELS)\n"
            "  --adapters DIR       the adapter directory (title.gguf, ..., tags.txt, links.txt;\n"
            "                       default: models/adapters beside the bundled base)\n"
            "  --host ADDR          IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port N             port (default 8080; 0: any free port)\n"
            "  --workers N          inference workers, each with its own context (default 1)\n"
            "  -t, --threads N      threads per worker (default: all cores / workers)\n"
            "  --token TOKEN        require 'Authorization: Bearer TOKEN' on /v1/* and /metrics\n"
            "                       (default: $SNIPMETA_TOKEN when set)\n"
            "  --max-body BYTES     the largest request body (default 1048576)\n"
            "  --max-tokens N       the largest max_tokens of a completion (default 512)\n"
            "  --ctx N              context positions per worker (default %d)\n"
            "  --queue N            requests waiting for a worker before 503 (default 64)\n"
            "  -h, --help           this help\n"
            "\nexit codes: 0 success, 1 failure at run time, 2 bad usage or bad input file\n",
            SM_META_DEFAULT_CTX);
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *adapters = NULL;
    sm_server_params p = {.host = "127.0.0.1", .port = 8080, .workers = 1, .token = getenv("SNIPMETA_TOKEN")};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return EXIT_OK; }
        if (i + 1 >= argc) return cli_usage_error("serve", "%s needs a value (or is unknown)", a);
        const char *v = argv[++i];
        long long n = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--adapters")) adapters = v;
        else if (!strcmp(a, "--host")) p.host = v;
        else if (!strcmp(a, "--token")) p.token = v;
        else if (!strcmp(a, "--port")) {
            if (cli_parse_int(v, 0, 65535, &n)) return cli_usage_error("serve", "--port wants 0-65535, not '%s'", v);
            p.port = (int)n;
        } else if (!strcmp(a, "--workers")) {
            if (cli_parse_int(v, 1, 256, &n)) return cli_usage_error("serve", "--workers wants 1-256, not '%s'", v);
            p.workers = (int)n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_int(v, 0, 4096, &n)) return cli_usage_error("serve", "-t wants a thread count, not '%s'", v);
            p.threads = (int)n;
        } else if (!strcmp(a, "--max-body")) {
            if (cli_parse_int(v, 1024, 1LL << 30, &n)) return cli_usage_error("serve", "--max-body wants 1024 bytes to 1 GiB, not '%s'", v);
            p.max_body = (size_t)n;
        } else if (!strcmp(a, "--max-tokens")) {
            if (cli_parse_int(v, 1, 1 << 20, &n)) return cli_usage_error("serve", "--max-tokens wants a positive count, not '%s'", v);
            p.max_tokens = (int)n;
        } else if (!strcmp(a, "--ctx")) {
            if (cli_parse_int(v, 64, 1 << 20, &n)) return cli_usage_error("serve", "--ctx wants positions >= 64, not '%s'", v);
            p.n_ctx = (int)n;
        } else if (!strcmp(a, "--queue")) {
            if (cli_parse_int(v, 1, 1 << 20, &n)) return cli_usage_error("serve", "--queue wants a positive count, not '%s'", v);
            p.queue_max = (int)n;
        } else return cli_usage_error("serve", "unknown option '%s'", a);
    }
    if (!model && !adapters) { /* the bundled default */
        char looked[1024];
        if (cli_default_models(&model, &adapters, looked, sizeof looked))
            return cli_usage_error("serve", "no bundled model (snipmeta-base.gguf) in %s: pass -m BASE.gguf --adapters DIR "
                                            "or set SNIPMETA_MODELS to the folder that holds it", looked);
    }
    if (!model || !adapters)
        return cli_usage_error("serve", "pass both the base model and its adapter directory (-m BASE.gguf --adapters DIR), "
                                        "or neither for the bundled default");
    /* the signals are taken by sigwait below: block them before any thread starts */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    sm_error err = {0};
    int rc = EXIT_OK;
    sm_model *m = sm_model_load(model, &err);
    sm_registry *reg = m ? sm_registry_open(m, adapters, &err) : NULL;
    sm_server *s = reg ? sm_server_start(m, reg, &p, &err) : NULL;
    if (!s) rc = cli_report(&err);
    else {
        sm_registry_info *info = NULL;
        int n = 0;
        if (sm_registry_list(reg, &info, &n) == SM_OK) {
            fprintf(stderr, "snipmeta serve: %s with %d adapter%s from %s:", model, n, n == 1 ? "" : "s", adapters);
            for (int i = 0; i < n; i++) fprintf(stderr, " %s%s", info[i].name, info[i].activated ? " (activated)" : "");
            fprintf(stderr, "; %d tags, %d links; %d worker%s\n", sm_constraint_size(sm_registry_tags(reg)),
                    sm_constraint_size(sm_registry_links(reg)), p.workers, p.workers == 1 ? "" : "s");
            free(info);
        }
        fprintf(stderr, "snipmeta serve: listening on http://%s:%d\n", p.host, sm_server_port(s));
        int sig = 0;
        sigwait(&stop, &sig);
        fprintf(stderr, "snipmeta serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        sm_server_stop(s);
    }
    sm_registry_free(reg);
    sm_model_free(m);
    return rc;
}
