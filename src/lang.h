/* lang.h: the source languages that collect knows, and how a file's language is found.
 *
 * A file's language comes from its name (extension or a well-known file name), then from a
 * shebang line, then from light content checks (a .h file that reads as C++ is C++). Owns no
 * state: every function here is pure.
 */
#ifndef SM_LANG_H
#define SM_LANG_H

#include <stddef.h>

typedef enum sm_lang {
    SM_LANG_NONE = 0,
    SM_LANG_PYTHON,
    SM_LANG_C,
    SM_LANG_CPP,
    SM_LANG_GO,
    SM_LANG_RUST,
    SM_LANG_JAVA,
    SM_LANG_JAVASCRIPT,
    SM_LANG_TYPESCRIPT,
    SM_LANG_PHP,
    SM_LANG_PERL,
    SM_LANG_LUA,
    SM_LANG_SHELL,
    SM_LANG_RUBY,
    SM_LANG_COUNT
} sm_lang;

/* The language's name as snippets record it ("python", "cpp", ...); "none" for SM_LANG_NONE. */
const char *sm_lang_name(sm_lang lang);

/* The language a file name alone implies (by extension or well-known name), or SM_LANG_NONE.
 * path may be a full path; only its last component is looked at. */
sm_lang sm_lang_from_name(const char *path);

/* The language of a file from its name and its first head_len bytes (a shebang line, content
 * checks): the name wins, except that a .h file with C++ constructs is C++. Returns
 * SM_LANG_NONE when the file is not source code in a known language. */
sm_lang sm_lang_detect(const char *path, const char *head, size_t head_len);

#endif
