/* collect_cut.h: cuts a source file into function-, method- and class-level snippets.
 *
 * The cutter reads the code view of lang_lex.h, so that strings and comments never confuse
 * it, and finds definitions per language family: brace languages (C, C++, Go, Rust, Java,
 * JavaScript, TypeScript, PHP, Perl, shell) by the header before a '{' and the balanced '}';
 * Python by indentation (decorators and multi-line strings included); Lua and Ruby by matching
 * their block keywords with 'end'. Nested definitions are reported too, each on its own.
 */
#ifndef SM_COLLECT_CUT_H
#define SM_COLLECT_CUT_H

#include <stddef.h>

#include "lang.h"

typedef enum sm_cut_kind { SM_CUT_FUNCTION, SM_CUT_METHOD, SM_CUT_CLASS } sm_cut_kind;

typedef struct sm_cut {
    int line_start, line_end; /* 1-based, inclusive */
    sm_cut_kind kind;
    char symbol[128];         /* the bare name: "parse", "~Regexp", "operator==" */
} sm_cut;

typedef struct sm_cut_list {
    sm_cut *items;
    size_t n, cap;
} sm_cut_list;

/* Finds the definitions in src[0..n) and appends them to out (zero-initialise it first),
 * ordered by start line, then end line. Returns 0, or SM_ENOMEM (out keeps what it had). */
int sm_cut_source(sm_cut_list *out, const char *src, size_t n, sm_lang lang);

/* Frees the list's items (free(NULL)-safe) and empties it. */
void sm_cut_list_free(sm_cut_list *list);

/* "function", "method" or "class". */
const char *sm_cut_kind_name(sm_cut_kind kind);

#endif
