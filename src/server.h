/* server.h: `snipmeta serve`: the metadata service over HTTP (libmicrohttpd).
 *
 * Endpoints (JSON in and out unless said otherwise):
 *   GET  /                         the web page (web/, compiled into the binary)
 *   GET  /health                   {"status": "ok", ...}; never needs the token
 *   GET  /metrics                  Prometheus text format 0.0.4
 *   POST /v1/metadata              {code, lang?, tasks?, temperature?, seed?, top_k?, top_p?}
 *                                  -> {lang, title, description, tags, links, checks, timings}
 *                                  (metadata.h's sm_meta_result_json: the CLI's --json answer)
 *   GET  /v1/adapters, /v1/models  the loaded adapters
 *   POST /v1/adapters/NAME         load ADAPTER_DIR/NAME.gguf;  DELETE /v1/adapters/NAME: unload
 *   POST /v1/completions           OpenAI-compatible: prompt, max_tokens, temperature, top_p,
 *                                  seed, stop; `adapter` or `model` names the adapter ("base"
 *                                  or no model: the base alone); no streaming, n = 1
 *   POST /v1/chat/completions      the same with messages: their contents joined by newlines
 *                                  are the prompt (the base has no chat template)
 * Defaults differ from OpenAI's in one way: temperature 0 (greedy, reproducible).
 *
 * Errors are {"error": {"message", "type", "code"}} with a 4xx status for the client's mistakes
 * (400 invalid JSON, a missing or mistyped field, binary code, an unknown task, a bad adapter
 * name; 401 a missing or wrong bearer token; 404 an unknown path, adapter or model; 405 a wrong
 * method; 409 an adapter loaded twice; 413 a body over the limit) and 5xx for the server's (503
 * when the queue is full or the server is stopping).
 *
 * Threads: libmicrohttpd's own thread does all network I/O; a request that needs the model is
 * suspended and queued for a pool of workers, each with its own inference context
 * (sm_meta_worker), and resumed with its answer. The model and the registry are shared.
 */
#ifndef SM_SERVER_H
#define SM_SERVER_H

#include "metadata.h"
#include "prompts.h"

#include <stdint.h>

typedef struct {
    const char *host;       /* address to listen on (default 127.0.0.1) */
    int port;               /* 0: any free port (see sm_server_port) */
    int workers;            /* inference contexts (default 1) */
    int threads;            /* OpenMP threads per worker (0: all cores / workers) */
    const char *token;      /* bearer token for the /v1/ endpoints and /metrics; NULL or "": none */
    size_t max_body;        /* request bytes (default 1 MiB) */
    int n_ctx;              /* context positions per worker (default SM_META_DEFAULT_CTX) */
    int max_tokens;         /* the largest max_tokens of a completion (default 512) */
    int queue_max;          /* queued requests before 503 (default 64) */
} sm_server_params;

typedef struct sm_server sm_server;

/* Starts serving model m with the adapters of r (both must outlive the server). Returns the
 * running server, which the caller stops with sm_server_stop, or NULL with *err set (SM_EINVAL for
 * bad parameters, SM_EIO when the address cannot be bound, SM_ENOMEM). */
sm_server *sm_server_start(const sm_model *m, sm_registry *r, const sm_server_params *p, sm_error *err);
/* The port the server listens on. */
int sm_server_port(const sm_server *s);
/* Stops accepting, answers queued requests with 503, waits for the workers and frees the server.
 * NULL-safe. */
void sm_server_stop(sm_server *s);

/* The files of web/, compiled in by CMake (see CMakeLists.txt), ended by a NULL name. */
extern const sm_embedded_file sm_web_files[];

#endif
