/* lang_lex.h: a per-language lexer that hides strings and comments from structure finders.
 *
 * sm_lex_view writes a "code view" of a source text: a copy of the same length in which every
 * comment byte becomes a space and every string-literal byte (char literals, raw strings, JS
 * template literals with their ${} parts, heredocs, Python triple-quoted strings, Lua long
 * strings, Perl quote-like operators and regexes, PHP inline HTML, C preprocessor lines) becomes
 * SM_VIEW_STR, except the literal's first byte, which becomes '"'. Newlines are kept, so byte
 * offsets and line numbers of the view are those of the source. Brace counts, keywords and
 * indentation read from the view are therefore never confused by text inside strings or
 * comments. A line whose first byte is SM_VIEW_STR begins inside a string.
 *
 * The lexer is a heuristic for files that may not compile; on malformed input (an unterminated
 * string or comment) it hides the rest of the line or file and never reads out of bounds.
 */
#ifndef SM_LANG_LEX_H
#define SM_LANG_LEX_H

#include <stddef.h>

#include "lang.h"

#define SM_VIEW_STR '\x01'

/* Writes the code view of src[0..n) to view[0..n) (the caller provides n bytes). */
void sm_lex_view(char *view, const char *src, size_t n, sm_lang lang);

#endif
