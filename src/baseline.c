/* baseline.c: the heuristic baseline (rules in baseline.h). The code is read once into a list of
 * name uses: each chain of identifiers joined by '.', '::' or '->' (`os.path.join`,
 * `Net::Netrc->new`, `uv_close`) with whether a '(' follows. Titles come from the definition
 * keywords or the C-like header, tags and links from the uses. String literals are skipped by the
 * scanner; comments are read for the description only.
 */
#include "baseline.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sm_baseline {
    char **tags, **links; /* sorted */
    int n_tags, n_links;
};

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static char **copy_sorted(const char *const *items, int n) {
    char **out = calloc((size_t)n + 1, sizeof *out);
    if (!out) return NULL;
    for (int i = 0; i < n; i++)
        if (!(out[i] = strdup(items[i]))) {
            while (i--) free(out[i]);
            free(out);
            return NULL;
        }
    qsort(out, (size_t)n, sizeof *out, str_cmp);
    return out;
}

static void free_list(char **items, int n) {
    if (!items) return;
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

sm_baseline *sm_baseline_new(const char *const *tags, int n_tags, const char *const *links, int n_links) {
    sm_baseline *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->tags = copy_sorted(tags, n_tags > 0 ? n_tags : 0);
    b->links = copy_sorted(links, n_links > 0 ? n_links : 0);
    b->n_tags = n_tags > 0 ? n_tags : 0, b->n_links = n_links > 0 ? n_links : 0;
    if (!b->tags || !b->links) { sm_baseline_free(b); return NULL; }
    return b;
}

void sm_baseline_free(sm_baseline *b) {
    if (!b) return;
    free_list(b->tags, b->n_tags);
    free_list(b->links, b->n_links);
    free(b);
}

static int in_sorted(char *const *list, int n, const char *x) { return n && bsearch(&x, list, (size_t)n, sizeof *list, str_cmp) != NULL; }

/* ---- the prompt ---- */

int sm_baseline_parse_prompt(const char *prompt, char **lang, char **code) {
    *lang = *code = NULL;
    if (strncmp(prompt, "Language: ", 10)) return SM_EFORMAT;
    const char *l = prompt + 10, *nl = strchr(l, '\n');
    if (!nl || strncmp(nl, "\nCode:\n", 7)) return SM_EFORMAT;
    const char *c = nl + 7, *end = NULL;
    /* the code ends at the last "\n### " marker line */
    for (const char *p = strstr(c - 1, "\n### "); p; p = strstr(p + 1, "\n### ")) end = p;
    if (!end) return SM_EFORMAT;
    *lang = strndup(l, (size_t)(nl - l));
    *code = strndup(c, end >= c ? (size_t)(end - c) : 0);
    if (!*lang || !*code) { free(*lang); free(*code); *lang = *code = NULL; return SM_ENOMEM; }
    return SM_OK;
}

/* ---- scanning the code ---- */

enum { MAX_PARTS = 4, PART_MAX = 64, MAX_USES = 512 };

typedef struct {
    char part[MAX_PARTS][PART_MAX]; /* the chain's identifiers */
    char sep[MAX_PARTS];            /* the joint after part i: '.', ':' (for ::), '>' (for ->) */
    int n_parts;
    int call;                       /* '(' follows the chain */
} use;

static int ident_start(int c) { return isalpha(c) || c == '_' || c == '$'; }
static int ident_char(int c) { return isalnum(c) || c == '_' || c == '$'; }

/* Skips a string literal starting at p (a quote); returns the byte after it. */
static const char *skip_string(const char *p) {
    char q = *p++;
    while (*p && *p != q && *p != '\n') p += (*p == '\\' && p[1]) ? 2 : 1;
    return *p == q ? p + 1 : p;
}

static int hash_comments(const char *lang) {
    return !strcmp(lang, "python") || !strcmp(lang, "perl") || !strcmp(lang, "shell") || !strcmp(lang, "ruby") || !strcmp(lang, "php");
}

/* The uses of the code into u (capacity MAX_USES); returns their count. */
static int scan_uses(const char *lang, const char *code, use *u) {
    int n = 0, hash = hash_comments(lang), lua = !strcmp(lang, "lua");
    for (const char *p = code; *p && n < MAX_USES;) {
        if (*p == '"' || *p == '\'' || *p == '`') { p = skip_string(p); continue; }
        if ((p[0] == '/' && p[1] == '/') || (hash && *p == '#') || (lua && p[0] == '-' && p[1] == '-')) {
            while (*p && *p != '\n') p++;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        if (!ident_start((unsigned char)*p) || (p > code && ident_char((unsigned char)p[-1]))) { p++; continue; }
        use *x = &u[n];
        memset(x, 0, sizeof *x);
        for (;;) {
            const char *s = p;
            while (ident_char((unsigned char)*p)) p++;
            if (x->n_parts < MAX_PARTS) {
                size_t len = (size_t)(p - s) < PART_MAX - 1 ? (size_t)(p - s) : PART_MAX - 1;
                memcpy(x->part[x->n_parts], s, len);
                x->part[x->n_parts][len] = 0;
            }
            char joint = 0;
            const char *q = p;
            if (q[0] == '.' && ident_start((unsigned char)q[1])) joint = '.', q += 1;
            else if (q[0] == ':' && q[1] == ':' && ident_start((unsigned char)q[2])) joint = ':', q += 2;
            else if (q[0] == '-' && q[1] == '>' && ident_start((unsigned char)q[2])) joint = '>', q += 2;
            if (x->n_parts < MAX_PARTS) x->sep[x->n_parts] = joint;
            x->n_parts++;
            if (!joint) break;
            p = q;
        }
        if (x->n_parts > MAX_PARTS) x->n_parts = MAX_PARTS;
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        x->call = *q == '(';
        n++;
    }
    return n;
}

/* ---- title ---- */

static const char *const c_keywords[] = {"if", "for", "while", "switch", "return", "sizeof", "catch", "defined",
                                         "function", "func", "fn", "def", "sub", NULL};

static int is_c_keyword(const char *w) {
    for (int i = 0; c_keywords[i]; i++)
        if (!strcmp(w, c_keywords[i])) return 1;
    return 0;
}

/* The identifier after keyword kw (a whole word followed by spaces) anywhere in code, skipping a
 * Go receiver "(r *T)" and Lua/JS qualifiers "a.b:" so the last name is taken. */
static int name_after(const char *code, const char *kw, char *name, size_t cap) {
    size_t k = strlen(kw);
    for (const char *p = strstr(code, kw); p; p = strstr(p + 1, kw)) {
        if ((p > code && ident_char((unsigned char)p[-1])) || (p[k] != ' ' && p[k] != '\t')) continue;
        const char *q = p + k;
        while (*q == ' ' || *q == '\t' || *q == '*' || *q == '&') q++;
        if (*q == '(') { /* Go receiver */
            while (*q && *q != ')' && *q != '\n') q++;
            if (*q != ')') continue;
            q++;
            while (*q == ' ') q++;
        }
        const char *s = q;
        for (;;) {
            while (ident_char((unsigned char)*q)) q++;
            if ((*q == '.' || *q == ':') && ident_start((unsigned char)q[1])) { s = ++q; continue; }
            break;
        }
        if (q == s || !ident_start((unsigned char)*s)) continue;
        size_t len = (size_t)(q - s) < cap - 1 ? (size_t)(q - s) : cap - 1;
        memcpy(name, s, len);
        name[len] = 0;
        return 0;
    }
    return -1;
}

int sm_baseline_symbol(const char *lang, const char *code, char *name, size_t cap) {
    static const struct { const char *lang, *kw; } defs[] = {
        {"python", "def"}, {"python", "class"}, {"go", "func"}, {"rust", "fn"}, {"javascript", "function"},
        {"typescript", "function"}, {"php", "function"}, {"perl", "sub"}, {"lua", "function"}, {"shell", "function"},
    };
    if (cap < 2) return -1;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!strcmp(lang, defs[i].lang) && !name_after(code, defs[i].kw, name, cap)) return 0;
    /* C-like header (also methods of classes in Java, JS, TS, PHP, and shell's "f()"): the last
     * identifier before the first '(' that comes before the first '{' or ';' */
    const char *open = strchr(code, '(');
    const char *brace = strpbrk(code, "{;=");
    if (!open || (brace && brace < open)) {
        /* an assignment of a function: `const name = (...) =>` or `name = function` */
        if (brace && *brace == '=') open = brace;
        else return -1;
    }
    const char *e = open;
    while (e > code && (e[-1] == ' ' || e[-1] == '\t')) e--;
    const char *s = e;
    while (s > code && ident_char((unsigned char)s[-1])) s--;
    if (s == e || !ident_start((unsigned char)*s)) return -1;
    size_t len = (size_t)(e - s) < cap - 1 ? (size_t)(e - s) : cap - 1;
    memcpy(name, s, len);
    name[len] = 0;
    return is_c_keyword(name) ? -1 : 0;
}

/* The words of an identifier (snake_case, camelCase, HTTPServer, digits), into words (each at
 * most 31 bytes); returns their count. */
static int split_identifier(const char *id, char words[][32], int max) {
    int n = 0;
    for (const char *p = id; *p && n < max;) {
        if (!isalnum((unsigned char)*p)) { p++; continue; }
        const char *s = p;
        if (isupper((unsigned char)*p)) {
            while (isupper((unsigned char)*p)) p++;
            /* "HTTPServer": the last capital starts the next word */
            if (p - s > 1 && islower((unsigned char)*p)) p--;
            else while (islower((unsigned char)*p)) p++;
        } else if (isdigit((unsigned char)*p)) {
            while (isdigit((unsigned char)*p)) p++;
        } else {
            while (islower((unsigned char)*p)) p++;
        }
        while (isdigit((unsigned char)*p) && p > s && !isdigit((unsigned char)p[-1])) /* win32, open64 */
            while (isdigit((unsigned char)*p)) p++;
        size_t len = (size_t)(p - s) < 31 ? (size_t)(p - s) : 31;
        memcpy(words[n], s, len);
        words[n][len] = 0;
        n++;
    }
    return n;
}

static char *make_title(const char *lang, const char *code) {
    char name[128], words[10][32];
    if (sm_baseline_symbol(lang, code, name, sizeof name)) snprintf(name, sizeof name, "%s", "anonymous");
    int n = split_identifier(name, words, 9);
    if (n == 0) n = 1, snprintf(words[0], sizeof words[0], "%s", "anonymous");
    if (n == 1) snprintf(words[n++], sizeof words[0], "%s", "function");
    char out[400] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char *w = words[i];
        int acronym = strlen(w) > 1 && isupper((unsigned char)w[0]) && isupper((unsigned char)w[1]);
        if (!acronym)
            for (char *c = w; *c; c++) *c = (char)tolower((unsigned char)*c);
        if (i == 0) w[0] = (char)toupper((unsigned char)w[0]);
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i ? " " : "", w);
    }
    return strdup(out);
}

/* ---- description ---- */

/* The first comment's first paragraph (markers stripped, lines joined), into out[cap]; 0 or -1. */
static int first_comment(const char *lang, const char *code, char *out, size_t cap) {
    int hash = hash_comments(lang), lua = !strcmp(lang, "lua"), python = !strcmp(lang, "python");
    size_t len = 0;
    out[0] = 0;
    for (const char *p = code; *p;) {
        const char *body = NULL, *end = NULL;
        int line_comment = 0;
        if (python && (!strncmp(p, "\"\"\"", 3) || !strncmp(p, "'''", 3))) {
            char q[4] = {p[0], p[0], p[0], 0};
            body = p + 3, end = strstr(body, q);
            if (!end) end = body + strlen(body);
        } else if (*p == '"' || *p == '\'' || *p == '`') {
            p = skip_string(p);
            continue;
        } else if (p[0] == '/' && p[1] == '*') {
            body = p + 2, end = strstr(body, "*/");
            if (!end) end = body + strlen(body);
        } else if ((p[0] == '/' && p[1] == '/') || (hash && *p == '#' && p[1] != '!') || (lua && p[0] == '-' && p[1] == '-')) {
            line_comment = 1;
            body = p;
            /* the run of consecutive comment lines */
            end = p;
            for (;;) {
                const char *nl = strchr(end, '\n');
                if (!nl) { end += strlen(end); break; }
                const char *q = nl + 1;
                while (*q == ' ' || *q == '\t') q++;
                if (!((q[0] == '/' && q[1] == '/') || (hash && *q == '#') || (lua && q[0] == '-' && q[1] == '-'))) { end = nl; break; }
                end = q;
            }
        } else {
            p++;
            continue;
        }
        /* strip markers line by line, stop at a blank line or a tag line (@param, :param) */
        for (const char *l = body; l < end;) {
            const char *nl = memchr(l, '\n', (size_t)(end - l));
            const char *le = nl ? nl : end;
            const char *a = l;
            while (a < le && (strchr(" \t*/#-!", *a) || (line_comment && *a == '/'))) a++;
            const char *b = le;
            while (b > a && strchr(" \t*/\r", b[-1])) b--;
            if (a == b) { if (len) break; }
            else if (*a == '@' || *a == ':' || !strncmp(a, "TODO", 4) || !strncmp(a, "XXX", 3) || !strncmp(a, "noqa", 4) ||
                     !strncmp(a, "Copyright", 9) || !strncmp(a, "-*-", 3) || !strncmp(a, "eslint", 6)) {
                if (len) break;
            } else if (len + (size_t)(b - a) + 2 < cap) {
                if (len) out[len++] = ' ';
                memcpy(out + len, a, (size_t)(b - a));
                len += (size_t)(b - a);
                out[len] = 0;
            }
            l = nl ? nl + 1 : end;
        }
        if (len) return 0;
        p = *end ? end + 1 : end;
    }
    return -1;
}

/* text cut to its first max_sentences sentences (an end ". " before an upper-case letter) and
 * 60 words, capitalised, ending with a period; a new string, or NULL when out of memory. */
static char *cut_sentences(const char *text, int max_sentences) {
    size_t len = strlen(text);
    for (size_t i = 0; i + 2 < len; i++)
        if ((text[i] == '.' || text[i] == '!' || text[i] == '?') && text[i + 1] == ' ' && isupper((unsigned char)text[i + 2]) &&
            --max_sentences == 0) {
            len = i + 1;
            break;
        }
    int words = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && (i == 0 || text[i - 1] == ' ') && ++words > 60) { len = i; break; }
    while (len && strchr(" ,;:", text[len - 1])) len--;
    char *d = malloc(len + 2);
    if (!d) return NULL;
    memcpy(d, text, len);
    d[len] = 0;
    d[0] = (char)toupper((unsigned char)d[0]);
    if (len && !strchr(".!?", d[len - 1])) d[len] = '.', d[len + 1] = 0;
    return d;
}

/* The comment's first paragraph up to three sentences, else its first sentence, else the title
 * with a period: the first that passes the description check. */
static char *make_description(const char *lang, const char *code, const char *title) {
    char text[2048], reason[SM_REASON_MAX];
    if (!first_comment(lang, code, text, sizeof text)) {
        /* whitespace runs become one space */
        size_t k = 0;
        for (size_t i = 0; text[i]; i++)
            if (!isspace((unsigned char)text[i]) || (k && text[k - 1] != ' ')) text[k++] = isspace((unsigned char)text[i]) ? ' ' : text[i];
        text[k] = 0;
        for (int n = 3; n >= 1; n -= 2) {
            char *d = cut_sentences(text, n);
            if (!d || !sm_check_description(d, reason)) return d;
            free(d);
        }
    }
    char *d = malloc(strlen(title) + 2);
    if (d) sprintf(d, "%s.", title);
    return d;
}

/* ---- tags ---- */

/* What a use or a word points to: when `key` matches, `tag` scores. Keys: "x." the first part of a
 * chain that goes on (a module or object: re., strings., _.); "x*" a name prefix; "x" a whole
 * word of an identifier (lowercase). lang NULL: any language. */
static const struct { const char *lang, *key, *tag; } tag_rules[] = {
    {"python", "re.", "regex"}, {"python", "os.", "filesystem"}, {"python", "socket.", "sockets"},
    {"python", "datetime.", "date-time"}, {"python", "heapq.", "heap"}, {"python", "unittest.", "testing"},
    {"python", "sqlite3.", "sqlite"}, {"python", "codecs.", "encoding"}, {"python", "signal.", "signals"},
    {"python", "attr.", "attrs"}, {"python", "click.", "click"}, {"python", "jinja2.", "jinja2"},
    {"python", "flask.", "flask"}, {"python", "requests.", "requests"}, {"python", "tk.", "tkinter"},
    {"go", "strings.", "string-manipulation"}, {"go", "fmt.", "formatting"}, {"go", "os.", "filesystem"},
    {"go", "http.", "http"}, {"go", "filepath.", "path-handling"}, {"go", "errors.", "error-handling"},
    {"go", "sync.", "synchronization"}, {"go", "regexp.", "regex"}, {"go", "cobra.", "cobra"}, {"go", "mux.", "gorilla-mux"},
    {"go", "uuid.", "uuid"}, {"go", "pflag.", "pflag"}, {"go", "tcell.", "tcell"}, {"go", "time.", "date-time"},
    {"go", "sort.", "sorting"}, {"go", "exec.", "process"}, {"go", "net.", "networking"}, {"go", "strconv.", "parsing"},
    {"c", "uv_*", "libuv"}, {"c", "lua_*", "lua-c-api"}, {"c", "luaL_*", "lua-c-api"}, {"c", "sqlite3*", "sqlite"},
    {"c", "evbuffer_*", "libevent"}, {"c", "event_*", "libevent"}, {"c", "LZ4*", "lz4"}, {"c", "z_stream", "zlib"},
    {"c", "zmalloc", "redis"}, {"c", "server.", "redis"}, {"c", "sds*", "redis"}, {"c", "malloc", "memory-management"},
    {"c", "free", "memory-management"}, {"c", "window_pane*", "tmux"}, {"c", "lp_*", "lpeg"},
    {"cpp", "Slice", "leveldb"}, {"cpp", "Status", "leveldb"}, {"cpp", "RE2", "re2"}, {"cpp", "fmt.", "fmt"},
    {"java", "Preconditions.", "guava"}, {"java", "Immutable*", "guava"}, {"java", "checkNotNull", "guava"},
    {"java", "checkArgument", "guava"}, {"java", "StringUtils.", "commons-lang"}, {"java", "ArrayUtils.", "commons-lang"},
    {"java", "Validate.", "commons-lang"}, {"java", "ObjectUtils.", "commons-lang"},
    {"javascript", "_.", "lodash"}, {"javascript", "axios", "axios"}, {"javascript", "yargs", "yargs"},
    {"javascript", "req", "express"}, {"javascript", "res", "express"}, {"javascript", "program.", "commander"},
    {"typescript", "z.", "zod"}, {"typescript", "Zod*", "zod"}, {"typescript", "ctx.", "zod"},
    {"php", "record", "monolog"}, {"php", "Logger", "monolog"}, {"php", "record", "logging"},
    {"rust", "Regex", "regex"}, {"rust", "clap.", "clap"}, {"rust", "Arg.", "clap"}, {"rust", "PathBuf", "path-handling"},
    {"lua", "lpeg.", "lpeg"}, {"lua", "cjson.", "json"},
    {NULL, "parse", "parsing"}, {NULL, "log", "logging"}, {NULL, "logger", "logging"}, {NULL, "test", "testing"},
    {NULL, "assert", "testing"}, {NULL, "cache", "caching"}, {NULL, "buffer", "buffers"}, {NULL, "buf", "buffers"},
    {NULL, "callback", "callbacks"}, {NULL, "cb", "callbacks"}, {NULL, "iter", "iterators"}, {NULL, "iterator", "iterators"},
    {NULL, "config", "configuration"}, {NULL, "conf", "configuration"}, {NULL, "err", "error-handling"},
    {NULL, "error", "error-handling"}, {NULL, "exception", "exceptions"}, {NULL, "validate", "validation"},
    {NULL, "check", "validation"}, {NULL, "format", "formatting"}, {NULL, "fmt", "formatting"}, {NULL, "path", "path-handling"},
    {NULL, "file", "file-io"}, {NULL, "fd", "file-io"}, {NULL, "sort", "sorting"}, {NULL, "search", "searching"},
    {NULL, "find", "searching"}, {NULL, "lock", "synchronization"}, {NULL, "mutex", "synchronization"},
    {NULL, "thread", "threading"}, {NULL, "socket", "sockets"}, {NULL, "sock", "networking"}, {NULL, "url", "url"},
    {NULL, "request", "http"}, {NULL, "response", "http"}, {NULL, "encode", "encoding"}, {NULL, "decode", "encoding"},
    {NULL, "compress", "compression"}, {NULL, "template", "templates"}, {NULL, "hash", "hashing"}, {NULL, "rand", "random"},
    {NULL, "time", "date-time"}, {NULL, "date", "date-time"}, {NULL, "signal", "signals"}, {NULL, "token", "tokenizer"},
    {NULL, "args", "argument-parsing"}, {NULL, "argv", "argument-parsing"}, {NULL, "flag", "argument-parsing"},
    {NULL, "option", "argument-parsing"}, {NULL, "cmd", "cli"}, {NULL, "command", "cli"}, {NULL, "tty", "terminal"},
    {NULL, "str", "string-manipulation"}, {NULL, "string", "string-manipulation"}, {NULL, "alloc", "memory-management"},
    {NULL, "async", "async"}, {NULL, "await", "async"}, {NULL, "node", "tree"}, {NULL, "schema", "schema"},
};

enum { MAX_TAG_CANDIDATES = 64 };

typedef struct {
    const char *tag;
    int score, first; /* occurrences, and the order of the first one (ties) */
} candidate;

static void vote(candidate *c, int *n, const char *tag, int weight, int order) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(c[i].tag, tag)) { c[i].score += weight; return; }
    if (*n < MAX_TAG_CANDIDATES) c[(*n)++] = (candidate){tag, weight, order};
}

static int candidate_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->score != y->score) return y->score - x->score;
    return x->first - y->first;
}

static int rule_matches(const char *key, const use *u, char words[][32], int n_words) {
    size_t k = strlen(key);
    if (key[k - 1] == '.') return u->n_parts > 1 && strlen(u->part[0]) == k - 1 && !strncmp(u->part[0], key, k - 1);
    if (key[k - 1] == '*') return !strncmp(u->part[u->n_parts - 1], key, k - 1) || !strncmp(u->part[0], key, k - 1);
    if (isupper((unsigned char)key[0]) || strchr(key, '_'))
        for (int i = 0; i < u->n_parts; i++)
            if (!strcmp(u->part[i], key)) return 1;
    for (int i = 0; i < n_words; i++)
        if (!strcmp(words[i], key)) return 1;
    return 0;
}

static char *make_tags(const sm_baseline *b, const char *lang, const char *code) {
    use *uses = malloc(MAX_USES * sizeof *uses);
    if (!uses) return NULL;
    int n_uses = scan_uses(lang, code, uses), n_cand = 0;
    candidate cand[MAX_TAG_CANDIDATES];
    for (int i = 0; i < n_uses; i++) {
        const use *u = &uses[i];
        char words[16][32];
        int n_words = 0;
        for (int p = 0; p < u->n_parts && n_words < 12; p++) n_words += split_identifier(u->part[p], words + n_words, 16 - n_words);
        for (int w = 0; w < n_words; w++)
            for (char *c = words[w]; *c; c++) *c = (char)tolower((unsigned char)*c);
        /* a module or library name that is itself a tag (json., asyncio., subprocess.) */
        const char *part0 = u->part[0];
        char **own = u->n_parts > 1 && strcmp(part0, lang) && b->n_tags
                         ? bsearch(&part0, b->tags, (size_t)b->n_tags, sizeof *b->tags, str_cmp)
                         : NULL;
        if (own) vote(cand, &n_cand, *own, 3, i);
        for (size_t r = 0; r < sizeof tag_rules / sizeof tag_rules[0]; r++) {
            if (tag_rules[r].lang && strcmp(tag_rules[r].lang, lang)) continue;
            if (!rule_matches(tag_rules[r].key, u, words, n_words)) continue;
            vote(cand, &n_cand, tag_rules[r].tag, tag_rules[r].lang ? 3 : 1, i);
        }
    }
    free(uses);
    qsort(cand, (size_t)n_cand, sizeof *cand, candidate_cmp);
    char out[512];
    size_t len = (size_t)snprintf(out, sizeof out, "%s", lang);
    for (int i = 0, taken = 0; i < n_cand && taken < 3; i++) {
        if (!strcmp(cand[i].tag, lang) || !in_sorted(b->tags, b->n_tags, cand[i].tag)) continue;
        len += (size_t)snprintf(out + len, sizeof out - len, ", %s", cand[i].tag);
        taken++;
    }
    return strdup(out);
}

/* ---- links ---- */

/* URL patterns per language, tried for each use in code order: {1} the first part of the chain,
 * {2} the second, {P} the chain before its last "::" part (a Perl package), {-} the first part
 * with '_' as '-' (php.net). A pattern that needs a part the use lacks is skipped; a call-only
 * pattern (call 1) needs a single-part call such as printf(. */
static const struct { const char *lang, *pattern; int call; } link_rules[] = {
    {"python", "https://docs.python.org/3/library/{1}.html#{1}.{2}", 0},
    {"python", "https://docs.python.org/3/library/{1}.html", 0},
    {"go", "https://pkg.go.dev/{1}#{2}", 0},
    {"go", "https://pkg.go.dev/{1}", 0},
    {"c", "https://man7.org/linux/man-pages/man3/{1}.3.html", 1},
    {"c", "https://man7.org/linux/man-pages/man2/{1}.2.html", 1},
    {"cpp", "https://en.cppreference.com/w/cpp/{1}/{2}", 0},
    {"php", "https://www.php.net/manual/en/function.{-}.php", 1},
    {"perl", "https://perldoc.perl.org/{P}", 0},
    {"perl", "https://perldoc.perl.org/functions/{1}", 1},
    {"javascript", "https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/{1}/{2}", 0},
    {"javascript", "https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/{1}", 0},
    {"typescript", "https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/{1}/{2}", 0},
    {"lua", "https://www.lua.org/manual/5.4/manual.html#pdf-{1}.{2}", 0},
};

/* Expands pattern for use u into out[cap]; -1 when u lacks what the pattern needs. */
static int expand(const char *pattern, int call_only, const use *u, char *out, size_t cap) {
    if (call_only && (u->n_parts != 1 || !u->call)) return -1;
    size_t len = 0;
    for (const char *p = pattern; *p; p++) {
        char piece[MAX_PARTS * PART_MAX + 8] = "";
        if (p[0] == '{' && p[2] == '}') {
            if (p[1] == '1' || p[1] == '-') {
                snprintf(piece, sizeof piece, "%s", u->part[0]);
                if (p[1] == '-')
                    for (char *c = piece; *c; c++) if (*c == '_') *c = '-';
            } else if (p[1] == '2') {
                if (u->n_parts < 2) return -1;
                snprintf(piece, sizeof piece, "%s", u->part[1]);
            } else if (p[1] == 'P') {
                /* the parts joined by '::'; a fully qualified call (A::B::f) drops its function */
                int m = 1;
                while (m < u->n_parts && u->sep[m - 1] == ':') m++;
                if (m == u->n_parts && u->call) m--;
                if (m < 2) return -1;
                size_t pl = 0;
                for (int k = 0; k < m; k++) pl += (size_t)snprintf(piece + pl, sizeof piece - pl, "%s%s", k ? "::" : "", u->part[k]);
            }
            p += 2;
        } else {
            piece[0] = *p;
        }
        size_t pl = strlen(piece);
        if (len + pl + 1 > cap) return -1;
        memcpy(out + len, piece, pl + 1);
        len += pl;
    }
    return 0;
}

static char *make_links(const sm_baseline *b, const char *lang, const char *code) {
    use *uses = malloc(MAX_USES * sizeof *uses);
    if (!uses) return NULL;
    int n_uses = scan_uses(lang, code, uses);
    char url[1024];
    const char *found = NULL;
    for (int i = 0; i < n_uses && !found; i++)
        for (size_t r = 0; r < sizeof link_rules / sizeof link_rules[0] && !found; r++) {
            if (strcmp(link_rules[r].lang, lang)) continue;
            if (expand(link_rules[r].pattern, link_rules[r].call, &uses[i], url, sizeof url)) continue;
            if (in_sorted(b->links, b->n_links, url)) found = url;
        }
    free(uses);
    return strdup(found ? found : "");
}

char *sm_baseline_complete(const sm_baseline *b, sm_task t, const char *lang, const char *code) {
    if (t == SM_TASK_TITLE) return make_title(lang, code);
    if (t == SM_TASK_DESCRIPTION) {
        char *title = make_title(lang, code);
        char *d = title ? make_description(lang, code, title) : NULL;
        free(title);
        return d;
    }
    if (t == SM_TASK_TAGS) return make_tags(b, lang, code);
    return make_links(b, lang, code);
}
