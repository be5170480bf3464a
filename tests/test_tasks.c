/* test_tasks.c: the task checks (unit cases, and every label of ../shared/data/labels.jsonl
 * passes them), completions round-tripping through the checks, the student prompt and its cut,
 * and JSON extraction from teacher answers (plain, fenced, in prose, broken). */
#include "tasks.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void unit_checks(void) {
    char r[SM_REASON_MAX];
    CHECK(sm_check_title("Parse ISO 8601 duration", r) == 0, "good title: %s", r);
    CHECK(sm_check_title("Parse", r) < 0 && !strncmp(r, "title-words", 11), "one word: %s", r);
    CHECK(sm_check_title("Parse the duration.", r) < 0 && !strncmp(r, "title-period", 12), "period: %s", r);
    CHECK(sm_check_title("Parse\nduration", r) < 0 && !strncmp(r, "title-lines", 11), "two lines");
    CHECK(sm_check_title("one two three four five six seven eight nine ten eleven", r) < 0, "11 words");
    CHECK(sm_check_description("Returns the sum. Handles e.g. empty input. Raises on overflow.", r) == 0, "3 sentences: %s", r);
    CHECK(sm_check_description("One. Two. Three. Four.", r) < 0 && !strncmp(r, "description-sentences", 21), "4 sentences");
    CHECK(sm_check_description("Uses version 3.14 of the API, i.e. the new one", r) == 0, "decimals and i.e.: %s", r);
    CHECK(sm_check_description("", r) < 0, "empty description");
    const char *tags_ok[] = {"python", "flask", "request-handling"};
    const char *tags_case[] = {"python", "Flask"};
    const char *tags_dup[] = {"python", "http", "http"};
    const char *tags_lang[] = {"http", "python"};
    CHECK(sm_check_tags(tags_ok, 3, "python", r) == 0, "good tags: %s", r);
    CHECK(sm_check_tags(tags_case, 2, "python", r) < 0 && !strncmp(r, "tags-case", 9), "uppercase tag");
    CHECK(sm_check_tags(tags_dup, 3, "python", r) < 0 && !strncmp(r, "tags-duplicate", 14), "duplicate tag");
    CHECK(sm_check_tags(tags_lang, 2, "python", r) < 0 && !strncmp(r, "tags-language", 13), "language not first");
    CHECK(sm_check_tags(tags_ok, 0, "python", r) < 0, "no tags");
    const char *links_ok[] = {"https://docs.python.org/3/library/re.html", "http://man7.org/x#y"};
    const char *links_bad[] = {"ftp://example.org/"};
    const char *links_rel[] = {"/docs/index.html"};
    const char *links_space[] = {"https://example.org/a b"};
    CHECK(sm_check_links(links_ok, 2, r) == 0, "good links: %s", r);
    CHECK(sm_check_links(links_ok, 0, r) == 0, "no links");
    CHECK(sm_check_links(links_bad, 1, r) < 0, "ftp link");
    CHECK(sm_check_links(links_rel, 1, r) < 0, "relative link");
    CHECK(sm_check_links(links_space, 1, r) < 0, "link with a space");
    CHECK(sm_check_completion(SM_TASK_TAGS, "go, cobra, cli", "go", r) == 0, "tags completion: %s", r);
    CHECK(sm_check_completion(SM_TASK_TAGS, "go, , cli", "go", r) < 0, "empty tag in completion");
    CHECK(sm_check_completion(SM_TASK_LINKS, "", "go", r) == 0, "empty links completion");
    CHECK(sm_check_completion(SM_TASK_LINKS, "https://pkg.go.dev/strings\nhttps://go.dev/doc", "go", r) == 0, "links completion: %s", r);
    unsigned mask;
    CHECK(sm_task_parse_list("title,links", &mask, NULL) == 0 && mask == 9u, "task list");
    CHECK(sm_task_parse_list("all", &mask, NULL) == 0 && mask == SM_TASK_ALL, "all");
    CHECK(sm_task_parse_list("title,bogus", &mask, NULL) != 0, "bad task list");
}

static void extraction(void) {
    const char *cases[][2] = {
        {"{\"title\": \"A b\"}", "A b"},
        {"```json\n{\"title\": \"Fenced {title}\"}\n```", "Fenced {title}"},
        {"Sure! Here it is: {\"title\": \"In \\\"prose\\\" }\"} and more {text}.", "In \"prose\" }"},
        {"{broken {\"title\": \"Second try\"}", "Second try"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = sm_extract_json_object(cases[i][0]);
        const char *t = json_string_value(json_object_get(o, "title"));
        CHECK(t && !strcmp(t, cases[i][1]), "extract case %zu: got %s", i, t ? t : "(null)");
        json_decref(o);
    }
    const char *bad[] = {"", "no json here", "{\"title\": ", "[1, 2]", "{\"a\": 1, \"a\": 2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = sm_extract_json_object(bad[i]);
        CHECK(!o, "bad case %zu extracted something", i);
        json_decref(o);
    }
}

static void student_prompt(void) {
    char *p = sm_student_prompt("python", "def f():\n    return 1\n", SM_TASK_TITLE, 0);
    CHECK(p && !strcmp(p, "Language: python\nCode:\ndef f():\n    return 1\n### Title:\n"), "prompt: [%s]", p ? p : "(null)");
    free(p);
    p = sm_student_prompt("c", "int f(void)\n{\n    return 1;\n}\n", SM_TASK_TAGS, 14);
    CHECK(p && !strcmp(p, "Language: c\nCode:\nint f(void)\n{\n[... 2 more lines cut ...]\n### Tags:\n"), "cut prompt: [%s]", p ? p : "(null)");
    free(p);
    p = sm_student_prompt("c", "abcdefghijklmnopqrstuvwxyz", SM_TASK_LINKS, 10);
    CHECK(p && strstr(p, "abcdefghij\n[... 1 more lines cut ...]\n### Links:\n"), "long line cut: [%s]", p ? p : "(null)");
    free(p);
    char v[17];
    sm_student_format_version(v);
    CHECK(strlen(v) == 16, "format version %s", v);
}

/* Truncated, corrupted and random answers: extraction and the checks never misbehave (run
 * under AddressSanitizer by scripts/test.sh's sanitizer pass). */
static void corrupted_answers(void) {
    const char *good = "Here you go:\n```json\n{\"id\": \"ab\", \"title\": \"Parse a \\\"quoted\\\" value\", "
                       "\"description\": \"Parses it.\", \"tags\": [\"c\", \"parsing\"], \"links\": []}\n```\nDone.";
    size_t n = strlen(good);
    char buf[512];
    uint64_t x = 88172645463325252ULL;
    int extracted_whole = 0;
    for (size_t cut = 0; cut <= n; cut++) { /* every truncation */
        memcpy(buf, good, cut);
        buf[cut] = 0;
        json_t *o = sm_extract_json_object(buf);
        extracted_whole += o != NULL;
        json_decref(o);
    }
    CHECK(extracted_whole > 0 && extracted_whole < (int)n / 4, "truncations extracted %d times", extracted_whole);
    for (int round = 0; round < 4000; round++) { /* random byte flips, and random bytes */
        memcpy(buf, good, n + 1);
        for (int k = 0; k < 1 + round % 6; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[x % n] = (char)(round < 2000 ? "{}[]\"\\:,`x \n"[x % 12] : (int)(x >> 32) % 255 + 1);
        }
        json_t *o = sm_extract_json_object(buf);
        char r[SM_REASON_MAX];
        for (int t = 0; o && t < SM_TASK_COUNT; t++) sm_check_json_field(t, json_object_get(o, sm_task_name(t)), "c", r);
        json_decref(o);
        sm_check_title(buf, r);
        sm_check_description(buf, r);
        sm_check_completion(SM_TASK_TAGS, buf, "c", r);
        sm_check_completion(SM_TASK_LINKS, buf, "c", r);
        char *prompt = sm_student_prompt("c", buf, SM_TASK_TITLE, 1 + round % 64);
        CHECK(prompt != NULL, "prompt of random code");
        free(prompt);
    }
}

/* Every label of the shared data set passes the checks (its README says so). */
static int shared_labels(const char *shared) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/labels.jsonl", shared);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        const char *lang = json_string_value(json_object_get(o, "lang"));
        for (int t = 0; t < SM_TASK_COUNT; t++) {
            char r[SM_REASON_MAX];
            if (sm_check_json_field(t, json_object_get(o, sm_task_name(t)), lang, r)) {
                if (bad++ < 10) fprintf(stderr, "shared label %d (%s): %s\n", n + 1, sm_task_name(t), r);
                continue;
            }
            char *c = sm_completion_from_json(t, json_object_get(o, sm_task_name(t)));
            if (!c || sm_check_completion(t, c, lang, r)) { bad++; fprintf(stderr, "completion %d %s: %s\n", n + 1, sm_task_name(t), c ? r : "null"); }
            free(c);
        }
        json_decref(o);
        n++;
    }
    free(line);
    fclose(f);
    CHECK(bad == 0, "%d of %d shared labels fail the checks", bad, n);
    printf("shared labels: %d checked, %d failing\n", n, bad);
    return 1;
}

int main(int argc, char **argv) {
    unit_checks();
    extraction();
    student_prompt();
    corrupted_answers();
    if (argc < 2 || !shared_labels(argv[1])) printf("shared labels absent: that part skipped\n");
    if (failures) { fprintf(stderr, "test_tasks: %d failures\n", failures); return 1; }
    printf("test_tasks: ok\n");
    return 0;
}
