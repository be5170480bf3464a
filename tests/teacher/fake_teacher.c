/* fake_teacher.c: a local OpenAI-compatible teacher for the label tests and benchmarks.
 *
 * It serves POST .../chat/completions on 127.0.0.1 (one thread per connection, HTTP/1.1 with
 * "Connection: close") and answers from a table of labels (a JSONL file in the format of
 * ../shared/data/labels.jsonl, keyed by id), or with a made-up valid label for an unknown id. The
 * snippet id, language and task are read from the user message ("Snippet id: ...",
 * "Language: ...", "Task: ..."; no Task line means all four fields, as in joint mode).
 *
 * Faults are injected on request with per-kind probabilities. Whether a request fails, and how,
 * is a deterministic function of (--seed, snippet id, task, how many times this key was asked),
 * so a run is reproducible whatever the order in which concurrent requests arrive:
 *   429        Too Many Requests with Retry-After (seconds, or an HTTP-date on every other one)
 *   500        Internal Server Error
 *   slow       the answer comes after --slow-ms (longer than the client's timeout)
 *   truncated  Content-Length promises more than is sent before the connection closes
 *   invalid    a 200 whose body is not JSON
 *   bad        a well-formed answer that fails the task checks
 * Answers are written plainly, in ```json fences, or inside prose, by the same deterministic draw.
 *
 * It counts requests: GET /stats returns {"requests": N, "faults": {...}}, and --log FILE gets one
 * line per request: "N ID TASK ATTEMPT FAULT". --port 0 (the default) picks a free port and
 * --port-file writes it. --api-key K makes it require "Authorization: Bearer K".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { F_NONE, F_429, F_500, F_SLOW, F_TRUNCATED, F_INVALID, F_BAD, F_COUNT };
static const char *fault_names[F_COUNT] = {"none", "429", "500", "slow", "truncated", "invalid", "bad"};

typedef struct {
    double p[F_COUNT];   /* probability of each fault kind (p[F_NONE] unused) */
    uint64_t seed;
    int latency_ms, slow_ms, retry_after_s;
    const char *api_key;
    json_t *table;       /* id -> label object */
    FILE *log;
    pthread_mutex_t lock; /* guards everything below */
    json_t *attempts;    /* "id/task" -> times asked */
    long n_requests;
    long n_faults[F_COUNT];
} server;

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static double unit(uint64_t x) { return (double)(mix64(x) >> 11) / 9007199254740992.0; }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void respond(int fd, int code, const char *status, const char *extra_headers, const char *body,
                    size_t promised_len) {
    size_t len = strlen(body);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     code, status, promised_len ? promised_len : len, extra_headers ? extra_headers : "");
    if (write_all(fd, head, (size_t)n) == 0) write_all(fd, body, len);
}

/* Copies the value after `key` on its line in text (e.g. "Snippet id: "), or "" when absent. */
static void find_field(const char *text, const char *key, char *out, size_t cap) {
    out[0] = 0;
    const char *p = strstr(text, key);
    if (!p) return;
    p += strlen(key);
    size_t n = strcspn(p, "\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

/* The label for an id: the table's, or a made-up valid one for an unknown id. A new reference. */
static json_t *label_for(server *s, const char *id, const char *lang) {
    json_t *l = json_object_get(s->table, id);
    if (l) return json_incref(l);
    char title[96];
    snprintf(title, sizeof title, "Handle snippet %.16s", id);
    return json_pack("{s:s, s:s, s:[s, s], s:[]}", "title", title, "description",
                     "Processes its input and returns the result to the caller.", "tags", lang[0] ? lang : "c",
                     "testing", "links");
}

/* A label that fails the checks for the given task ("" for all four fields). */
static json_t *bad_label(const char *lang) {
    return json_pack("{s:s, s:s, s:[s, s], s:[s]}", "title",
                     "This title goes on and on for far more than ten words and ends with a period.",
                     "description", "Too short. Far. Too. Many. Sentences.", "tags", lang[0] ? lang : "c", "Not Kebab",
                     "links", "ftp://example.org/file");
}

static void handle_chat(server *s, int fd, const char *body) {
    json_error_t jerr;
    json_t *req = json_loads(body, 0, &jerr);
    json_t *msgs = req ? json_object_get(req, "messages") : NULL;
    const char *user = NULL;
    for (size_t i = 0; msgs && i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(json_string_value(json_object_get(m, "role")) ? json_string_value(json_object_get(m, "role")) : "", "user"))
            user = json_string_value(json_object_get(m, "content"));
    }
    if (!user) {
        respond(fd, 400, "Bad Request", NULL, "{\"error\": {\"message\": \"no user message\"}}", 0);
        json_decref(req);
        return;
    }
    const char *model = json_string_value(json_object_get(req, "model"));
    char id[128], lang[64], task[64], key[200];
    find_field(user, "Snippet id: ", id, sizeof id);
    find_field(user, "Language: ", lang, sizeof lang);
    find_field(user, "Task: ", task, sizeof task);
    snprintf(key, sizeof key, "%s/%s", id, task);

    pthread_mutex_lock(&s->lock);
    long attempt = json_integer_value(json_object_get(s->attempts, key));
    json_object_set_new(s->attempts, key, json_integer(attempt + 1));
    long n = ++s->n_requests;
    uint64_t h = mix64(s->seed ^ hash_str(key)) + (uint64_t)attempt * 0x632be59bd9b4e019ULL;
    double r = unit(h), acc = 0;
    int fault = F_NONE;
    for (int k = 1; k < F_COUNT; k++) {
        acc += s->p[k];
        if (r < acc) { fault = k; break; }
    }
    s->n_faults[fault]++;
    if (s->log) {
        fprintf(s->log, "%ld %s %s %ld %s\n", n, id[0] ? id : "-", task[0] ? task : "all", attempt, fault_names[fault]);
        fflush(s->log);
    }
    pthread_mutex_unlock(&s->lock);

    if (s->latency_ms) sleep_ms(s->latency_ms);
    if (fault == F_429) {
        char hdr[128];
        if (attempt % 2 == 0) {
            snprintf(hdr, sizeof hdr, "Retry-After: %d\r\n", s->retry_after_s);
        } else { /* an HTTP-date; whole seconds, so one more to be sure it lies in the future */
            time_t t = time(NULL) + s->retry_after_s + 1;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(hdr, sizeof hdr, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        }
        respond(fd, 429, "Too Many Requests", hdr, "{\"error\": {\"message\": \"rate limited\"}}", 0);
    } else if (fault == F_500) {
        respond(fd, 500, "Internal Server Error", NULL, "{\"error\": {\"message\": \"internal error\"}}", 0);
    } else if (fault == F_INVALID) {
        respond(fd, 200, "OK", NULL, "{\"choices\": [{\"message\": {\"content\": oops", 0);
    } else {
        if (fault == F_SLOW) sleep_ms(s->slow_ms);
        json_t *label = fault == F_BAD ? bad_label(lang) : label_for(s, id, lang);
        json_t *answer = json_pack("{s:s}", "id", id);
        const char *fields[] = {"title", "description", "tags", "links"};
        for (int i = 0; i < 4; i++)
            if (!task[0] || !strcmp(task, fields[i])) json_object_set(answer, fields[i], json_object_get(label, fields[i]));
        char *a = json_dumps(answer, JSON_COMPACT);
        char *content = NULL;
        int style = (int)(mix64(h ^ 0x5151) % 3);
        if (style == 0) content = strdup(a);
        else if (style == 1 && asprintf(&content, "```json\n%s\n```", a) < 0) content = NULL;
        else if (style == 2 && asprintf(&content, "Here is the label you asked for:\n%s\nI hope it helps.", a) < 0) content = NULL;
        json_t *resp = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:I, s:I, s:I}}",
                                 "id", "chatcmpl-fake", "object", "chat.completion", "created", (json_int_t)time(NULL),
                                 "model", model ? model : "fake", "choices", "index", 0, "message", "role",
                                 "assistant", "content", content ? content : a, "finish_reason", "stop", "usage",
                                 "prompt_tokens", (json_int_t)(strlen(body) / 4), "completion_tokens",
                                 (json_int_t)(strlen(a) / 4), "total_tokens",
                                 (json_int_t)(strlen(body) / 4 + strlen(a) / 4));
        char *out = json_dumps(resp, JSON_COMPACT);
        if (fault == F_TRUNCATED) {
            out[strlen(out) / 2] = 0;
            respond(fd, 200, "OK", NULL, out, strlen(out) * 2 + 7);
        } else {
            respond(fd, 200, "OK", NULL, out, 0);
        }
        free(out);
        free(a);
        free(content);
        json_decref(resp);
        json_decref(answer);
        json_decref(label);
    }
    json_decref(req);
}

typedef struct { server *s; int fd; } conn;

static void *serve_conn(void *arg) {
    conn c = *(conn *)arg;
    free(arg);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    char *body = NULL;
    long content_length = -1;
    int sent_continue = 0;
    while (buf) {
        ssize_t r = recv(c.fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end && content_length < 0) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            content_length = cl && cl < end ? atol(cl + 17) : 0;
            if (!sent_continue && strcasestr(buf, "\r\nExpect: 100-continue")) {
                write_all(c.fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                sent_continue = 1;
            }
        }
        if (end && (long)(len - (size_t)(end + 4 - buf)) >= content_length) { body = end + 4; break; }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    if (body) {
        body[content_length] = 0;
        char auth[256] = "";
        if (c.s->api_key) {
            char want[300];
            snprintf(want, sizeof want, "Bearer %s", c.s->api_key);
            find_field(buf, "\r\nAuthorization: ", auth, sizeof auth);
            if (strcmp(auth, want)) {
                respond(c.fd, 401, "Unauthorized", NULL, "{\"error\": {\"message\": \"bad API key\"}}", 0);
                goto done;
            }
        }
        if (!strncmp(buf, "GET /stats ", 11)) {
            pthread_mutex_lock(&c.s->lock);
            json_t *faults = json_object();
            for (int k = 0; k < F_COUNT; k++) json_object_set_new(faults, fault_names[k], json_integer(c.s->n_faults[k]));
            json_t *st = json_pack("{s:I, s:o}", "requests", (json_int_t)c.s->n_requests, "faults", faults);
            pthread_mutex_unlock(&c.s->lock);
            char *out = json_dumps(st, JSON_COMPACT);
            respond(c.fd, 200, "OK", NULL, out, 0);
            free(out);
            json_decref(st);
        } else if (!strncmp(buf, "POST ", 5) && strstr(buf, "/chat/completions ") && strstr(buf, "/chat/completions ") < strstr(buf, "\r\n")) {
            handle_chat(c.s, c.fd, body);
        } else {
            respond(c.fd, 404, "Not Found", NULL, "{\"error\": {\"message\": \"no such endpoint\"}}", 0);
        }
    }
done:
    free(buf);
    close(c.fd);
    return NULL;
}

static int load_table(server *s, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "fake_teacher: cannot open %s\n", path); return -1; }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));
        if (id) json_object_set(s->table, id, o);
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    static server s;
    s.seed = 1;
    s.slow_ms = 5000;
    s.retry_after_s = 1;
    s.table = json_object();
    s.attempts = json_object();
    pthread_mutex_init(&s.lock, NULL);
    int port = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int k = -1;
        for (int j = 1; j < F_COUNT; j++) {
            char name[32];
            snprintf(name, sizeof name, "--p-%s", fault_names[j]);
            if (!strcmp(a, name)) k = j;
        }
        if (!v && strcmp(a, "--help")) { fprintf(stderr, "fake_teacher: %s needs a value\n", a); return 2; }
        if (k > 0) s.p[k] = atof(v);
        else if (!strcmp(a, "--p-all")) for (int j = 1; j < F_COUNT; j++) s.p[j] = atof(v);
        else if (!strcmp(a, "--seed")) s.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--latency-ms")) s.latency_ms = atoi(v);
        else if (!strcmp(a, "--slow-ms")) s.slow_ms = atoi(v);
        else if (!strcmp(a, "--retry-after")) s.retry_after_s = atoi(v);
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--api-key")) s.api_key = v;
        else if (!strcmp(a, "--labels")) { if (load_table(&s, v)) return 1; }
        else if (!strcmp(a, "--log")) {
            s.log = fopen(v, "a");
            if (!s.log) { fprintf(stderr, "fake_teacher: cannot open %s\n", v); return 1; }
        } else {
            fprintf(stderr, "usage: fake_teacher [--labels FILE] [--port N] [--port-file F] [--log F] [--seed S]\n"
                            "  [--latency-ms N] [--slow-ms N] [--retry-after S] [--api-key K]\n"
                            "  [--p-429 P] [--p-500 P] [--p-slow P] [--p-truncated P] [--p-invalid P] [--p-bad P] [--p-all P]\n");
            return strcmp(a, "--help") ? 2 : 0;
        }
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 128) ||
        getsockname(ls, (struct sockaddr *)&addr, &alen)) {
        perror("fake_teacher: listen");
        return 1;
    }
    if (port_file) { /* written whole, then renamed, so a reader never sees half a number */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", ntohs(addr.sin_port)) < 0 || fclose(f) || rename(tmp, port_file)) {
            fprintf(stderr, "fake_teacher: cannot write %s\n", port_file);
            return 1;
        }
    }
    fprintf(stderr, "fake_teacher: listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) { if (errno == EINTR) continue; perror("fake_teacher: accept"); continue; }
        conn *c = malloc(sizeof *c);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!c || (c->s = &s, c->fd = fd, pthread_create(&t, &attr, serve_conn, c))) { close(fd); free(c); }
        pthread_attr_destroy(&attr);
    }
}
