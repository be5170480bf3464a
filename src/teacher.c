/* teacher.c: the chat-completions client on libcurl's multi interface (see teacher.h).
 *
 * Each request lives on one of three lists: waiting (queued, or backing off until not_before),
 * active (a curl easy handle in the multi), done (finished, to be handed out by
 * sm_teacher_next). Waiting is scanned in order, so requests start in the order submitted unless
 * one is backing off.
 */
#include "teacher.h"

#include "sample.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RESPONSE (16u << 20)

typedef struct request {
    void *tag;
    char *body;
    int attempts;
    double not_before;
    CURL *easy;
    char *resp;
    size_t resp_len, resp_cap;
    int resp_too_large;
    double started;
    /* the outcome, once finished */
    int ok;
    char reason[160];
    char *content;
    double latency_ms;
    long long prompt_tokens, completion_tokens;
    struct request *next;
} request;

struct sm_teacher {
    sm_teacher_params p;
    char *url, *model, *auth_header; /* auth_header holds the key: wiped when freed */
    struct curl_slist *headers;
    CURLM *multi;
    request *waiting, *active, *done, *done_tail;
    int n_active, n_pending;
    int any_response; /* the server has answered at least once (any HTTP status) */
    uint64_t rng;
    long long n_attempts, n_retries;
    struct { char code[32]; long long n; } failures[32]; /* failed attempts by reason code */
    int n_failure_codes;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

sm_teacher_params sm_teacher_default_params(void) {
    return (sm_teacher_params){.concurrency = 4, .timeout_s = 60, .max_retries = 4, .backoff_base_s = 1,
                               .backoff_max_s = 60, .temperature = 0, .max_tokens = 0, .seed = 1};
}

/* The endpoint for a base URL (see teacher.h). Returns a new string, or NULL when out of memory. */
static char *endpoint_url(const char *base) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    static const char suffix[] = "/chat/completions";
    size_t sl = sizeof suffix - 1;
    const char *add;
    const char *scheme = strstr(base, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    if (n >= sl && !strncmp(base + n - sl, suffix, sl)) add = "";
    else if (!path || path >= base + n) add = "/v1/chat/completions";
    else add = suffix;
    char *url = malloc(n + strlen(add) + 1);
    if (url) { memcpy(url, base, n); strcpy(url + n, add); }
    return url;
}

int sm_teacher_new(sm_teacher **out, const sm_teacher_params *p, sm_error *err) {
    *out = NULL;
    if (!p->base_url || !*p->base_url) return sm_err(err, SM_EINVAL, "no teacher URL");
    if (strncmp(p->base_url, "http://", 7) && strncmp(p->base_url, "https://", 8))
        return sm_err(err, SM_EINVAL, "teacher URL '%s' is not an http:// or https:// URL", p->base_url);
    if (!p->model || !*p->model) return sm_err(err, SM_EINVAL, "no teacher model name");
    if (p->concurrency < 1 || p->timeout_s <= 0 || p->max_retries < 0)
        return sm_err(err, SM_EINVAL, "teacher: concurrency >= 1, timeout > 0 and retries >= 0 expected");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return sm_err(err, SM_EIO, "cannot initialise libcurl");
    sm_teacher *t = calloc(1, sizeof *t);
    if (!t) return sm_err(err, SM_ENOMEM, "out of memory");
    t->p = *p;
    t->rng = p->seed;
    t->url = endpoint_url(p->base_url);
    t->model = strdup(p->model);
    t->multi = curl_multi_init();
    int oom = !t->url || !t->model || !t->multi;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) t->headers = h, h = curl_slist_append(t->headers, "Expect:"); /* no 100-continue round trip */
    if (h && p->api_key && *p->api_key) {
        size_t len = strlen(p->api_key) + 32;
        t->auth_header = malloc(len);
        if (t->auth_header) {
            snprintf(t->auth_header, len, "Authorization: Bearer %s", p->api_key);
            h = curl_slist_append(t->headers, t->auth_header);
        } else h = NULL;
    }
    if (oom || !h) { sm_teacher_free(t); return sm_err(err, SM_ENOMEM, "out of memory"); }
    t->p.api_key = NULL; /* the caller's pointer is not kept */
    *out = t;
    return SM_OK;
}

static void request_free(request *r) {
    if (!r) return;
    if (r->easy) curl_easy_cleanup(r->easy);
    free(r->body);
    free(r->resp);
    free(r->content);
    free(r);
}

static void wipe(char *s) {
    if (!s) return;
    volatile char *v = s;
    while (*v) *v++ = 0;
    free(s);
}

static void free_list(sm_teacher *t, request *r) {
    for (request *n; r; r = n) {
        n = r->next;
        if (r->easy) curl_multi_remove_handle(t->multi, r->easy);
        request_free(r);
    }
}

void sm_teacher_free(sm_teacher *t) {
    if (!t) return;
    free_list(t, t->waiting);
    free_list(t, t->active);
    free_list(t, t->done);
    curl_multi_cleanup(t->multi);
    for (struct curl_slist *h = t->headers; h; h = h->next) /* the slist copied the key */
        if (!strncmp(h->data, "Authorization:", 14)) { volatile char *v = h->data; while (*v) *v++ = 0; }
    curl_slist_free_all(t->headers);
    wipe(t->auth_header);
    free(t->url);
    free(t->model);
    free(t);
}

const char *sm_teacher_url(const sm_teacher *t) { return t->url; }

int sm_teacher_pending(const sm_teacher *t) { return t->n_pending; }

void sm_teacher_counts(const sm_teacher *t, long long *attempts, long long *retries) {
    if (attempts) *attempts = t->n_attempts;
    if (retries) *retries = t->n_retries;
}

void sm_teacher_result_clear(sm_teacher_result *r) {
    free(r->content);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int sm_teacher_cancel_queued(sm_teacher *t) {
    int n = 0;
    for (request *r = t->waiting, *next; r; r = next) {
        next = r->next;
        request_free(r);
        n++;
    }
    t->waiting = NULL;
    t->n_pending -= n;
    return n;
}

int sm_teacher_submit(sm_teacher *t, const char *system, const char *user, void *tag, sm_error *err) {
    json_t *msgs = json_array();
    if (system) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", user));
    json_t *req = json_pack("{s:s, s:o}", "model", t->model, "messages", msgs);
    if (req && t->p.temperature >= 0) json_object_set_new(req, "temperature", json_real(t->p.temperature));
    if (req && t->p.max_tokens > 0) json_object_set_new(req, "max_tokens", json_integer(t->p.max_tokens));
    request *r = calloc(1, sizeof *r);
    if (r && req) r->body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!r || !r->body) { request_free(r); return sm_err(err, SM_ENOMEM, "out of memory (or a message that is not UTF-8)"); }
    r->tag = tag;
    request **p = &t->waiting;
    while (*p) p = &(*p)->next;
    *p = r;
    t->n_pending++;
    return SM_OK;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx) {
    request *r = ctx;
    size_t n = size * nmemb;
    if (r->resp_len + n > MAX_RESPONSE) { r->resp_too_large = 1; return 0; }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t cap = (r->resp_len + n + 1) * 2;
        char *p = realloc(r->resp, cap);
        if (!p) return 0;
        r->resp = p;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, data, n);
    r->resp_len += n;
    r->resp[r->resp_len] = 0;
    return n;
}

static int start(sm_teacher *t, request *r, sm_error *err) {
    CURL *e = curl_easy_init();
    if (!e) return sm_err(err, SM_ENOMEM, "out of memory");
    r->resp_len = 0;
    r->resp_too_large = 0;
    if (r->resp) r->resp[0] = 0;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t->p.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(fmin(t->p.timeout_s, 15) * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "snipmeta/" SM_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return sm_err(err, SM_EIO, "cannot start a transfer");
    }
    r->easy = e;
    r->attempts++;
    r->started = now_s();
    t->n_attempts++;
    t->n_active++;
    return SM_OK;
}

enum { DONE_OK, DONE_RETRY, DONE_FAIL, DONE_FATAL };

/* Reads an HTTP 200 body: the message text and the usage. */
static int read_answer(request *r) {
    json_t *o = json_loadb(r->resp ? r->resp : "", r->resp_len, 0, NULL);
    if (!o) {
        snprintf(r->reason, sizeof r->reason, "invalid-json: the response body is not JSON");
        return DONE_RETRY;
    }
    json_t *usage = json_object_get(o, "usage");
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    const char *content = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    if (json_is_object(usage)) {
        r->prompt_tokens += json_integer_value(json_object_get(usage, "prompt_tokens"));
        r->completion_tokens += json_integer_value(json_object_get(usage, "completion_tokens"));
    } else { /* a server that reports no usage: about 4 bytes a token */
        r->prompt_tokens += (long long)strlen(r->body) / 4;
        r->completion_tokens += content ? (long long)strlen(content) / 4 : 0;
    }
    int rc = DONE_OK;
    if (!content || !*content) {
        snprintf(r->reason, sizeof r->reason, "no-content: the response has no choices[0].message.content");
        rc = DONE_RETRY;
    } else if (!(r->content = strdup(content))) {
        snprintf(r->reason, sizeof r->reason, "memory: out of memory");
        rc = DONE_FAIL;
    }
    json_decref(o);
    return rc;
}

/* The server's error message in an error body ({"error": {"message": ...}} or text), for reports. */
static void error_text(const request *r, char *out, size_t cap) {
    out[0] = 0;
    if (!r->resp_len) return;
    json_t *o = json_loadb(r->resp, r->resp_len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    const char *m = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    snprintf(out, cap, "%.200s", m ? m : r->resp);
    for (char *p = out; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    json_decref(o);
}

/* Classifies a finished transfer; sets r->reason for failures, *retry_after_s when the server
 * named a wait, and err for fatal ones. */
static int classify(sm_teacher *t, request *r, CURLcode cc, double *retry_after_s, sm_error *err) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    *retry_after_s = -1;
    if (cc != CURLE_OK) {
        if (status > 0) t->any_response = 1;
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            if (!t->any_response)
                return sm_err(err, SM_EIO, "cannot reach the teacher at %s: %s", t->url, curl_easy_strerror(cc)), DONE_FATAL;
            snprintf(r->reason, sizeof r->reason, "connect: %s", curl_easy_strerror(cc));
            return DONE_RETRY;
        case CURLE_OPERATION_TIMEDOUT:
            snprintf(r->reason, sizeof r->reason, "timeout: no full answer within %g s", t->p.timeout_s);
            return DONE_RETRY;
        case CURLE_PARTIAL_FILE:
            snprintf(r->reason, sizeof r->reason, "truncated: the connection closed before the whole body came");
            return DONE_RETRY;
        case CURLE_WRITE_ERROR:
            snprintf(r->reason, sizeof r->reason, r->resp_too_large ? "too-large: a response over 16 MiB" : "memory: out of memory");
            return DONE_FAIL;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return sm_err(err, SM_EIO, "teacher %s: %s", t->url, curl_easy_strerror(cc)), DONE_FATAL;
        default:
            snprintf(r->reason, sizeof r->reason, "connection: %s", curl_easy_strerror(cc));
            return DONE_RETRY;
        }
    }
    t->any_response = 1;
    if (status == 200) return read_answer(r);
    char msg[256];
    error_text(r, msg, sizeof msg);
    snprintf(r->reason, sizeof r->reason, "http-%ld%s%.140s", status, msg[0] ? ": " : "", msg);
    if (status == 401 || status == 403 || status == 404)
        return sm_err(err, SM_EIO, "teacher %s answered HTTP %ld%s%s", t->url, status, msg[0] ? ": " : "", msg), DONE_FATAL;
    if (status == 429 || status == 503) {
        curl_off_t wait = -1;
        if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &wait) == CURLE_OK && wait >= 0) *retry_after_s = (double)wait;
    }
    if (status == 408 || status == 409 || status == 429 || status >= 500) return DONE_RETRY;
    return DONE_FAIL;
}

static void push_done(sm_teacher *t, request *r) {
    r->next = NULL;
    if (t->done_tail) t->done_tail->next = r;
    else t->done = r;
    t->done_tail = r;
}

static void unlink_active(sm_teacher *t, request *r) {
    for (request **p = &t->active; *p; p = &(*p)->next)
        if (*p == r) { *p = r->next; return; }
}

/* Counts a failed attempt under its reason's code (the text before the first ':'). */
static void tally_failure(sm_teacher *t, const char *reason) {
    size_t n = strcspn(reason, ":");
    if (n >= sizeof t->failures[0].code) n = sizeof t->failures[0].code - 1;
    for (int i = 0; i < t->n_failure_codes; i++)
        if (strlen(t->failures[i].code) == n && !strncmp(t->failures[i].code, reason, n)) { t->failures[i].n++; return; }
    if (t->n_failure_codes == 32) return;
    memcpy(t->failures[t->n_failure_codes].code, reason, n);
    t->failures[t->n_failure_codes].code[n] = 0;
    t->failures[t->n_failure_codes++].n = 1;
}

int sm_teacher_failure(const sm_teacher *t, int i, const char **code, long long *count) {
    if (i < 0 || i >= t->n_failure_codes) return 0;
    *code = t->failures[i].code;
    *count = t->failures[i].n;
    return 1;
}

/* Handles the transfers that finished; returns SM_OK or a fatal error. */
static int reap(sm_teacher *t, sm_error *err) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        request *r;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode cc = m->data.result;
        r->latency_ms = (now_s() - r->started) * 1000;
        r->reason[0] = 0;
        double retry_after;
        int kind = classify(t, r, cc, &retry_after, err);
        curl_multi_remove_handle(t->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        t->n_active--;
        unlink_active(t, r);
        if (kind == DONE_FATAL) { request_free(r); t->n_pending--; return err ? err->code : SM_EIO; }
        if (kind != DONE_OK) tally_failure(t, r->reason);
        if (kind == DONE_RETRY && r->attempts <= t->p.max_retries) {
            double backoff = fmin(t->p.backoff_max_s, t->p.backoff_base_s * ldexp(1.0, r->attempts - 1));
            backoff *= 0.5 + 0.5 * (double)(sm_rng_next(&t->rng) >> 11) / 9007199254740992.0;
            if (retry_after >= 0) backoff = fmin(retry_after, 3600);
            r->not_before = now_s() + backoff;
            t->n_retries++;
            request **p = &t->waiting; /* back in line, ahead of requests never tried */
            r->next = *p;
            *p = r;
            continue;
        }
        r->ok = kind == DONE_OK;
        push_done(t, r);
    }
    return SM_OK;
}

/* Starts waiting requests while there is room; returns the seconds until the next one that is
 * backing off may start (a large number when none). */
static double start_ready(sm_teacher *t, int *rc, sm_error *err) {
    double now = now_s(), next = 1e9;
    for (request **p = &t->waiting; *p && t->n_active < t->p.concurrency;) {
        request *r = *p;
        if (r->not_before > now) {
            if (r->not_before - now < next) next = r->not_before - now;
            p = &r->next;
            continue;
        }
        if ((*rc = start(t, r, err)) != SM_OK) return 0;
        *p = r->next;
        r->next = t->active;
        t->active = r;
    }
    return next;
}

static void hand_out(sm_teacher *t, sm_teacher_result *res) {
    request *r = t->done;
    t->done = r->next;
    if (!t->done) t->done_tail = NULL;
    t->n_pending--;
    memset(res, 0, sizeof *res);
    res->tag = r->tag;
    res->ok = r->ok;
    snprintf(res->reason, sizeof res->reason, "%s", r->reason);
    res->content = r->content;
    r->content = NULL;
    res->body = r->resp;
    r->resp = NULL;
    res->prompt_tokens = r->prompt_tokens;
    res->completion_tokens = r->completion_tokens;
    res->latency_ms = r->latency_ms;
    res->attempts = r->attempts;
    request_free(r);
}

int sm_teacher_next(sm_teacher *t, sm_teacher_result *res, int wait_ms, sm_error *err) {
    double deadline = now_s() + wait_ms / 1000.0;
    for (;;) {
        if (t->done) { hand_out(t, res); return 1; }
        if (!t->n_pending) return 0;
        int rc = SM_OK;
        double next_start = start_ready(t, &rc, err);
        if (rc != SM_OK) return rc;
        int running;
        if (curl_multi_perform(t->multi, &running) != CURLM_OK) return sm_err(err, SM_EIO, "libcurl multi failed");
        if ((rc = reap(t, err)) != SM_OK) return rc;
        if (t->done) continue;
        double left = deadline - now_s();
        if (left <= 0) return 0;
        double wait = fmin(left, fmin(next_start, 1.0));
        if (t->n_active) {
            if (curl_multi_poll(t->multi, NULL, 0, (int)(wait * 1000) + 1, NULL) != CURLM_OK)
                return sm_err(err, SM_EIO, "libcurl multi poll failed");
        } else {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
}
