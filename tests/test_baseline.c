/* test_baseline.c: the heuristic baseline's rules on small snippets of each language (the defined
 * name, titles, descriptions from docstrings and comments, tags from modules and words, links
 * only from the index), the student prompt's parsing, and, when ../shared/data/labels.jsonl is
 * there (argv[1] is ../shared), that every answer for every snippet passes the task checks. */
#include "baseline.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static const char *const tags[] = {"regex", "json", "parsing", "go", "string-manipulation", "formatting", "libuv", "lodash",
                                   "testing", "error-handling", "file-io", "sorting"};
static const char *const links[] = {"https://docs.python.org/3/library/re.html", "https://pkg.go.dev/strings#TrimSpace",
                                    "https://man7.org/linux/man-pages/man3/printf.3.html", "https://www.php.net/manual/en/function.str-replace.php",
                                    "https://perldoc.perl.org/File::Spec"};

static void symbol(const char *lang, const char *code, const char *want) {
    char name[128] = "";
    int rc = sm_baseline_symbol(lang, code, name, sizeof name);
    if (!want) CHECK(rc < 0, "%s: found '%s' where none was expected", lang, name);
    else CHECK(rc == 0 && !strcmp(name, want), "%s: symbol '%s', want '%s'", lang, name, want);
}

static void answer(const sm_baseline *b, sm_task t, const char *lang, const char *code, const char *want) {
    char *got = sm_baseline_complete(b, t, lang, code);
    CHECK(got && !strcmp(got, want), "%s %s: '%s', want '%s'", sm_task_name(t), lang, got ? got : "(null)", want);
    free(got);
}

static void rules(void) {
    symbol("python", "async def fetch_url(session):\n    pass", "fetch_url");
    symbol("go", "func (r *Router) HandleFunc(path string) *Route {", "HandleFunc");
    symbol("rust", "pub fn parse_args() -> Args {", "parse_args");
    symbol("c", "static int\nprepareReplicasToWrite(void) {", "prepareReplicasToWrite");
    symbol("cpp", "Status DBImpl::Write(const WriteOptions& o) {", "Write");
    symbol("java", "public static <T> List<T> newArrayList(T... xs) {", "newArrayList");
    symbol("lua", "function M.utils:trim(s)\n end", "trim");
    symbol("perl", "sub catfile {\n}", "catfile");
    symbol("javascript", "const roundTo = (n) => n;", "roundTo");
    symbol("javascript", "function(a, b) { return a; }", NULL);
    symbol("c", "if (x) { y(); }", NULL);

    sm_baseline *b = sm_baseline_new(tags, (int)(sizeof tags / sizeof *tags), links, (int)(sizeof links / sizeof *links));
    CHECK(b != NULL, "new");
    answer(b, SM_TASK_TITLE, "c", "int prepareReplicasToWrite(void) {}", "Prepare replicas to write");
    answer(b, SM_TASK_TITLE, "go", "func parseHTTPRequest() {}", "Parse HTTP request");
    answer(b, SM_TASK_TITLE, "c", "void *win32_open64_file_funcA(void) {}", "Win32 open64 file func a");
    answer(b, SM_TASK_TITLE, "python", "def main():\n    pass", "Main function");
    answer(b, SM_TASK_TITLE, "javascript", "function(a) { return a; }", "Anonymous function");

    answer(b, SM_TASK_DESCRIPTION, "python", "def f(x):\n    \"\"\"Return the square\n    of x.\n\n    More.\"\"\"\n    return x*x", "Return the square of x.");
    answer(b, SM_TASK_DESCRIPTION, "c", "/**\n * Frees the list.\n * @param l the list\n */\nvoid list_free(list *l) {}", "Frees the list.");
    answer(b, SM_TASK_DESCRIPTION, "go", "func f() {\n\t// walk the tree first.  Then stop.\n\t// Then stop again.\n}", "Walk the tree first. Then stop. Then stop again.");
    answer(b, SM_TASK_DESCRIPTION, "rust", "fn sort_items() {}", "Sort items.");
    answer(b, SM_TASK_DESCRIPTION, "c", "#include <x.h>\nint ab_cd(void) { return 0; }", "Ab cd.");

    answer(b, SM_TASK_TAGS, "python", "def f(s):\n    m = re.match(r'x', s)\n    return json.loads(m.group(0))", "python, regex, json");
    answer(b, SM_TASK_TAGS, "go", "func f(s string) string {\n\treturn strings.TrimSpace(fmt.Sprint(s))\n}", "go, string-manipulation, formatting");
    answer(b, SM_TASK_TAGS, "c", "void f(uv_loop_t *l) { uv_run(l, 0); uv_stop(l); }", "c, libuv");
    answer(b, SM_TASK_TAGS, "java", "int f() { return 0; }", "java");

    answer(b, SM_TASK_LINKS, "python", "def f(s):\n    return re.sub('a', 'b', s)", "https://docs.python.org/3/library/re.html");
    answer(b, SM_TASK_LINKS, "go", "func f(s string) string { return strings.TrimSpace(s) }", "https://pkg.go.dev/strings#TrimSpace");
    answer(b, SM_TASK_LINKS, "c", "void f(void) { printf(\"x\"); }", "https://man7.org/linux/man-pages/man3/printf.3.html");
    answer(b, SM_TASK_LINKS, "php", "function f($s) { return str_replace('a', 'b', $s); }", "https://www.php.net/manual/en/function.str-replace.php");
    answer(b, SM_TASK_LINKS, "perl", "sub f { return File::Spec->catfile(@_); }", "https://perldoc.perl.org/File::Spec");
    answer(b, SM_TASK_LINKS, "python", "def f(s):\n    return os.path.join(s)", ""); /* not in the index */
    answer(b, SM_TASK_LINKS, "c", "void f(void) { /* printf( */ puts(\"printf(\"); }", "");
    sm_baseline_free(b);

    char *lang, *code;
    CHECK(sm_baseline_parse_prompt("Language: go\nCode:\nfunc f() {\n// ### not it\n}\n### Title:\n", &lang, &code) == SM_OK &&
              !strcmp(lang, "go") && !strcmp(code, "func f() {\n// ### not it\n}"),
          "parse prompt");
    free(lang);
    free(code);
    CHECK(sm_baseline_parse_prompt("Code:\nx\n### Title:\n", &lang, &code) == SM_EFORMAT, "no language line");
    CHECK(sm_baseline_parse_prompt("Language: go\nCode:\nx\n", &lang, &code) == SM_EFORMAT, "no marker");
}

/* Every baseline answer for every labelled snippet passes the task checks. */
static int all_labels(const char *shared) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/labels.jsonl", shared);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    sm_baseline *b = sm_baseline_new(tags, (int)(sizeof tags / sizeof *tags), links, (int)(sizeof links / sizeof *links));
    char *line = NULL, reason[SM_REASON_MAX];
    size_t cap = 0;
    long n = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        const char *lang = json_string_value(json_object_get(o, "lang")), *code = json_string_value(json_object_get(o, "code"));
        if (lang && code) {
            n++;
            for (int t = 0; t < SM_TASK_COUNT; t++) {
                char *c = sm_baseline_complete(b, (sm_task)t, lang, code);
                if (!c || sm_check_completion((sm_task)t, c, lang, reason)) {
                    if (bad++ < 10) fprintf(stderr, "FAIL %s %s: '%s': %s\n", json_string_value(json_object_get(o, "id")), sm_task_name((sm_task)t), c ? c : "(null)", reason);
                }
                free(c);
            }
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    sm_baseline_free(b);
    printf("baseline answers for %ld labelled snippets: %ld fail a task check\n", n, bad);
    failures += bad > 0;
    return 1;
}

int main(int argc, char **argv) {
    rules();
    if (!all_labels(argc > 1 ? argv[1] : "../shared")) printf("test_baseline: no labels.jsonl: the check over all labels is skipped\n");
    if (failures) { fprintf(stderr, "test_baseline: %d failures\n", failures); return 1; }
    printf("test_baseline: ok\n");
    return 0;
}
