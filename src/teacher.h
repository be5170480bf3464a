/* teacher.h: a client for a teacher LLM behind the OpenAI-compatible chat-completions API
 * (OpenAI, a llama.cpp or Ollama server, vLLM), with many requests in flight at once.
 *
 * Requests are queued with sm_teacher_submit and come back, in the order they finish, from
 * sm_teacher_next, which drives libcurl's multi interface: at most `concurrency` transfers run at
 * once, each with its own timeout. A transfer that fails in a way worth repeating (timeout,
 * connection dropped, truncated or non-JSON body, HTTP 408, 429 or 5xx) is retried up to
 * max_retries times after an exponential backoff with jitter (base * 2^k, capped, times a random
 * factor in [0.5, 1]); a 429 or 503 that says Retry-After (seconds or an HTTP-date) waits that
 * long instead. Fatal errors end the run at once: a teacher that refuses connections before it
 * has answered anything, or an HTTP 401, 403 or 404 (bad key, bad model, bad URL).
 *
 * The base URL may be a server root ("http://localhost:8080": /v1/chat/completions is added), an
 * API base ending in a version or any other path ("https://api.openai.com/v1",
 * "http://host/openai/v1": /chat/completions is added), or the full endpoint ending in
 * /chat/completions (used as is). The API key is sent as "Authorization: Bearer KEY"; it is never
 * logged, and its copy is wiped when the teacher is freed.
 */
#ifndef SM_TEACHER_H
#define SM_TEACHER_H

#include "snipmeta.h"

#include <stdint.h>

typedef struct {
    const char *base_url;
    const char *model;
    const char *api_key;      /* NULL or "": no Authorization header */
    int concurrency;          /* transfers at once, >= 1 */
    double timeout_s;         /* per attempt */
    int max_retries;          /* per request, after the first attempt */
    double backoff_base_s, backoff_max_s;
    double temperature;       /* < 0: not sent */
    int max_tokens;           /* 0: not sent */
    uint64_t seed;            /* for the jitter */
} sm_teacher_params;

/* The defaults: concurrency 4, timeout 60 s, 4 retries, backoff 1 s doubling up to 60 s,
 * temperature 0, no max_tokens. base_url and model must be set by the caller. */
sm_teacher_params sm_teacher_default_params(void);

typedef struct sm_teacher sm_teacher;

typedef struct {
    void *tag;                 /* as submitted */
    int ok;                    /* 1: an answer came; content holds it */
    char reason[160];          /* when !ok: "timeout", "http-429", "http-500", "truncated", "invalid-json", ... */
    char *content;             /* the assistant message's text; freed by sm_teacher_result_clear */
    char *body;                /* the last response body (NULL when none); freed likewise */
    long long prompt_tokens, completion_tokens; /* from "usage" (estimated at 4 bytes a token
                                                   when the server sends none) */
    double latency_ms;         /* of the last attempt */
    int attempts;
} sm_teacher_result;

/* Returns SM_OK and a new client that the caller frees with sm_teacher_free, or SM_EINVAL for
 * bad parameters, SM_ENOMEM. */
int sm_teacher_new(sm_teacher **out, const sm_teacher_params *p, sm_error *err);
void sm_teacher_free(sm_teacher *t);

/* The endpoint that requests go to. */
const char *sm_teacher_url(const sm_teacher *t);

/* Queues a chat request with a system message (may be NULL) and a user message (both copied);
 * tag comes back in its result. */
int sm_teacher_submit(sm_teacher *t, const char *system, const char *user, void *tag, sm_error *err);

/* Drops the requests that have not started (queued, or backing off before a retry); returns
 * how many. Those in flight go on. */
int sm_teacher_cancel_queued(sm_teacher *t);

/* Requests queued or in flight. */
int sm_teacher_pending(const sm_teacher *t);

/* Runs transfers until a request finishes (answered, or failed after its retries) or wait_ms
 * passes. Returns 1 with *res filled (the caller clears it with sm_teacher_result_clear), 0 when
 * nothing finished in time, or a negative SM_E* code for a fatal error (see above), after which
 * the client should be freed. */
int sm_teacher_next(sm_teacher *t, sm_teacher_result *res, int wait_ms, sm_error *err);
void sm_teacher_result_clear(sm_teacher_result *r);

/* Totals so far: HTTP attempts made, and attempts retried. */
void sm_teacher_counts(const sm_teacher *t, long long *attempts, long long *retries);
/* Failed attempts by reason code ("http-429", "timeout", ...): sets the i-th code and its count
 * and returns 1, or returns 0 past the last. */
int sm_teacher_failure(const sm_teacher *t, int i, const char **code, long long *count);

#endif
