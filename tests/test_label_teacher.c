/* test_label_teacher.c: the teacher client's endpoint from a base URL, its parameter checks, and
 * a refused connection ending the run at once with a clear error (no retries, no hang). */
#include "teacher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void endpoint(const char *base, const char *want) {
    sm_teacher_params p = sm_teacher_default_params();
    p.base_url = base;
    p.model = "m";
    sm_teacher *t;
    sm_error err = {0};
    if (sm_teacher_new(&t, &p, &err)) { CHECK(0, "%s: %s", base, err.msg); return; }
    CHECK(!strcmp(sm_teacher_url(t), want), "%s -> %s, expected %s", base, sm_teacher_url(t), want);
    sm_teacher_free(t);
}

/* A loopback port with nothing listening on it. */
static int closed_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

int main(void) {
    endpoint("http://localhost:8080", "http://localhost:8080/v1/chat/completions");
    endpoint("http://localhost:8080/", "http://localhost:8080/v1/chat/completions");
    endpoint("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions");
    endpoint("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions");
    endpoint("http://host/openai/v1", "http://host/openai/v1/chat/completions");
    endpoint("http://127.0.0.1:11434/v1/chat/completions", "http://127.0.0.1:11434/v1/chat/completions");

    sm_teacher_params p = sm_teacher_default_params();
    sm_teacher *t;
    sm_error err = {0};
    p.model = "m";
    p.base_url = "ftp://x";
    CHECK(sm_teacher_new(&t, &p, &err) == SM_EINVAL, "ftp URL accepted");
    p.base_url = "http://x";
    p.model = NULL;
    CHECK(sm_teacher_new(&t, &p, &err) == SM_EINVAL, "no model accepted");
    p.model = "m";
    p.concurrency = 0;
    CHECK(sm_teacher_new(&t, &p, &err) == SM_EINVAL, "concurrency 0 accepted");

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    p = sm_teacher_default_params();
    p.base_url = url;
    p.model = "m";
    p.timeout_s = 30;
    p.api_key = "k-secret";
    if (sm_teacher_new(&t, &p, &err) == SM_OK) {
        for (int i = 0; i < 3; i++) sm_teacher_submit(t, "system", "user", NULL, &err);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sm_teacher_result r;
        int rc = sm_teacher_next(t, &r, 10000, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        CHECK(rc == SM_EIO && strstr(err.msg, "cannot reach the teacher") && s < 2, "refused: rc %d after %.2f s: %s", rc, s, err.msg);
        CHECK(!strstr(err.msg, "k-secret"), "the key is in the message");
        printf("refused connection: %.3f s: %s\n", s, err.msg);
        sm_teacher_free(t);
    } else CHECK(0, "new: %s", err.msg);

    if (failures) { fprintf(stderr, "test_label_teacher: %d failures\n", failures); return 1; }
    printf("test_label_teacher: ok\n");
    return 0;
}
