/* test_dataset_lib.c: near-duplicate group keys, the split function, and `dataset` from a labels
 * store (rejects counted by reason, per-task rows merged) and from OpenAI chat JSONL (student
 * format per task, and JSON labels), with a malformed record named by line. */
#include "dataset.h"
#include "store.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void group_keys(void) {
    char a[17], b[17];
    sm_dataset_group_key(a, "c", "int add(int x, int y) {\n    return x + y; /* sum */\n}");
    sm_dataset_group_key(b, "c", "int plus(int a,int b){return a+b;} // renamed, reformatted");
    CHECK(!strcmp(a, b), "renamed copy: %s %s", a, b);
    sm_dataset_group_key(b, "c", "int add(int x, int y) {\n    return x - y;\n}");
    CHECK(strcmp(a, b), "different operator shares a key");
    sm_dataset_group_key(b, "c", "int add(int x, int y) {\n    if (x) return x + y;\n}");
    CHECK(strcmp(a, b), "different structure shares a key");
    sm_dataset_group_key(a, "python", "def f(x):\n    \"\"\"Doc one.\"\"\"\n    return x['a']  # c\n");
    sm_dataset_group_key(b, "python", "def g(y):\n    '''Other doc.'''\n    return y[\"b\"]\n");
    CHECK(!strcmp(a, b), "python strings and comments: %s %s", a, b);
    int counts[3] = {0};
    for (int i = 0; i < 10000; i++) {
        char k[17];
        snprintf(k, sizeof k, "%016x", i * 2654435761u);
        counts[sm_dataset_split(k)]++;
    }
    CHECK(counts[0] > 7700 && counts[0] < 8300 && counts[1] > 850 && counts[2] > 850, "split %d/%d/%d", counts[0], counts[1], counts[2]);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* All splits of a task concatenated. */
static char *task_text(const char *dir, const char *task) {
    static char buf[1 << 16];
    buf[0] = 0;
    const char *splits[] = {"train", "validation", "test"};
    for (int s = 0; s < 3; s++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s/%s.jsonl", dir, task, splits[s]);
        char *t = slurp(path);
        if (t && strlen(buf) + strlen(t) < sizeof buf) strcat(buf, t);
        free(t);
    }
    return buf;
}

static void from_store(const char *dir) {
    char db[256], out[256];
    snprintf(db, sizeof db, "%s/l.db", dir);
    snprintf(out, sizeof out, "%s/from_store", dir);
    sm_error err = {0};
    sm_store *s;
    if (sm_store_open(&s, db, &err)) { CHECK(0, "open: %s", err.msg); return; }
    sm_snippet a = {.id = "aaaa000000000001", .lang = "go", .code = "func A() int { return 1 }"};
    sm_snippet b = {.id = "bbbb000000000002", .lang = "go", .code = "func B() int { if true { return 2 }; return 0 }"};
    sm_snippet c = {.id = "cccc000000000003", .lang = "go", .code = "func C(x int) int { for { x++ } }"};
    sm_store_put_snippet(s, &a, &err);
    sm_store_put_snippet(s, &b, &err);
    sm_store_put_snippet(s, &c, &err);
    sm_label_row r = {.model = "m", .template_hash = "j", .snippet_id = a.id, .task = "all", .status = "ok", .attempts = 1,
                      .fields = "{\"title\": \"Return one\", \"description\": \"Returns one.\", \"tags\": [\"go\", \"math\"], \"links\": [\"https://go.dev/ref/spec\"]}"};
    sm_store_put_label(s, &r, &err);
    r.snippet_id = b.id, r.status = "rejected", r.reason = "title-words: 1 words (expected 2-10)", r.fields = NULL;
    sm_store_put_label(s, &r, &err);
    r.snippet_id = c.id, r.template_hash = "pt", r.task = "title", r.status = "ok", r.reason = NULL, r.fields = "{\"title\": \"Loop forever\"}";
    sm_store_put_label(s, &r, &err);
    r.task = "tags", r.status = "rejected", r.reason = "tags-case: 'Go'", r.fields = NULL;
    sm_store_put_label(s, &r, &err);
    sm_store_close(s);

    sm_dataset_params p = {.input = db, .out_dir = out, .tasks = SM_TASK_ALL};
    json_t *st;
    CHECK(sm_dataset_build(&p, &st, &err) == SM_OK, "build from store: %s", err.msg);
    if (!st) return;
    json_t *rej = json_object_get(st, "rejects");
    CHECK(json_integer_value(json_object_get(rej, "title-words")) == 1 && json_integer_value(json_object_get(rej, "tags-case")) == 1,
          "rejects by reason: %s", json_dumps(rej, JSON_COMPACT));
    CHECK(json_integer_value(json_object_get(st, "snippets")) == 2, "snippets %lld", (long long)json_integer_value(json_object_get(st, "snippets")));
    const char *titles = task_text(out, "title");
    CHECK(strstr(titles, "\"completion\":\"Return one\"") && strstr(titles, "\"completion\":\"Loop forever\""), "titles: %s", titles);
    const char *tags = task_text(out, "tags");
    CHECK(strstr(tags, "\"completion\":\"go, math\"") && !strstr(tags, c.id), "tags: %s", tags);
    const char *links = task_text(out, "links");
    CHECK(strstr(links, "\"completion\":\"https://go.dev/ref/spec\""), "links: %s", links);
    json_decref(st);
}

static void from_chat(const char *dir) {
    char in[256], out[256];
    snprintf(in, sizeof in, "%s/chat.jsonl", dir);
    snprintf(out, sizeof out, "%s/from_chat", dir);
    FILE *f = fopen(in, "w");
    fputs("{\"messages\": [{\"role\": \"system\", \"content\": \"You label code.\"}, {\"role\": \"user\", \"content\": \"Language: python\\nCode:\\ndef f():\\n    return 1\\n### Title:\\n\"}, {\"role\": \"assistant\", \"content\": \"Return the constant one\"}]}\n", f);
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"Language: python\\nCode:\\ndef f():\\n    return 1\\n### Tags:\\n\"}, {\"role\": \"assistant\", \"content\": \"python, math\"}]}\n", f);
    fputs("\n{\"messages\": [{\"role\": \"user\", \"content\": \"Snippet id: 1234abcd1234abcd\\nLanguage: lua\\nCode:\\nlocal function g() return 2 end\"}, {\"role\": \"assistant\", \"content\": \"```json\\n{\\\"title\\\": \\\"Return two\\\", \\\"tags\\\": [\\\"lua\\\"], \\\"description\\\": \\\"Returns two. Always. Really. Truly.\\\"}\\n```\"}]}\n", f);
    fclose(f);
    sm_dataset_params p = {.input = in, .out_dir = out, .tasks = SM_TASK_ALL};
    json_t *st;
    sm_error err = {0};
    CHECK(sm_dataset_build(&p, &st, &err) == SM_OK, "build from chat: %s", err.msg);
    if (!st) return;
    CHECK(json_integer_value(json_object_get(st, "snippets")) == 2, "chat snippets %lld", (long long)json_integer_value(json_object_get(st, "snippets")));
    CHECK(json_integer_value(json_object_get(json_object_get(st, "rejects"), "description-sentences")) == 1, "4 sentences rejected");
    const char *titles = task_text(out, "title");
    CHECK(strstr(titles, "\"prompt\":\"Language: python\\nCode:\\ndef f():\\n    return 1\\n### Title:\\n\",\"completion\":\"Return the constant one\"") &&
          strstr(titles, "\"id\":\"1234abcd1234abcd\"") && strstr(titles, "Return two"), "chat titles: %s", titles);
    const char *tags = task_text(out, "tags");
    CHECK(strstr(tags, "\"completion\":\"python, math\"") && strstr(tags, "\"completion\":\"lua\""), "chat tags: %s", tags);
    json_decref(st);

    f = fopen(in, "w");
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"Language: c\\nCode:\\nint x;\\n### Title:\\n\"}, {\"role\": \"assistant\", \"content\": \"Declare x\"}]}\n", f);
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"hi\"}]}\n", f);
    fclose(f);
    err.msg[0] = 0;
    CHECK(sm_dataset_build(&p, &st, &err) == SM_EFORMAT && strstr(err.msg, "chat.jsonl:2:"), "bad chat record: %s", err.msg);
}

int main(void) {
    group_keys();
    char dir[] = "/tmp/test_dataset_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    from_store(dir);
    from_chat(dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (failures) { fprintf(stderr, "test_dataset_lib: %d failures\n", failures); return 1; }
    printf("test_dataset_lib: ok\n");
    return 0;
}
