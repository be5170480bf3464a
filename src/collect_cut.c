/* collect_cut.c: the cutter's entry point, line table and result list (see collect_cut.h);
 * the language families live in collect_cut_braces.c and collect_cut_blocks.c. */
#include "collect_cut_impl.h"

#include <stdlib.h>
#include <string.h>

#include "lang_lex.h"
#include "snipmeta.h"

const char *sm_cut_kind_name(sm_cut_kind kind) {
    switch (kind) {
    case SM_CUT_METHOD: return "method";
    case SM_CUT_CLASS: return "class";
    default: return "function";
    }
}

void sm_cut_list_free(sm_cut_list *list) {
    if (!list) return;
    free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}

int cut_push(sm_cut_list *out, int line_start, int line_end, sm_cut_kind kind, const char *name, size_t name_len) {
    if (out->n == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 64;
        sm_cut *items = realloc(out->items, cap * sizeof *items);
        if (!items) return SM_ENOMEM;
        out->items = items;
        out->cap = cap;
    }
    sm_cut *c = &out->items[out->n++];
    c->line_start = line_start;
    c->line_end = line_end;
    c->kind = kind;
    if (name_len >= sizeof c->symbol) { /* cut at a UTF-8 character boundary */
        name_len = sizeof c->symbol - 1;
        while (name_len > 0 && ((unsigned char)name[name_len] & 0xc0) == 0x80) name_len--;
    }
    memcpy(c->symbol, name, name_len);
    c->symbol[name_len] = 0;
    return 0;
}

int cut_line_of(const cut_src *src, size_t off) {
    int lo = 0, hi = src->n_lines - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (src->line_off[mid] <= off) lo = mid;
        else hi = mid - 1;
    }
    return lo + 1;
}

static int by_position(const void *pa, const void *pb) {
    const sm_cut *a = pa, *b = pb;
    if (a->line_start != b->line_start) return a->line_start < b->line_start ? -1 : 1;
    if (a->line_end != b->line_end) return a->line_end > b->line_end ? -1 : 1;
    return strcmp(a->symbol, b->symbol);
}

int sm_cut_source(sm_cut_list *out, const char *s, size_t n, sm_lang lang) {
    cut_src src = {.s = s, .n = n, .lang = lang};
    char *view = malloc(n ? n : 1);
    int n_lines = 1;
    for (size_t i = 0; i < n; i++) n_lines += s[i] == '\n';
    src.line_off = malloc((size_t)n_lines * sizeof *src.line_off);
    if (!view || !src.line_off) { free(view); free(src.line_off); return SM_ENOMEM; }
    src.line_off[0] = 0;
    src.n_lines = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') src.line_off[src.n_lines++] = i + 1;
    sm_lex_view(view, s, n, lang);
    src.v = view;

    size_t first = out->n;
    int rc;
    switch (lang) {
    case SM_LANG_PYTHON: rc = cut_python(out, &src); break;
    case SM_LANG_LUA: rc = cut_lua(out, &src); break;
    case SM_LANG_RUBY: rc = cut_ruby(out, &src); break;
    case SM_LANG_NONE: rc = 0; break;
    default: rc = cut_braces(out, &src); break;
    }
    free(view);
    free(src.line_off);
    if (rc) { out->n = first; return rc; }
    if (out->n > first) qsort(out->items + first, out->n - first, sizeof *out->items, by_position);
    return 0;
}
