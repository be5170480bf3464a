/* server.c: the HTTP front of the metadata service: libmicrohttpd's callbacks, routing, request
 * validation, the worker pool and its queue, and the metrics (see server.h for the API). */
#include "server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { KIND_META, KIND_COMPLETION, KIND_CHAT };
enum { STAGE_RECEIVING, STAGE_QUEUED, STAGE_DONE };
/* endpoints, for the metrics */
enum { EP_METADATA, EP_COMPLETIONS, EP_CHAT, EP_ADAPTERS, EP_PAGE, EP_HEALTH, EP_METRICS, EP_OTHER, EP_COUNT };
static const char *endpoint_names[EP_COUNT] = {"metadata", "completions", "chat_completions", "adapters",
                                               "page", "health", "metrics", "other"};
static const double buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct request {
    struct MHD_Connection *conn;
    double t0;
    int endpoint;
    char *body;
    size_t len, cap;
    int too_large;
    int stage;
    int kind;
    json_t *in;             /* the parsed request (queued kinds) */
    char lang[48];
    const sm_lora *adapter; /* acquired for a completion; NULL: the base */
    char adapter_name[SM_REGISTRY_NAME_MAX + 1];
    /* the answer */
    int status;
    char *answer;
    const char *content_type;
    struct request *next;
} request;

typedef struct {
    long long requests[EP_COUNT][6];    /* by status class 1xx..5xx (index 1..5) */
    double seconds_sum[EP_COUNT];
    long long hist[EP_COUNT][N_BUCKETS + 1];
    double task_seconds[SM_TASK_COUNT];
    long long task_count[SM_TASK_COUNT];
    long long prompt_tokens, completion_tokens;
    int busy;
} metrics;

struct sm_server {
    const sm_model *model;
    sm_registry *registry;
    sm_server_params p;
    char token[256];
    struct MHD_Daemon *daemon;
    int port;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;   /* the queue, stopping, and the metrics */
    pthread_cond_t cond;
    request *head, *tail;
    int queued, stopping;
    metrics m;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- answers ---- */

static void answer_json(request *rq, int status, json_t *j) {
    free(rq->answer);
    rq->status = status;
    rq->answer = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    rq->content_type = "application/json";
    json_decref(j);
    if (!rq->answer) rq->status = 500;
}

static void answer_error(request *rq, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void answer_error(request *rq, int status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401 ? "authentication_error" : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error" : "invalid_request_error";
    json_t *e = json_pack("{s:{s:s,s:s,s:i}}", "error", "message", msg, "type", type, "code", status);
    if (!e) { /* a message that is not UTF-8 */
        e = json_pack("{s:{s:s,s:s,s:i}}", "error", "message", "bad request", "type", type, "code", status);
    }
    answer_json(rq, status, e);
}

static int status_of(int code) { return code == SM_ENOMEM || code == SM_EIO ? 500 : 400; }

static enum MHD_Result send_answer(struct MHD_Connection *conn, request *rq) {
    const char *body = rq->answer ? rq->answer : "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\",\"code\":500}}";
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", rq->content_type ? rq->content_type : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (rq->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (rq->status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)(rq->answer ? rq->status : 500), resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- the worker pool ---- */

static int stop_strings(json_t *stop, const char **out, int max) {
    if (json_is_string(stop)) { out[0] = json_string_value(stop); return 1; }
    int n = 0;
    for (size_t i = 0; i < json_array_size(stop) && n < max; i++)
        if (json_is_string(json_array_get(stop, i)) && json_string_length(json_array_get(stop, i)))
            out[n++] = json_string_value(json_array_get(stop, i));
    return n;
}

static sm_sampler_params sampling_of(json_t *in) {
    sm_sampler_params sp = sm_sampler_default_params();
    sp.temp = 0;
    json_t *v;
    if (json_is_number(v = json_object_get(in, "temperature"))) sp.temp = (float)json_number_value(v);
    if (json_is_number(v = json_object_get(in, "top_p"))) sp.top_p = (float)json_number_value(v);
    if (json_is_integer(v = json_object_get(in, "top_k"))) sp.top_k = (int)json_integer_value(v);
    if (json_is_integer(v = json_object_get(in, "seed"))) sp.seed = (uint64_t)json_integer_value(v);
    return sp;
}

static void run_metadata(sm_server *s, sm_meta_worker *w, request *rq) {
    sm_meta_params p = sm_meta_default_params();
    p.sampling = sampling_of(rq->in);
    json_t *tasks = json_object_get(rq->in, "tasks");
    if (tasks) {
        p.tasks = 0;
        for (size_t i = 0; i < json_array_size(tasks); i++)
            p.tasks |= 1u << sm_task_from_name(json_string_value(json_array_get(tasks, i)));
    }
    sm_meta_result res;
    sm_error err = {0};
    const char *code = json_string_value(json_object_get(rq->in, "code"));
    if (sm_meta_run(w, s->registry, rq->lang, code, &p, &res, &err)) {
        answer_error(rq, status_of(err.code), "%s", err.msg);
        return;
    }
    answer_json(rq, 200, sm_meta_result_json(&res, rq->lang, 1));
    pthread_mutex_lock(&s->lock);
    for (int t = 0; t < SM_TASK_COUNT; t++)
        if (res.tasks & (1u << t)) s->m.task_seconds[t] += res.task_ms[t] / 1e3, s->m.task_count[t]++;
    s->m.prompt_tokens += res.n_prompt_tokens;
    for (int t = 0; t < SM_TASK_COUNT; t++) s->m.completion_tokens += res.n_generated[t];
    pthread_mutex_unlock(&s->lock);
    sm_meta_result_free(&res);
}

static void run_completion(sm_server *s, sm_meta_worker *w, request *rq) {
    json_t *in = rq->in, *v;
    char *prompt = NULL;
    if (rq->kind == KIND_CHAT) {
        size_t len = 0;
        json_t *msgs = json_object_get(in, "messages");
        for (size_t i = 0; i < json_array_size(msgs); i++) len += json_string_length(json_object_get(json_array_get(msgs, i), "content")) + 1;
        if ((prompt = malloc(len + 1))) {
            char *p = prompt;
            for (size_t i = 0; i < json_array_size(msgs); i++) {
                if (i) *p++ = '\n';
                p = stpcpy(p, json_string_value(json_object_get(json_array_get(msgs, i), "content")));
            }
            *p = 0;
        }
    } else {
        prompt = strdup(json_string_value(json_object_get(in, "prompt")));
    }
    if (!prompt) { answer_error(rq, 500, "out of memory"); return; }
    int max_tokens = json_is_integer(v = json_object_get(in, "max_tokens")) ? (int)json_integer_value(v)
                     : json_is_integer(v = json_object_get(in, "max_completion_tokens")) ? (int)json_integer_value(v) : 64;
    const char *stop[4];
    int n_stop = stop_strings(json_object_get(in, "stop"), stop, 4);
    sm_sampler_params sp = sampling_of(in);
    char *text = NULL;
    const char *finish = "stop";
    int n_prompt = 0, n_completion = 0;
    sm_error err = {0};
    int rc = sm_meta_complete(w, rq->adapter, prompt, max_tokens, &sp, stop, n_stop, &text, &finish, &n_prompt, &n_completion, &err);
    free(prompt);
    if (rc) { answer_error(rq, status_of(err.code), "%s", err.msg); return; }
    char id[48];
    uint64_t x = (uint64_t)(now_s() * 1e9) ^ (uint64_t)(uintptr_t)rq;
    snprintf(id, sizeof id, "%s-%016llx", rq->kind == KIND_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)x);
    const char *model = rq->adapter_name[0] ? rq->adapter_name : "base";
    json_t *choice = rq->kind == KIND_CHAT
        ? json_pack("{s:i,s:{s:s,s:s},s:s}", "index", 0, "message", "role", "assistant", "content", text, "finish_reason", finish)
        : json_pack("{s:s,s:i,s:n,s:s}", "text", text, "index", 0, "logprobs", "finish_reason", finish);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:{s:i,s:i,s:i}}", "id", id, "object",
                          rq->kind == KIND_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)time(NULL),
                          "model", model, "choices", choice, "usage", "prompt_tokens", n_prompt, "completion_tokens",
                          n_completion, "total_tokens", n_prompt + n_completion);
    free(text);
    answer_json(rq, 200, o);
    pthread_mutex_lock(&s->lock);
    s->m.prompt_tokens += n_prompt;
    s->m.completion_tokens += n_completion;
    pthread_mutex_unlock(&s->lock);
}

typedef struct {
    sm_server *s;
    int index;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    sm_server *s = wa->s;
    int threads = s->p.threads;
    free(wa);
    if (threads > 0) omp_set_num_threads(threads);
    sm_error err = {0};
    sm_meta_worker *w = sm_meta_worker_new(s->model, s->p.n_ctx, &err);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stopping) pthread_cond_wait(&s->cond, &s->lock);
        request *rq = s->head;
        if (!rq) { pthread_mutex_unlock(&s->lock); break; } /* stopping and nothing left */
        s->head = rq->next;
        if (!s->head) s->tail = NULL;
        s->queued--;
        s->m.busy++;
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping) answer_error(rq, 503, "the server is stopping");
        else if (!w) answer_error(rq, 500, "no inference context: %s", err.msg);
        else if (rq->kind == KIND_META) run_metadata(s, w, rq);
        else run_completion(s, w, rq);
        pthread_mutex_lock(&s->lock);
        s->m.busy--;
        pthread_mutex_unlock(&s->lock);
        rq->stage = STAGE_DONE;
        MHD_resume_connection(rq->conn);
    }
    sm_meta_worker_free(w);
    return NULL;
}

/* ---- validation of the model requests ---- */

/* Checks a /v1/metadata body; fills rq->lang. Returns 0 or answers with an error and returns -1. */
static int check_metadata(sm_server *s, request *rq) {
    json_t *in = rq->in, *code = json_object_get(in, "code"), *lang = json_object_get(in, "lang"), *tasks = json_object_get(in, "tasks");
    if (!code) { answer_error(rq, 400, "missing field 'code'"); return -1; }
    if (!json_is_string(code)) { answer_error(rq, 400, "'code' must be a string"); return -1; }
    const char *c = json_string_value(code);
    size_t len = json_string_length(code);
    if (len == 0 || strspn(c, " \t\r\n") == len) { answer_error(rq, 400, "'code' is empty"); return -1; }
    if (strlen(c) != len || sm_meta_is_binary(c, len)) { answer_error(rq, 400, "'code' looks binary (NUL or control bytes), not source code"); return -1; }
    if (lang && !json_is_null(lang)) {
        if (!json_is_string(lang)) { answer_error(rq, 400, "'lang' must be a string"); return -1; }
        const char *l = json_string_value(lang);
        size_t n = strlen(l);
        int ok = n > 0 && n < sizeof rq->lang;
        for (size_t i = 0; ok && i < n; i++) ok = (l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') || l[i] == '-';
        if (!ok) { answer_error(rq, 400, "'lang' must be lowercase kebab-case such as python or cpp, not '%.40s'", l); return -1; }
        snprintf(rq->lang, sizeof rq->lang, "%s", l);
    } else {
        const char *g = sm_meta_guess_lang(NULL, c);
        if (!g) { answer_error(rq, 400, "no 'lang' given and the language could not be told from the code"); return -1; }
        snprintf(rq->lang, sizeof rq->lang, "%s", g);
    }
    unsigned mask = SM_TASK_ALL;
    if (json_is_string(tasks)) { /* "title,tags" or "all": normalised to an array */
        sm_error err = {0};
        if (sm_task_parse_list(json_string_value(tasks), &mask, &err)) { answer_error(rq, 400, "%s", err.msg); return -1; }
    } else if (tasks && !json_is_null(tasks)) {
        if (!json_is_array(tasks) || json_array_size(tasks) == 0) { answer_error(rq, 400, "'tasks' must be a non-empty array of task names"); return -1; }
        mask = 0;
        for (size_t i = 0; i < json_array_size(tasks); i++) {
            const char *name = json_string_value(json_array_get(tasks, i));
            int t = name ? sm_task_from_name(name) : -1;
            if (name && !strcmp(name, "describe")) t = SM_TASK_DESCRIPTION;
            if (t < 0) { answer_error(rq, 400, "unknown task '%.40s' (expected title, description, tags, links)", name ? name : "(not a string)"); return -1; }
            mask |= 1u << t;
        }
    }
    json_t *arr = json_array();
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        if (!(mask & (1u << t))) continue;
        json_array_append_new(arr, json_string(sm_task_name((sm_task)t)));
        const sm_lora *l = sm_registry_acquire(s->registry, sm_task_name((sm_task)t));
        sm_registry_release(s->registry, l);
        if (!l) {
            json_decref(arr);
            answer_error(rq, 404, "no adapter for task '%s' is loaded", sm_task_name((sm_task)t));
            return -1;
        }
    }
    json_object_set_new(in, "tasks", arr);
    json_t *v = json_object_get(in, "temperature");
    if (v && (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100)) { answer_error(rq, 400, "'temperature' must be a number in [0, 100]"); return -1; }
    v = json_object_get(in, "seed");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) { answer_error(rq, 400, "'seed' must be a non-negative integer"); return -1; }
    return 0;
}

/* Checks a completions body and acquires its adapter. Returns 0 or answers with an error. */
static int check_completion(sm_server *s, request *rq) {
    json_t *in = rq->in, *v;
    if (rq->kind == KIND_CHAT) {
        json_t *msgs = json_object_get(in, "messages");
        if (!msgs) { answer_error(rq, 400, "missing field 'messages'"); return -1; }
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) { answer_error(rq, 400, "'messages' must be a non-empty array"); return -1; }
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i), *c = json_object_get(m, "content");
            if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) || !json_is_string(c)) {
                answer_error(rq, 400, "messages[%zu] must be an object with string 'role' and 'content'", i);
                return -1;
            }
            if (strlen(json_string_value(c)) != json_string_length(c)) { answer_error(rq, 400, "messages[%zu].content holds a NUL byte", i); return -1; }
        }
    } else {
        v = json_object_get(in, "prompt");
        if (!v) { answer_error(rq, 400, "missing field 'prompt'"); return -1; }
        if (!json_is_string(v)) { answer_error(rq, 400, "'prompt' must be a string (token arrays and batches are not supported)"); return -1; }
        if (strlen(json_string_value(v)) != json_string_length(v)) { answer_error(rq, 400, "'prompt' holds a NUL byte"); return -1; }
    }
    if (json_is_true(json_object_get(in, "stream"))) { answer_error(rq, 400, "streaming is not supported ('stream' must be false)"); return -1; }
    if ((v = json_object_get(in, "n")) && !(json_is_integer(v) && json_integer_value(v) == 1)) { answer_error(rq, 400, "only n = 1 is supported"); return -1; }
    json_t *mt = json_object_get(in, "max_tokens");
    if (!mt) mt = json_object_get(in, "max_completion_tokens");
    if (mt && (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > s->p.max_tokens)) {
        answer_error(rq, 400, "'max_tokens' must be an integer in [1, %d]", s->p.max_tokens);
        return -1;
    }
    v = json_object_get(in, "temperature");
    if (v && (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2)) { answer_error(rq, 400, "'temperature' must be a number in [0, 2]"); return -1; }
    v = json_object_get(in, "top_p");
    if (v && (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1))) { answer_error(rq, 400, "'top_p' must be a number in (0, 1]"); return -1; }
    v = json_object_get(in, "seed");
    if (v && !json_is_integer(v)) { answer_error(rq, 400, "'seed' must be an integer"); return -1; }
    v = json_object_get(in, "stop");
    if (v && !json_is_null(v) && !json_is_string(v) && !(json_is_array(v) && json_array_size(v) <= 4)) { answer_error(rq, 400, "'stop' must be a string or an array of up to 4 strings"); return -1; }
    const char *name = json_string_value(json_object_get(in, "adapter"));
    int explicit = name != NULL;
    if (json_object_get(in, "adapter") && !name) { answer_error(rq, 400, "'adapter' must be a string"); return -1; }
    if (!name) name = json_string_value(json_object_get(in, "model"));
    if (name && *name && strcmp(name, "base")) {
        if (!sm_registry_valid_name(name)) { answer_error(rq, 400, "bad adapter name '%.80s'", name); return -1; }
        if (!(rq->adapter = sm_registry_acquire(s->registry, name))) {
            answer_error(rq, 404, "no %s named '%.80s' is loaded (GET /v1/adapters lists them; 'base' is the base alone)",
                         explicit ? "adapter" : "model or adapter", name);
            return -1;
        }
        snprintf(rq->adapter_name, sizeof rq->adapter_name, "%s", name);
    }
    return 0;
}

/* ---- the quick endpoints ---- */

static void list_adapters(sm_server *s, request *rq) {
    sm_registry_info *info = NULL;
    int n = 0;
    if (sm_registry_list(s->registry, &info, &n)) { answer_error(rq, 500, "out of memory"); return; }
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        char targets[64] = "";
        for (int p = 0; p < SM_PROJ_COUNT; p++)
            if (info[i].targets & (1u << p)) snprintf(targets + strlen(targets), sizeof targets - strlen(targets), "%s%s", targets[0] ? "," : "", sm_proj_name((sm_proj)p));
        json_array_append_new(data, json_pack("{s:s,s:s,s:s,s:s,s:i,s:f,s:b,s:b,s:s,s:I}", "id", info[i].name, "object", "model",
                                              "owned_by", "snipmeta", "task", info[i].task, "rank", info[i].rank,
                                              "alpha", (double)info[i].alpha, "rslora", info[i].rslora, "activated",
                                              info[i].activated, "targets", targets, "parameters", (json_int_t)info[i].n_params));
    }
    free(info);
    answer_json(rq, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static void adapter_op(sm_server *s, request *rq, const char *method, const char *name) {
    sm_error err = {0};
    if (!sm_registry_valid_name(name)) { answer_error(rq, 400, "bad adapter name '%.80s' (A-Z a-z 0-9 . _ -, no '..' or '/')", name); return; }
    if (!strcmp(method, "DELETE")) {
        if (sm_registry_unload(s->registry, name, &err)) answer_error(rq, 404, "%s", err.msg);
        else answer_json(rq, 200, json_pack("{s:s,s:b}", "id", name, "deleted", 1));
        return;
    }
    if (sm_registry_load(s->registry, name, &err) == SM_OK) { answer_json(rq, 201, json_pack("{s:s,s:b}", "id", name, "loaded", 1)); return; }
    int status = strstr(err.msg, "loaded already") ? 409 : err.code == SM_EIO ? 404 : err.code == SM_ENOMEM ? 500 : 400;
    answer_error(rq, status, "%s", err.msg);
}

static void add_metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = *buf ? vsnprintf(*buf + *len, *cap - *len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) { *len += (size_t)n; return; }
        size_t grown = *cap ? *cap * 2 : 8192;
        char *p = realloc(*buf, grown);
        if (!p) return;
        *buf = p, *cap = grown;
    }
}

static void metrics_text(sm_server *s, request *rq) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&s->lock);
    metrics m = s->m;
    int queued = s->queued;
    pthread_mutex_unlock(&s->lock);
    add_metric(&b, &len, &cap, "# HELP snipmeta_requests_total HTTP requests answered, by endpoint and status class.\n# TYPE snipmeta_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (int c = 1; c <= 5; c++)
            if (m.requests[e][c]) add_metric(&b, &len, &cap, "snipmeta_requests_total{endpoint=\"%s\",code=\"%dxx\"} %lld\n", endpoint_names[e], c, m.requests[e][c]);
    add_metric(&b, &len, &cap, "# HELP snipmeta_request_duration_seconds Time from a request's arrival to its answer.\n# TYPE snipmeta_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_COUNT; e++) {
        long long count = 0;
        for (int c = 1; c <= 5; c++) count += m.requests[e][c];
        if (!count) continue;
        long long cum = 0;
        for (size_t k = 0; k < N_BUCKETS; k++) {
            cum += m.hist[e][k];
            add_metric(&b, &len, &cap, "snipmeta_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %lld\n", endpoint_names[e], buckets[k], cum);
        }
        add_metric(&b, &len, &cap, "snipmeta_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %lld\n", endpoint_names[e], count);
        add_metric(&b, &len, &cap, "snipmeta_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", endpoint_names[e], m.seconds_sum[e]);
        add_metric(&b, &len, &cap, "snipmeta_request_duration_seconds_count{endpoint=\"%s\"} %lld\n", endpoint_names[e], count);
    }
    add_metric(&b, &len, &cap, "# HELP snipmeta_task_seconds Time spent per metadata task (prefill and decoding).\n# TYPE snipmeta_task_seconds summary\n");
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        add_metric(&b, &len, &cap, "snipmeta_task_seconds_sum{task=\"%s\"} %.6f\n", sm_task_name((sm_task)t), m.task_seconds[t]);
        add_metric(&b, &len, &cap, "snipmeta_task_seconds_count{task=\"%s\"} %lld\n", sm_task_name((sm_task)t), m.task_count[t]);
    }
    add_metric(&b, &len, &cap, "# HELP snipmeta_prompt_tokens_total Prompt tokens read.\n# TYPE snipmeta_prompt_tokens_total counter\nsnipmeta_prompt_tokens_total %lld\n", m.prompt_tokens);
    add_metric(&b, &len, &cap, "# HELP snipmeta_generated_tokens_total Tokens generated.\n# TYPE snipmeta_generated_tokens_total counter\nsnipmeta_generated_tokens_total %lld\n", m.completion_tokens);
    add_metric(&b, &len, &cap, "# HELP snipmeta_queue_depth Requests waiting for a worker.\n# TYPE snipmeta_queue_depth gauge\nsnipmeta_queue_depth %d\n", queued);
    add_metric(&b, &len, &cap, "# HELP snipmeta_workers_busy Workers running a request.\n# TYPE snipmeta_workers_busy gauge\nsnipmeta_workers_busy %d\n", m.busy);
    add_metric(&b, &len, &cap, "# HELP snipmeta_workers Inference workers.\n# TYPE snipmeta_workers gauge\nsnipmeta_workers %d\n", s->n_threads);
    sm_registry_info *info = NULL;
    int n = 0;
    if (sm_registry_list(s->registry, &info, &n) == SM_OK) free(info);
    add_metric(&b, &len, &cap, "# HELP snipmeta_adapters_loaded Adapters resident.\n# TYPE snipmeta_adapters_loaded gauge\nsnipmeta_adapters_loaded %d\n", n);
    add_metric(&b, &len, &cap, "# HELP snipmeta_adapter_bytes Bytes of resident adapter parameters.\n# TYPE snipmeta_adapter_bytes gauge\nsnipmeta_adapter_bytes %zu\n", sm_registry_bytes(s->registry));
    free(rq->answer);
    rq->answer = b;
    rq->status = b ? 200 : 500;
    rq->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static const char *content_type_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    return "text/plain; charset=utf-8";
}

static int authorized(sm_server *s, struct MHD_Connection *conn) {
    if (!s->token[0]) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t n = strlen(s->token), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

/* Routes a complete request: answers it (stage stays RECEIVING) or queues it (STAGE_QUEUED). */
static void route(sm_server *s, request *rq, struct MHD_Connection *conn, const char *url, const char *method) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        rq->endpoint = EP_HEALTH;
        if (!get) { answer_error(rq, 405, "use GET"); return; }
        answer_json(rq, 200, json_pack("{s:s,s:i,s:s}", "status", "ok", "workers", s->n_threads, "version", SM_VERSION));
        return;
    }
    if (!strncmp(url, "/v1/", 4) || !strcmp(url, "/metrics")) {
        if (!authorized(s, conn)) { answer_error(rq, 401, "a valid 'Authorization: Bearer TOKEN' header is required"); return; }
    }
    if (!strcmp(url, "/metrics")) {
        rq->endpoint = EP_METRICS;
        if (!get) { answer_error(rq, 405, "use GET"); return; }
        metrics_text(s, rq);
        return;
    }
    if (!strcmp(url, "/v1/adapters") || !strcmp(url, "/v1/models")) {
        rq->endpoint = EP_ADAPTERS;
        if (!get) { answer_error(rq, 405, "use GET"); return; }
        list_adapters(s, rq);
        return;
    }
    if (!strncmp(url, "/v1/adapters/", 13)) {
        rq->endpoint = EP_ADAPTERS;
        if (!post && strcmp(method, "DELETE")) { answer_error(rq, 405, "use POST to load or DELETE to unload"); return; }
        adapter_op(s, rq, method, url + 13);
        return;
    }
    int kind = -1;
    if (!strcmp(url, "/v1/metadata")) kind = KIND_META, rq->endpoint = EP_METADATA;
    else if (!strcmp(url, "/v1/completions")) kind = KIND_COMPLETION, rq->endpoint = EP_COMPLETIONS;
    else if (!strcmp(url, "/v1/chat/completions")) kind = KIND_CHAT, rq->endpoint = EP_CHAT;
    if (kind >= 0) {
        if (!post) { answer_error(rq, 405, "use POST"); return; }
        if (rq->too_large) { answer_error(rq, 413, "the request body is over the limit of %zu bytes", s->p.max_body); return; }
        json_error_t jerr;
        rq->in = json_loadb(rq->body ? rq->body : "", rq->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
        if (!rq->in) { answer_error(rq, 400, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column); return; }
        if (!json_is_object(rq->in)) { answer_error(rq, 400, "the body must be a JSON object"); return; }
        rq->kind = kind;
        if (kind == KIND_META ? check_metadata(s, rq) : check_completion(s, rq)) return;
        pthread_mutex_lock(&s->lock);
        if (s->stopping) answer_error(rq, 503, "the server is stopping");
        else if (s->queued >= s->p.queue_max) answer_error(rq, 503, "busy: %d requests are queued", s->queued);
        else {
            rq->stage = STAGE_QUEUED;
            MHD_suspend_connection(conn);
            if (s->tail) s->tail->next = rq; else s->head = rq;
            s->tail = rq;
            s->queued++;
            pthread_cond_signal(&s->cond);
        }
        pthread_mutex_unlock(&s->lock);
        return;
    }
    rq->endpoint = !strncmp(url, "/v1/", 4) ? EP_OTHER : EP_PAGE;
    if (rq->endpoint == EP_PAGE && get) {
        const char *name = !strcmp(url, "/") ? "index.html" : url + 1;
        for (const sm_embedded_file *f = sm_web_files; f->name; f++)
            if (!strcmp(f->name, name)) {
                free(rq->answer);
                rq->answer = strndup((const char *)f->text, f->size);
                rq->status = rq->answer ? 200 : 500;
                rq->content_type = content_type_of(name);
                return;
            }
    }
    answer_error(rq, 404, "no such endpoint: %s %.200s", method, url);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    sm_server *s = cls;
    request *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        rq->conn = conn;
        rq->t0 = now_s();
        rq->endpoint = EP_OTHER;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_large || rq->len + n > s->p.max_body) { rq->too_large = 1; return MHD_YES; } /* read and drop */
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = (rq->len + n + 1) * 2;
            if (cap > s->p.max_body + 1) cap = s->p.max_body + 1;
            char *p = realloc(rq->body, cap);
            if (!p) return MHD_NO;
            rq->body = p, rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    if (rq->stage == STAGE_QUEUED) return MHD_YES; /* not yet answered */
    if (rq->stage == STAGE_RECEIVING) {
        route(s, rq, conn, url, method);
        if (rq->stage == STAGE_QUEUED) return MHD_YES;
    }
    return send_answer(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn, (void)toe;
    sm_server *s = cls;
    request *rq = *con_cls;
    if (!rq) return;
    double dt = now_s() - rq->t0;
    int cls_idx = rq->status >= 100 && rq->status < 600 ? rq->status / 100 : 5;
    pthread_mutex_lock(&s->lock);
    s->m.requests[rq->endpoint][cls_idx]++;
    s->m.seconds_sum[rq->endpoint] += dt;
    size_t k = 0;
    while (k < N_BUCKETS && dt > buckets[k]) k++;
    s->m.hist[rq->endpoint][k]++;
    pthread_mutex_unlock(&s->lock);
    sm_registry_release(s->registry, rq->adapter);
    json_decref(rq->in);
    free(rq->body);
    free(rq->answer);
    free(rq);
    *con_cls = NULL;
}

sm_server *sm_server_start(const sm_model *m, sm_registry *r, const sm_server_params *p, sm_error *err) {
    sm_server *s = calloc(1, sizeof *s);
    if (!s) { sm_err(err, SM_ENOMEM, "out of memory for the server"); return NULL; }
    s->model = m, s->registry = r, s->p = *p;
    if (!s->p.host) s->p.host = "127.0.0.1";
    if (s->p.workers <= 0) s->p.workers = 1;
    if (!s->p.max_body) s->p.max_body = 1 << 20;
    if (s->p.max_tokens <= 0) s->p.max_tokens = 512;
    if (s->p.queue_max <= 0) s->p.queue_max = 64;
    if (s->p.threads <= 0) s->p.threads = omp_get_num_procs() / s->p.workers > 0 ? omp_get_num_procs() / s->p.workers : 1;
    if (p->token && strlen(p->token) >= sizeof s->token) { free(s); sm_err(err, SM_EINVAL, "the bearer token is too long"); return NULL; }
    snprintf(s->token, sizeof s->token, "%s", p->token ? p->token : "");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->p.port)};
    if (s->p.port < 0 || s->p.port > 65535 || inet_pton(AF_INET, s->p.host, &addr.sin_addr) != 1) {
        free(s);
        sm_err(err, SM_EINVAL, "bad address %s:%d (expected an IPv4 address and a port 0-65535)", p->host ? p->host : "127.0.0.1", p->port);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (!(s->threads = calloc((size_t)s->p.workers, sizeof *s->threads))) { sm_server_stop(s); sm_err(err, SM_ENOMEM, "out of memory"); return NULL; }
    for (int i = 0; i < s->p.workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) wa->s = s, wa->index = i;
        if (!wa || pthread_create(&s->threads[i], NULL, worker_main, wa)) {
            free(wa);
            sm_server_stop(s);
            sm_err(err, SM_ENOMEM, "cannot start worker %d", i);
            return NULL;
        }
        s->n_threads++;
    }
    s->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)s->p.port, NULL, NULL,
                                 on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_END);
    if (!s->daemon) {
        sm_server_stop(s);
        sm_err(err, SM_EIO, "cannot listen on %s:%d (in use, or not an address of this machine)", p->host ? p->host : "127.0.0.1", p->port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->p.port;
    return s;
}

int sm_server_port(const sm_server *s) { return s->port; }

void sm_server_stop(sm_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL); /* they answer the queue with 503 */
    if (s->daemon) MHD_stop_daemon(s->daemon);
    free(s->threads);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
