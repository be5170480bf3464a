/* baseline.h: the plain heuristic baseline that the trained adapters must beat, one rule per task,
 * no model:
 *   title        the words of the first defined name (the function, method or class that the
 *                snippet defines: `def f`, `func (r T) f`, `fn f`, `function f`, `sub f`, or the
 *                last identifier before the first '(' of a C-like header), split at snake_case,
 *                camelCase and digits, in sentence case; a one-word name gets "function" added
 *   description  the first comment or docstring of the snippet (its first paragraph, cut to the
 *                first sentence and 60 words, capitalised, ending with a period); without one,
 *                the title followed by a period
 *   tags         the language, then up to three tags of the vocabulary from the modules and
 *                libraries the code uses (qualified names such as `re.`, `strings.`, `_.`, name
 *                prefixes such as `uv_`, `lua_`) and the words of its identifiers (`parse` ->
 *                parsing, `json` -> json), ranked by how often they occur; only tags in the
 *                vocabulary are written
 *   links        at most one URL: the documentation page of the first module or library
 *                function used, from a per-language table of URL patterns (docs.python.org
 *                library pages, pkg.go.dev packages, man7.org pages, php.net functions,
 *                perldoc modules), written only when the URL is in the links index; otherwise none
 * Every answer is in the student completion format of tasks.h.
 */
#ifndef SM_BASELINE_H
#define SM_BASELINE_H

#include "snipmeta.h"
#include "tasks.h"

#include <stddef.h>

typedef struct sm_baseline sm_baseline;

/* A baseline answering from the tag vocabulary tags[0..n_tags) and the links index
 * links[0..n_links) (both copied; either may be empty). Returns a new baseline the caller frees
 * with sm_baseline_free, or NULL when out of memory. */
sm_baseline *sm_baseline_new(const char *const *tags, int n_tags, const char *const *links, int n_links);
void sm_baseline_free(sm_baseline *b); /* NULL-safe */

/* The baseline's completion for task t on a snippet (see above). Returns a new string the caller
 * frees, or NULL when out of memory. */
char *sm_baseline_complete(const sm_baseline *b, sm_task t, const char *lang, const char *code);

/* The snippet's first defined name into name[cap] (see above); 0, or -1 when none is found. */
int sm_baseline_symbol(const char *lang, const char *code, char *name, size_t cap);

/* The language and code of a student prompt (tasks.h: "Language: L\nCode:\n{code}\n### M:\n"):
 * new strings to *lang and *code that the caller frees. Returns SM_OK, SM_EFORMAT when the prompt
 * is not in that format, or SM_ENOMEM. */
int sm_baseline_parse_prompt(const char *prompt, char **lang, char **code);

#endif
