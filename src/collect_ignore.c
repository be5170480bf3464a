/* collect_ignore.c: gitignore rule stacks and glob matching (see collect_ignore.h). */
#include "collect_ignore.h"

#include <stdlib.h>
#include <string.h>

#include "snipmeta.h"

typedef struct rule {
    char *pattern;  /* unescaped trailing spaces and the trailing '/' removed; no leading '/' */
    int negated, dir_only, anchored;
    size_t base_len; /* length of the directory (relative to the root) that the rule is in */
} rule;

struct sm_ignore {
    rule *rules;
    int n_rules, cap_rules;
    int *level_start; /* first rule of each level */
    int n_levels, cap_levels;
};

sm_ignore *sm_ignore_new(void) { return calloc(1, sizeof(sm_ignore)); }

void sm_ignore_free(sm_ignore *ig) {
    if (!ig) return;
    for (int i = 0; i < ig->n_rules; i++) free(ig->rules[i].pattern);
    free(ig->rules);
    free(ig->level_start);
    free(ig);
}

static int class_match(const char **pp, char c) {
    const char *p = *pp + 1;
    int negate = 0, hit = 0;
    if (*p == '!' || *p == '^') { negate = 1; p++; }
    const char *first = p;
    while (*p && (*p != ']' || p == first)) {
        char lo = *p;
        if (lo == '\\' && p[1]) lo = *++p;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            char hi = p[2];
            if (c >= lo && c <= hi) hit = 1;
            p += 3;
        } else {
            if (c == lo) hit = 1;
            p++;
        }
    }
    if (*p != ']') return -1; /* no closing bracket: '[' is literal */
    *pp = p + 1;
    return hit != negate;
}

int sm_ignore_glob(const char *p, const char *s) {
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            const char *q = p + 2;
            if (*q == 0) return 1;
            if (*q == '/') {
                q++;
                for (const char *t = s;;) {
                    if (sm_ignore_glob(q, t)) return 1;
                    t = strchr(t, '/');
                    if (!t) return 0;
                    t++;
                }
            }
            for (const char *t = s;; t++) {
                if (sm_ignore_glob(q, t)) return 1;
                if (!*t) return 0;
            }
        }
        if (*p == '*') {
            p++;
            for (const char *t = s;; t++) {
                if (sm_ignore_glob(p, t)) return 1;
                if (!*t || *t == '/') return 0;
            }
        }
        if (!*s) return 0;
        if (*p == '?') {
            if (*s == '/') return 0;
            p++, s++;
            continue;
        }
        if (*p == '[') {
            const char *q = p;
            int m = class_match(&q, *s);
            if (m >= 0) {
                if (!m || *s == '/') return 0;
                p = q, s++;
                continue;
            }
        }
        if (*p == '\\' && p[1]) p++;
        if (*p != *s) return 0;
        p++, s++;
    }
    return *s == 0;
}

static int add_rule(sm_ignore *ig, const char *line, size_t len, size_t base_len) {
    while (len && (line[len - 1] == '\r')) len--;
    while (len && line[len - 1] == ' ' && !(len >= 2 && line[len - 2] == '\\')) len--;
    if (!len || line[0] == '#') return 0;
    rule r = {.base_len = base_len};
    if (line[0] == '!') { r.negated = 1; line++; len--; }
    else if (line[0] == '\\' && len > 1 && (line[1] == '#' || line[1] == '!')) { line++; len--; }
    if (len && line[len - 1] == '/') { r.dir_only = 1; len--; }
    if (!len) return 0;
    if (memchr(line, '/', len)) r.anchored = 1;
    if (line[0] == '/') { line++; len--; }
    if (!len) return 0;
    if (ig->n_rules == ig->cap_rules) {
        int cap = ig->cap_rules ? 2 * ig->cap_rules : 32;
        rule *g = realloc(ig->rules, (size_t)cap * sizeof *g);
        if (!g) return SM_ENOMEM;
        ig->rules = g;
        ig->cap_rules = cap;
    }
    r.pattern = malloc(len + 1);
    if (!r.pattern) return SM_ENOMEM;
    memcpy(r.pattern, line, len);
    r.pattern[len] = 0;
    ig->rules[ig->n_rules++] = r;
    return 0;
}

int sm_ignore_push(sm_ignore *ig, const char *rel, const char *text, size_t len) {
    if (ig->n_levels == ig->cap_levels) {
        int cap = ig->cap_levels ? 2 * ig->cap_levels : 16;
        int *g = realloc(ig->level_start, (size_t)cap * sizeof *g);
        if (!g) return SM_ENOMEM;
        ig->level_start = g;
        ig->cap_levels = cap;
    }
    int first = ig->n_rules;
    size_t base_len = strlen(rel);
    for (size_t i = 0; text && i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (add_rule(ig, text + i, e - i, base_len)) {
            while (ig->n_rules > first) free(ig->rules[--ig->n_rules].pattern);
            return SM_ENOMEM;
        }
        i = e + 1;
    }
    ig->level_start[ig->n_levels++] = first;
    return 0;
}

void sm_ignore_pop(sm_ignore *ig) {
    if (!ig->n_levels) return;
    int first = ig->level_start[--ig->n_levels];
    while (ig->n_rules > first) free(ig->rules[--ig->n_rules].pattern);
}

int sm_ignore_match(const sm_ignore *ig, const char *rel, int is_dir) {
    int ignored = 0;
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    for (int i = 0; i < ig->n_rules; i++) {
        const rule *r = &ig->rules[i];
        if (r->dir_only && !is_dir) continue;
        const char *sub = rel;
        if (r->base_len) {
            if (rel[r->base_len] != '/') continue; /* rules live in ancestors of rel */
            sub = rel + r->base_len + 1;
        }
        if (ignored == !r->negated) continue; /* cannot change the outcome */
        if (sm_ignore_glob(r->pattern, r->anchored ? sub : name)) ignored = !r->negated;
    }
    return ignored;
}
