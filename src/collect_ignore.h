/* collect_ignore.h: .gitignore rules for the collect walker.
 *
 * A stack of rule sets, one level per directory being walked: the walker pushes a directory's
 * .gitignore when it enters it and pops it when it leaves. Rules follow gitignore(5): blank
 * lines and '#' comments are skipped; '!' negates (re-includes); a trailing '/' matches
 * directories only; a pattern with a '/' elsewhere is anchored to its .gitignore's directory,
 * one without matches a name at any depth below it; '*', '?', '[...]' do not cross '/', and
 * '**' does (leading, trailing, or between two slashes); a backslash escapes. Later and deeper
 * rules win. As in git, a file under an ignored directory stays ignored (the walker never
 * enters that directory).
 */
#ifndef SM_COLLECT_IGNORE_H
#define SM_COLLECT_IGNORE_H

#include <stddef.h>

typedef struct sm_ignore sm_ignore;

/* Returns an empty rule stack, or NULL when out of memory; free it with sm_ignore_free. */
sm_ignore *sm_ignore_new(void);
void sm_ignore_free(sm_ignore *ig);

/* Pushes one level: the rules of text[0..len) (a .gitignore's content; NULL for none) for the
 * directory at rel, relative to the walk root ("" for the root itself). Returns 0 or SM_ENOMEM
 * (nothing is pushed then). */
int sm_ignore_push(sm_ignore *ig, const char *rel, const char *text, size_t len);
/* Pops the level pushed last. */
void sm_ignore_pop(sm_ignore *ig);

/* Is the path rel (relative to the walk root, '/'-separated, no leading "./") ignored? */
int sm_ignore_match(const sm_ignore *ig, const char *rel, int is_dir);

/* gitignore glob: does pattern match the whole of path? (exposed for the tests) */
int sm_ignore_glob(const char *pattern, const char *path);

#endif
