/* tasks.c: task names, output checks, the student prompt format and JSON extraction from
 * teacher answers (see tasks.h for the rules). */
#include "tasks.h"

#include "prompts.h"
#include "sha256.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *task_names[SM_TASK_COUNT] = {"title", "description", "tags", "links"};
static const char *task_markers[SM_TASK_COUNT] = {"Title", "Description", "Tags", "Links"};

const char *sm_task_name(sm_task t) { return (unsigned)t < SM_TASK_COUNT ? task_names[t] : "?"; }
const char *sm_task_marker(sm_task t) { return (unsigned)t < SM_TASK_COUNT ? task_markers[t] : "?"; }

int sm_task_from_name(const char *name) {
    for (int t = 0; t < SM_TASK_COUNT; t++)
        if (!strcmp(name, task_names[t])) return t;
    return -1;
}

int sm_task_parse_list(const char *list, unsigned *mask, sm_error *err) {
    *mask = 0;
    if (!strcmp(list, "all")) { *mask = SM_TASK_ALL; return SM_OK; }
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        char name[32];
        if (n == 0 || n >= sizeof name) return sm_err(err, SM_EINVAL, "bad task list '%s' (expected title,description,tags,links or all)", list);
        memcpy(name, p, n);
        name[n] = 0;
        int t = sm_task_from_name(name);
        if (t < 0) return sm_err(err, SM_EINVAL, "unknown task '%s' (expected title, description, tags, links or all)", name);
        *mask |= 1u << t;
        p += n + (p[n] == ',');
    }
    if (!*mask) return sm_err(err, SM_EINVAL, "empty task list");
    return SM_OK;
}

static int fail(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *reason, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, SM_REASON_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

static int count_words(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = isspace((unsigned char)*s);
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

/* Sentences: ends at '.', '!' or '?' (runs count once) followed by the end or by whitespace and an
 * uppercase letter, a digit or a quote, and not after a common abbreviation ("e.g.", "i.e.",
 * "etc.", "vs.", "approx."); a last sentence without its full stop counts too. */
static int count_sentences(const char *s) {
    static const char *abbrev[] = {"e.g", "i.e", "etc", "vs", "approx", "resp", "cf", "Mr", "Dr", "No"};
    int n = 0, pending = 0;
    for (const char *p = s; *p; p++) {
        if (!isspace((unsigned char)*p)) pending = 1;
        if (*p != '.' && *p != '!' && *p != '?') continue;
        const char *q = p;
        while (q[1] == '.' || q[1] == '!' || q[1] == '?') q++;
        const char *r = q + 1;
        while (*r && isspace((unsigned char)*r)) r++;
        int boundary = !*r || (r > q + 1 && (isupper((unsigned char)*r) || isdigit((unsigned char)*r) || *r == '"' || *r == '\'' || *r == '`'));
        if (boundary && *p == '.') {
            for (size_t i = 0; i < sizeof abbrev / sizeof abbrev[0]; i++) {
                size_t m = strlen(abbrev[i]);
                if ((size_t)(p - s) >= m && !strncmp(p - m, abbrev[i], m) && (p - m == s || !isalnum((unsigned char)p[-(long)m - 1]))) boundary = 0;
            }
        }
        if (boundary) { n++; pending = 0; }
        p = q;
    }
    return n + pending;
}

int sm_check_title(const char *title, char *reason) {
    if (strchr(title, '\n') || strchr(title, '\r')) return fail(reason, "title-lines: more than one line");
    int w = count_words(title);
    if (w < 2 || w > 10) return fail(reason, "title-words: %d words (expected 2-10)", w);
    size_t n = strlen(title);
    while (n && isspace((unsigned char)title[n - 1])) n--;
    if (n && title[n - 1] == '.') return fail(reason, "title-period: ends with a period");
    return 0;
}

int sm_check_description(const char *d, char *reason) {
    int w = count_words(d);
    if (w == 0) return fail(reason, "description-empty: no words");
    if (w > 60) return fail(reason, "description-words: %d words (expected at most 60)", w);
    int s = count_sentences(d);
    if (s > 3) return fail(reason, "description-sentences: %d sentences (expected 1-3)", s);
    return 0;
}

static int is_kebab(const char *t) {
    if (!*t || *t == '-') return 0;
    for (const char *p = t; *p; p++) {
        if (*p == '-') { if (p[1] == '-' || !p[1]) return 0; }
        else if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9')) return 0;
    }
    return 1;
}

int sm_check_tags(const char *const *tags, int n, const char *lang, char *reason) {
    if (n < 1 || n > 6) return fail(reason, "tags-count: %d tags (expected 1-6)", n);
    for (int i = 0; i < n; i++) {
        if (!is_kebab(tags[i])) return fail(reason, "tags-case: '%.60s' is not lowercase kebab-case", tags[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(tags[i], tags[j])) return fail(reason, "tags-duplicate: '%.60s' twice", tags[i]);
    }
    if (lang && *lang && strcmp(tags[0], lang)) return fail(reason, "tags-language: first tag '%.40s' is not the language '%.40s'", tags[0], lang);
    return 0;
}

static int is_url(const char *u) {
    const char *p;
    if (!strncmp(u, "https://", 8)) p = u + 8;
    else if (!strncmp(u, "http://", 7)) p = u + 7;
    else return 0;
    size_t host = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:");
    if (host == 0 || !strchr(p, '.') || (p[host] && p[host] != '/' && p[host] != '?' && p[host] != '#')) return 0;
    if (strlen(u) > 2000) return 0;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '"' || *p == '<' || *p == '>') return 0;
    return 1;
}

int sm_check_links(const char *const *links, int n, char *reason) {
    if (n < 0 || n > 3) return fail(reason, "links-count: %d links (expected 0-3)", n);
    for (int i = 0; i < n; i++) {
        if (!is_url(links[i])) return fail(reason, "links-url: '%.80s' is not an absolute http(s) URL", links[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(links[i], links[j])) return fail(reason, "links-duplicate: '%.80s' twice", links[i]);
    }
    return 0;
}

/* Checks an array of strings with the tags or links rule. */
static int check_list(sm_task t, const json_t *v, const char *lang, char *reason) {
    if (!json_is_array(v)) return fail(reason, "type-%s: not an array", sm_task_name(t));
    size_t n = json_array_size(v);
    if (n > 64) n = 64; /* past any limit; the count check reports it */
    const char *items[64];
    for (size_t i = 0; i < n; i++) {
        items[i] = json_string_value(json_array_get(v, i));
        if (!items[i]) return fail(reason, "type-%s: item %zu is not a string", sm_task_name(t), i);
    }
    int count = json_array_size(v) > 64 ? 65 : (int)n;
    return t == SM_TASK_TAGS ? sm_check_tags(items, count, lang, reason) : sm_check_links(items, count, reason);
}

int sm_check_json_field(sm_task t, const json_t *v, const char *lang, char *reason) {
    if (!v) return fail(reason, "missing-%s: no '%s' field", sm_task_name(t), sm_task_name(t));
    switch (t) {
    case SM_TASK_TITLE:
    case SM_TASK_DESCRIPTION:
        if (!json_is_string(v)) return fail(reason, "type-%s: not a string", sm_task_name(t));
        return t == SM_TASK_TITLE ? sm_check_title(json_string_value(v), reason) : sm_check_description(json_string_value(v), reason);
    case SM_TASK_TAGS:
    case SM_TASK_LINKS: return check_list(t, v, lang, reason);
    default: return fail(reason, "task: unknown task %d", (int)t);
    }
}

/* Splits a tags completion ("a, b, c") or a links completion (one per line) into a JSON array. */
static json_t *split_completion(sm_task t, const char *s) {
    json_t *a = json_array();
    const char *sep = t == SM_TASK_TAGS ? "," : "\n";
    while (a && *s) {
        size_t n = strcspn(s, sep);
        const char *b = s, *e = s + n;
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        if (e > b || t == SM_TASK_TAGS) json_array_append_new(a, json_stringn(b, (size_t)(e - b)));
        s += n + (s[n] != 0);
    }
    return a;
}

int sm_check_completion(sm_task t, const char *c, const char *lang, char *reason) {
    if (t == SM_TASK_TITLE) return sm_check_title(c, reason);
    if (t == SM_TASK_DESCRIPTION) return sm_check_description(c, reason);
    json_t *a = split_completion(t, c);
    int rc = a ? sm_check_json_field(t, a, lang, reason) : fail(reason, "memory: out of memory");
    json_decref(a);
    return rc;
}

char *sm_completion_from_json(sm_task t, const json_t *v) {
    if (t == SM_TASK_TITLE || t == SM_TASK_DESCRIPTION) return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    if (!json_is_array(v)) return NULL;
    size_t len = 1;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) return NULL;
        len += strlen(s) + 2;
    }
    char *out = malloc(len), *p = out;
    if (!out) return NULL;
    *p = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (i) p = stpcpy(p, t == SM_TASK_TAGS ? ", " : "\n");
        p = stpcpy(p, json_string_value(json_array_get(v, i)));
    }
    return out;
}

const char *sm_prompt_text(const char *name, size_t *size) {
    for (const sm_embedded_file *f = sm_prompt_files; f->name; f++)
        if (!strcmp(f->name, name)) {
            if (size) *size = f->size;
            return (const char *)f->text;
        }
    return NULL;
}

/* A growing string. */
typedef struct { char *p; size_t len, cap; int oom; } strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Appends code, cut to max bytes at a line end (or inside the first line at a UTF-8 boundary) and
 * followed by the cut line when anything was removed. */
static void add_code(strbuf *b, const char *code, size_t max, const char *cut_line, size_t cut_len) {
    size_t len = strlen(code);
    while (len && code[len - 1] == '\n') len--;
    if (!max || len <= max) { sb_add(b, code, len); return; }
    size_t keep = 0;
    for (size_t i = 0; i < max; i++)
        if (code[i] == '\n') keep = i;
    if (keep == 0) { /* the first line alone is too long */
        keep = max;
        while (keep && ((unsigned char)code[keep] & 0xc0) == 0x80) keep--;
    }
    int lines_cut = 0;
    for (size_t i = keep; i < len; i++) lines_cut += code[i] == '\n';
    if (code[keep] != '\n') lines_cut++; /* the rest of a line that was cut in the middle */
    sb_add(b, code, keep);
    sb_add(b, "\n", 1);
    for (size_t i = 0; i < cut_len; i++) {
        if (!strncmp(cut_line + i, "{n}", 3)) {
            char num[24];
            int k = snprintf(num, sizeof num, "%d", lines_cut);
            sb_add(b, num, (size_t)k);
            i += 2;
        } else {
            sb_add(b, cut_line + i, 1);
        }
    }
}

char *sm_student_prompt(const char *lang, const char *code, sm_task t, size_t max_code_bytes) {
    size_t size = 0;
    const char *tpl = sm_prompt_text("student.txt", &size);
    assert(tpl);
    const char *sep = strstr(tpl, "\n=== cut ===\n");
    assert(sep);
    size_t tpl_len = (size_t)(sep - tpl) + 1;
    const char *cut = sep + 13;
    size_t cut_len = strcspn(cut, "\n");
    strbuf b = {0};
    for (size_t i = 0; i < tpl_len; i++) {
        if (!strncmp(tpl + i, "{lang}", 6)) { sb_add(&b, lang, strlen(lang)); i += 5; }
        else if (!strncmp(tpl + i, "{code}", 6)) { add_code(&b, code, max_code_bytes, cut, cut_len); i += 5; }
        else if (!strncmp(tpl + i, "{marker}", 8)) { sb_add(&b, sm_task_marker(t), strlen(sm_task_marker(t))); i += 7; }
        else sb_add(&b, tpl + i, 1);
    }
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}

void sm_student_format_version(char version[17]) {
    size_t size = 0;
    const char *tpl = sm_prompt_text("student.txt", &size);
    uint8_t d[32];
    char hex[65];
    sm_sha256(d, tpl, size);
    sm_sha256_hex(hex, d);
    memcpy(version, hex, 16);
    version[16] = 0;
}

/* The end of the balanced {...} that starts at p (strings and escapes respected), or NULL. */
static const char *match_brace(const char *p) {
    int depth = 0, in_str = 0;
    for (; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
        } else if (*p == '"') in_str = 1;
        else if (*p == '{') depth++;
        else if (*p == '}' && --depth == 0) return p;
    }
    return NULL;
}

json_t *sm_extract_json_object(const char *text) {
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(o)) return o;
    json_decref(o);
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        const char *e = match_brace(p);
        if (!e) continue;
        o = json_loadb(p, (size_t)(e - p + 1), JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(o)) return o;
        json_decref(o);
    }
    return NULL;
}
