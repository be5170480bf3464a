/* collect_cut_impl.h: what the cutter's files share (internal to collect_cut*.c). */
#ifndef SM_COLLECT_CUT_IMPL_H
#define SM_COLLECT_CUT_IMPL_H

#include "collect_cut.h"

/* A source with its code view and line table. */
typedef struct cut_src {
    const char *s;      /* the source text */
    const char *v;      /* its code view (lang_lex.h) */
    size_t n;
    sm_lang lang;
    size_t *line_off;   /* byte offset of each line's first byte; n_lines entries */
    int n_lines;
} cut_src;

/* The 1-based line that holds byte offset off. */
int cut_line_of(const cut_src *src, size_t off);
/* Appends a definition; returns 0 or SM_ENOMEM. */
int cut_push(sm_cut_list *out, int line_start, int line_end, sm_cut_kind kind, const char *name, size_t name_len);

int cut_braces(sm_cut_list *out, const cut_src *src);
int cut_python(sm_cut_list *out, const cut_src *src);
int cut_lua(sm_cut_list *out, const cut_src *src);
int cut_ruby(sm_cut_list *out, const cut_src *src);

static inline int cut_is_ident_char(unsigned char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

#endif
