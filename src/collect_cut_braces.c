/* collect_cut_braces.c: definitions in brace languages (C, C++, Go, Rust, Java, JavaScript,
 * TypeScript, PHP, Perl, shell).
 *
 * One pass over the code view keeps a stack of open '{'. At each '{' the header before it (back
 * to the previous ';', '{' or '}' at bracket depth 0, or to the newline for Go and shell) is
 * tokenised and read by the language's analyser: is this a function, a method, a class, a
 * namespace-like block that may hold definitions, or any other block? Its '}' then ends the
 * definition. Which blocks may hold which definitions follows each language (C functions only
 * at file scope, Java methods only in class bodies, JavaScript functions anywhere).
 */
#include "collect_cut_impl.h"

#include <string.h>

#include "lang_lex.h"

enum { MAX_TOKS = 256, MAX_DEPTH = 256, MAX_HEADER = 4096 };

typedef struct tok { size_t a, b; } tok; /* [a, b) in the view */

typedef struct header {
    const cut_src *src;
    tok t[MAX_TOKS];
    int n;
} header;

typedef enum block_kind {
    B_OTHER,     /* a statement block, an initializer, a struct body: holds no definitions we report */
    B_FUNC,      /* a function or method body: reported */
    B_CLASS,     /* a class body: reported, and its functions are methods */
    B_CONTAINER, /* holds methods but is not reported (interface, anonymous class) */
    B_NS,        /* a namespace-like block: like file scope */
} block_kind;

typedef struct block {
    block_kind kind;
    sm_cut_kind cut_kind;
    size_t start; /* byte offset where the definition starts (decorators included) */
    char name[128];
    size_t name_len;
} block;

/* What encloses the '{' being read. */
typedef struct scope {
    block_kind inner;  /* the innermost enclosing block (B_NS at file scope) */
    int only_ns;       /* every enclosing block is B_NS */
    int only_types;    /* every enclosing block is B_NS, B_CLASS or B_CONTAINER */
} scope;

/* ---- tokens ---- */

static int tk_len(const header *h, int k) { return (int)(h->t[k].b - h->t[k].a); }
static const char *tk_ptr(const header *h, int k) { return h->src->v + h->t[k].a; }

static int tk_is(const header *h, int k, const char *w) {
    if (k < 0 || k >= h->n) return 0;
    size_t len = strlen(w);
    return (size_t)tk_len(h, k) == len && !memcmp(tk_ptr(h, k), w, len);
}

static int tk_ch(const header *h, int k, char c) {
    return k >= 0 && k < h->n && tk_len(h, k) == 1 && tk_ptr(h, k)[0] == c;
}

static int tk_ident(const header *h, int k) {
    if (k < 0 || k >= h->n) return 0;
    unsigned char c = (unsigned char)tk_ptr(h, k)[0];
    return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int tk_in(const header *h, int k, const char *const *words) {
    for (int i = 0; words[i]; i++)
        if (tk_is(h, k, words[i])) return 1;
    return 0;
}

static void tokenize(header *h, size_t a, size_t p) {
    const char *v = h->src->v;
    sm_lang lang = h->src->lang;
    static const char *const ops[] = {"===", "!==", "...", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", NULL};
    h->n = 0;
    size_t i = a;
    while (i < p) {
        unsigned char c = (unsigned char)v[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { i++; continue; }
        size_t j = i + 1;
        if (c == '"' || c == (unsigned char)SM_VIEW_STR) {
            while (j < p && v[j] == SM_VIEW_STR) j++;
        } else if (cut_is_ident_char(c) || c == '$') {
            while (j < p && (cut_is_ident_char((unsigned char)v[j]) || v[j] == '$' ||
                             (lang == SM_LANG_SHELL && (v[j] == '-' || v[j] == '.' || v[j] == ':'))))
                j++;
        } else {
            for (int o = 0; ops[o]; o++) {
                size_t k = strlen(ops[o]);
                if (i + k <= p && !memcmp(v + i, ops[o], k)) { j = i + k; break; }
            }
        }
        if (h->n == MAX_TOKS) { /* keep the tail: a definition's header is at the end */
            memmove(h->t, h->t + MAX_TOKS / 2, (MAX_TOKS / 2) * sizeof h->t[0]);
            h->n = MAX_TOKS / 2;
        }
        h->t[h->n].a = i;
        h->t[h->n].b = j;
        h->n++;
        i = j;
    }
}

static char closer(char open) { return open == '(' ? ')' : open == '[' ? ']' : open == '<' ? '>' : '}'; }

/* The token that closes the group opened at k, or -1. */
static int group_end(const header *h, int k) {
    if (k < 0 || k >= h->n) return -1;
    char open = tk_ptr(h, k)[0], close = closer(open);
    int depth = 0;
    for (int j = k; j < h->n; j++) {
        if (tk_ch(h, j, open)) depth++;
        else if (tk_ch(h, j, close) && --depth == 0) return j;
    }
    return -1;
}

/* The token that opens the group closed at k, or -1. */
static int group_start(const header *h, int k) {
    if (k < 0 || k >= h->n) return -1;
    char close = tk_ptr(h, k)[0];
    char open = close == ')' ? '(' : close == ']' ? '[' : close == '>' ? '<' : '{';
    int depth = 0;
    for (int j = k; j >= 0; j--) {
        if (tk_ch(h, j, close)) depth++;
        else if (tk_ch(h, j, open) && --depth == 0) return j;
    }
    return -1;
}

/* Where a decoration starting at k ends (one past it), or k: Java annotations and TS
 * decorators (@a.b(...)), PHP and Rust attributes (#[...]), C++ [[...]], GNU __attribute__. */
static int skip_decoration(const header *h, int k) {
    sm_lang lang = h->src->lang;
    if (tk_ch(h, k, '@') && tk_ident(h, k + 1)) {
        int j = k + 2;
        while (tk_ch(h, j, '.') && tk_ident(h, j + 1)) j += 2;
        if (tk_ch(h, j, '(')) { int e = group_end(h, j); return e < 0 ? h->n : e + 1; }
        return j;
    }
    if (tk_ch(h, k, '#') && tk_ch(h, k + 1, '[')) { int e = group_end(h, k + 1); return e < 0 ? h->n : e + 1; }
    if (tk_ch(h, k, '#') && tk_ch(h, k + 1, '!') && tk_ch(h, k + 2, '[')) { int e = group_end(h, k + 2); return e < 0 ? h->n : e + 1; }
    if (lang == SM_LANG_CPP && tk_ch(h, k, '[') && tk_ch(h, k + 1, '[')) { int e = group_end(h, k); return e < 0 ? h->n : e + 1; }
    static const char *const attrs[] = {"__attribute__", "__attribute", "__declspec", "alignas", "_Alignas", NULL};
    if ((lang == SM_LANG_C || lang == SM_LANG_CPP) && tk_in(h, k, attrs) && tk_ch(h, k + 1, '(')) {
        int e = group_end(h, k + 1);
        return e < 0 ? h->n : e + 1;
    }
    return k;
}

/* If the tokens ending at k are a decoration, the index of its first token; else -1. */
static int decoration_before(const header *h, int k) {
    int j = k;
    if (tk_ch(h, j, ']')) {
        int g = group_start(h, j);
        if (g < 0) return -1;
        if (tk_ch(h, g - 1, '#')) return g - 1;
        if (tk_ch(h, g - 1, '!') && tk_ch(h, g - 2, '#')) return g - 2;
        if (tk_ch(h, g + 1, '[') && h->src->lang == SM_LANG_CPP) return g;
        return -1;
    }
    if (tk_ch(h, j, ')')) {
        int g = group_start(h, j);
        if (g < 0) return -1;
        static const char *const attrs[] = {"__attribute__", "__attribute", "__declspec", "alignas", "_Alignas", NULL};
        if (tk_in(h, g - 1, attrs)) return g - 1;
        j = g - 1;
    }
    if (!tk_ident(h, j)) return -1;
    while (tk_ch(h, j - 1, '.') && tk_ident(h, j - 2)) j -= 2;
    return tk_ch(h, j - 1, '@') ? j - 1 : -1;
}

static void set_name(block *b, const header *h, int first, int last) {
    size_t a = h->t[first].a, e = h->t[last].b, len = e - a;
    if (len >= sizeof b->name) len = sizeof b->name - 1;
    memcpy(b->name, h->src->v + a, len);
    b->name_len = len;
}

static void define(block *b, const header *h, block_kind kind, sm_cut_kind cut_kind, int start, int name_first, int name_last) {
    b->kind = kind;
    b->cut_kind = cut_kind;
    b->start = h->t[start].a;
    set_name(b, h, name_first, name_last);
}

/* ---- C, C++, Java, JavaScript, TypeScript, PHP ---- */

/* words that, before a '(', make a statement or an expression, not a definition's name (in a
 * JavaScript class body any of them may name a method) */
static const char *const not_names[] = {
    "if", "for", "while", "switch", "catch", "return", "sizeof", "typeof", "with", "do", "else",
    "synchronized", "try", "foreach", "elseif", "defined", "alignof", "decltype", "static_assert",
    "super", "this", "await", "new", "delete", "throw", "case", "goto", "yield", "void", "in",
    "of", "instanceof", NULL};

static const char *const c_statement_words[] = {
    "return", "else", "if", "case", "goto", "throw", "delete", "do", "while", "for", "switch",
    "sizeof", "typedef", "using", "break", "continue", "co_return", "co_await", NULL};

static const char *const js_modifiers[] = {
    "async", "static", "get", "set", "export", "default", "function", "public", "private",
    "protected", "readonly", "abstract", "override", "declare", "accessor", NULL};

static const char *const class_modifiers[] = {
    "public", "private", "protected", "static", "final", "abstract", "export", "default", "declare",
    "sealed", "non-sealed", "strictfp", "readonly", NULL};

static int suffix_ok(const header *h, int k);

/* Does the group opened at k hold a macro's arguments rather than C parameters: a number
 * directly inside it (array sizes sit inside [ ]), or nothing but another group, `((...))`? */
static int macro_arguments(const header *h, int k) {
    int r = group_end(h, k);
    if (r < 0) return 0;
    if (tk_ch(h, k + 1, '(') && group_end(h, k + 1) == r - 1) return 1;
    int depth = 0;
    for (int j = k + 1; j < r; j++) {
        if (tk_ch(h, j, '(') || tk_ch(h, j, '[')) depth++;
        else if (tk_ch(h, j, ')') || tk_ch(h, j, ']')) depth--;
        else if (!depth && tk_ptr(h, j)[0] >= '0' && tk_ptr(h, j)[0] <= '9') return 1;
    }
    return 0;
}

/* The '(' of a parameter list, or -1 when there is none. *name_k is the token before which the
 * modifiers and return type stand; the name is tokens *name_first..*name_last (a computed
 * JavaScript name `[Symbol.iterator]` is the inside of its brackets). In C-like languages the
 * first candidate counts; in JavaScript and TypeScript, whose statements may end without ';',
 * the last one that is followed by nothing but a return type. */
static int find_params(const header *h, int *name_k, int *name_first, int *name_last) {
    sm_lang lang = h->src->lang;
    int js = lang == SM_LANG_JAVASCRIPT || lang == SM_LANG_TYPESCRIPT;
    int depth = 0, best = -1;
    for (int k = 0; k < h->n; k++) {
        int e = skip_decoration(h, k);
        if (e > k) { k = e - 1; continue; }
        if (lang == SM_LANG_CPP && tk_is(h, k, "template") && tk_ch(h, k + 1, '<')) {
            int g = group_end(h, k + 1);
            if (g < 0) return -1;
            k = g;
            continue;
        }
        if (tk_ch(h, k, '[')) { depth++; continue; }
        if (tk_ch(h, k, ']')) { depth--; continue; }
        if (!tk_ch(h, k, '(') || depth) continue;
        int nk = k - 1, first, last;
        if (tk_ch(h, nk, '>') && lang != SM_LANG_C && lang != SM_LANG_PHP) nk = group_start(h, nk) - 1;
        if (lang == SM_LANG_CPP) {
            if (tk_is(h, nk, "operator") && tk_ch(h, k + 1, ')') && tk_ch(h, k + 2, '(')) {
                *name_k = *name_first = nk;
                *name_last = k + 1;
                return k + 2;
            }
            for (int o = nk; o >= 0 && o >= nk - 3; o--)
                if (tk_is(h, o, "operator")) { *name_k = *name_first = o; *name_last = k - 1; return k; }
        }
        if (js && tk_ch(h, nk, '*') && tk_is(h, nk - 1, "function")) nk--;
        first = last = nk;
        if (js && tk_ch(h, nk, ']')) { /* a computed name */
            int g = group_start(h, nk);
            if (g < 0 || g + 1 > nk - 1) { if (!js) return -1; continue; }
            first = g + 1;
            last = nk - 1;
            nk = g;
        } else if (!tk_ident(h, nk)) {
            if (!js) return -1;
            continue;
        }
        if (js) {
            int r = group_end(h, k);
            if (r < 0 || !suffix_ok(h, r + 1)) continue;
        }
        if (lang == SM_LANG_C && macro_arguments(h, k)) { /* `ATTR(2, 3) int name(params)` */
            int r = group_end(h, k);
            int more = 0;
            for (int j = r + 1; r > 0 && j < h->n; j++) more |= tk_ch(h, j, '(');
            if (more) { k = r; continue; }
        }
        *name_k = nk;
        *name_first = first;
        *name_last = last;
        best = k;
        if (!js) return k;
    }
    return best;
}

/* Are the tokens after the parameter list (from k) what may stand before a body? */
static int suffix_ok(const header *h, int k) {
    if (k >= h->n) return 1;
    switch (h->src->lang) {
    case SM_LANG_C:
        for (int j = k; j < h->n; j++) {
            if (tk_ident(h, j)) continue;
            if (tk_ch(h, j, '(') || tk_ch(h, j, '[')) { j = group_end(h, j); if (j < 0) return 0; continue; }
            return 0;
        }
        return 1;
    case SM_LANG_CPP:
        for (int j = k; j < h->n; j++) {
            if (tk_is(h, j, "->") || tk_ch(h, j, ':') || tk_is(h, j, "requires")) return 1;
            if (tk_ident(h, j) || tk_ch(h, j, '&') || tk_is(h, j, "&&")) continue;
            if (tk_ch(h, j, '(') || tk_ch(h, j, '[')) { j = group_end(h, j); if (j < 0) return 0; continue; }
            return 0;
        }
        return 1;
    case SM_LANG_JAVA: return tk_is(h, k, "throws");
    case SM_LANG_TYPESCRIPT: return tk_ch(h, k, ':');
    case SM_LANG_PHP: return tk_ch(h, k, ':') || tk_is(h, k, "use");
    default: return 0;
    }
}

/* An arrow function whose body opens here: `const name = (a) => {`, `name: async x => {`. */
static void analyze_arrow(const header *h, block *b, const scope *sc) {
    int k = h->n - 1, eq = -1, colon = -1;
    for (int j = k - 1; j >= 0; j--) {
        if (tk_ch(h, j, ')') || tk_ch(h, j, ']') || tk_ch(h, j, '>')) {
            int g = group_start(h, j);
            if (g < 0) return;
            j = g;
            continue;
        }
        if (tk_ch(h, j, '=')) { eq = j; break; }
        if (tk_ch(h, j, ',') || tk_ch(h, j, '(')) break;
    }
    int nk = -1;
    if (eq > 0) {
        nk = eq - 1;
        for (int j = 0; j < eq; j++) /* `const name: Type = ...` */
            if ((tk_is(h, j, "const") || tk_is(h, j, "let") || tk_is(h, j, "var")) && tk_ident(h, j + 1) &&
                (j + 2 == eq || tk_ch(h, j + 2, ':')))
                nk = j + 1;
    } else { /* an object property: `key: (x) => {`, after the last ',' that separates properties */
        int from = 0;
        for (int j = 0; j < k; j++) {
            if (tk_ch(h, j, '(') || tk_ch(h, j, '[')) {
                int g = group_end(h, j);
                if (g < 0) break;
                j = g;
            } else if (tk_ch(h, j, ',')) {
                from = j + 1;
            }
        }
        for (int j = from; j < k; j++) {
            if (tk_ch(h, j, '(') || tk_ch(h, j, '<')) break;
            if (tk_ch(h, j, ':') && tk_ident(h, j - 1)) { colon = j; break; }
        }
        if (colon < 0) return;
        nk = colon - 1;
    }
    if (!tk_ident(h, nk) || tk_in(h, nk, not_names)) return;
    int start = nk;
    while (tk_ch(h, start - 1, '.') && tk_ident(h, start - 2)) start -= 2;
    static const char *const decl[] = {"const", "let", "var", "export", "default", "static", "readonly",
                                       "public", "private", "protected", "declare", "async", NULL};
    while (tk_in(h, start - 1, decl)) start--;
    define(b, h, B_FUNC, sc->inner == B_CLASS || sc->inner == B_CONTAINER ? SM_CUT_METHOD : SM_CUT_FUNCTION, start, nk, nk);
}

static void analyze_class(const header *h, block *b, const scope *sc, int ck) {
    sm_lang lang = h->src->lang;
    if (lang == SM_LANG_CPP && (tk_is(h, ck - 1, "enum") || tk_is(h, ck, "union") || !sc->only_types)) return;
    for (int j = 0; j < h->n; j++) /* `x = class {`: an expression; its body still holds methods */
        if (tk_ch(h, j, '=')) {
            if (lang != SM_LANG_CPP) b->kind = B_CONTAINER;
            return;
        }
    int nk = -1;
    if (lang == SM_LANG_CPP) {
        for (int j = ck + 1; j < h->n;) {
            if (tk_ident(h, j)) { if (!tk_is(h, j, "final")) nk = j; j++; }
            else if (tk_is(h, j, "::")) j++;
            else if (tk_ch(h, j, '[') || tk_ch(h, j, '(') || tk_ch(h, j, '<')) {
                int e = group_end(h, j);
                if (e < 0) break;
                j = e + 1;
            } else break;
        }
    } else if (tk_ident(h, ck + 1) && !tk_is(h, ck + 1, "extends") && !tk_is(h, ck + 1, "implements")) {
        nk = ck + 1;
    }
    int reported = !(tk_is(h, ck, "interface") || tk_is(h, ck, "union"));
    if (nk < 0 || !reported) { b->kind = B_CONTAINER; return; }
    int start = ck;
    for (;;) {
        if (tk_in(h, start - 1, class_modifiers) || tk_ch(h, start - 1, '@')) { start--; continue; }
        if (tk_ch(h, start - 1, '>') && lang == SM_LANG_CPP) {
            int g = group_start(h, start - 1);
            if (g > 0 && tk_is(h, g - 1, "template")) { start = g - 1; continue; }
            break;
        }
        int d = decoration_before(h, start - 1);
        if (d >= 0) { start = d; continue; }
        break;
    }
    define(b, h, B_CLASS, SM_CUT_CLASS, start, nk, nk);
}

static void analyze_c_family(const header *h, block *b, const scope *sc) {
    sm_lang lang = h->src->lang;
    int js = lang == SM_LANG_JAVASCRIPT || lang == SM_LANG_TYPESCRIPT;
    int n = h->n;
    if (!n) return;
    /* namespace-like blocks */
    if (((lang == SM_LANG_CPP || lang == SM_LANG_PHP || lang == SM_LANG_TYPESCRIPT) && tk_is(h, 0, "namespace")) ||
        ((lang == SM_LANG_CPP || lang == SM_LANG_C) && tk_is(h, 0, "extern") && n == 2 && tk_ptr(h, 1)[0] == '"') ||
        (lang == SM_LANG_TYPESCRIPT && (tk_is(h, 0, "module") || (tk_is(h, 0, "declare") && (tk_is(h, 1, "module") || tk_is(h, 1, "global") || tk_is(h, 1, "namespace")))))) {
        b->kind = B_NS;
        return;
    }
    if (js && tk_is(h, n - 1, "=>")) { analyze_arrow(h, b, sc); return; }

    int nk = -1, name_first = -1, name_last = -1;
    int pk = find_params(h, &nk, &name_first, &name_last);
    /* a class keyword before the parameter list (or with none) makes a class */
    int ck = -1;
    if (lang != SM_LANG_C) {
        static const char *const class_words[] = {"class", "struct", "union", "interface", "trait", "enum", "record", NULL};
        for (int k = 0; k < (pk >= 0 ? pk : n); k++) {
            int e = skip_decoration(h, k);
            if (e > k) { k = e - 1; continue; }
            if (tk_is(h, k, "template") && tk_ch(h, k + 1, '<')) { int g = group_end(h, k + 1); if (g < 0) break; k = g; continue; }
            if (tk_in(h, k, class_words) && !tk_ch(h, k - 1, '.')) { ck = k; break; }
        }
    }
    /* ... except in C++, where a parameter list wins: `struct node *find(int key) {` */
    if (ck >= 0 && (pk < 0 || lang != SM_LANG_CPP)) { analyze_class(h, b, sc, ck); return; }
    if (pk < 0) {
        /* a Java record's compact constructor: `public Name {` */
        static const char *const java_modifiers[] = {"public", "protected", "private", NULL};
        int k = 0;
        for (;;) {
            int e = skip_decoration(h, k);
            if (e > k) k = e;
            else if (tk_in(h, k, java_modifiers)) k++;
            else break;
        }
        if (lang == SM_LANG_JAVA && sc->inner == B_CLASS && k == n - 1 && tk_ident(h, k))
            define(b, h, B_FUNC, SM_CUT_METHOD, 0, k, k);
        return;
    }
    int rk = group_end(h, pk);
    if (rk < 0) return;
    if ((lang == SM_LANG_C || lang == SM_LANG_CPP) && tk_ident(h, pk + 1)) {
        /* names wrapped by macros: `__NTH (name (params))`, `TRANS(name)(params)` */
        if (tk_ch(h, pk + 2, '(') && group_end(h, pk + 2) == rk - 1) name_first = name_last = pk + 1;
        else if (rk == pk + 2 && tk_ch(h, rk + 1, '(')) { name_first = name_last = pk + 1; rk = group_end(h, rk + 1); if (rk < 0) return; }
    }
    if (!suffix_ok(h, rk + 1)) return;

    int in_type = sc->inner == B_CLASS || sc->inner == B_CONTAINER;
    if (js && tk_is(h, nk, "function")) { /* anonymous: `name = function (...) {`, `name: function (...) {` */
        int j = nk - 1;
        if (tk_is(h, j, "async")) j--;
        if (!(tk_ch(h, j, '=') || tk_ch(h, j, ':')) || !tk_ident(h, j - 1) || tk_in(h, j - 1, not_names)) return;
        int name = j - 1, start = name;
        while (tk_ch(h, start - 1, '.') && tk_ident(h, start - 2)) start -= 2;
        static const char *const decl[] = {"const", "let", "var", "export", "default", "static", NULL};
        while (tk_in(h, start - 1, decl)) start--;
        define(b, h, B_FUNC, in_type ? SM_CUT_METHOD : SM_CUT_FUNCTION, start, name, name);
        return;
    }
    if (tk_in(h, nk, not_names) && !tk_is(h, nk, "new") && !(js && in_type)) return;

    int start, n_type = 0, qualified = 0, has_new = 0, has_function = 0;
    int j = nk - 1;
    if (lang == SM_LANG_CPP && tk_ch(h, j, '~')) { name_first = j; j--; }
    if (lang == SM_LANG_CPP) {
        while (tk_is(h, j, "::")) {
            qualified = 1;
            j--;
            if (tk_ch(h, j, '>')) j = group_start(h, j) - 1;
            if (tk_ident(h, j)) j--;
            else break;
        }
    }
    if (js || lang == SM_LANG_PHP) {
        static const char *const php_modifiers[] = {"function", "public", "private", "protected", "static", "final", "abstract", NULL};
        for (;;) {
            if (tk_in(h, j, js ? js_modifiers : php_modifiers) || tk_ch(h, j, '*') || tk_ch(h, j, '&')) {
                has_function |= tk_is(h, j, "function");
                j--;
                continue;
            }
            int d = decoration_before(h, j);
            if (d >= 0) { j = d - 1; continue; }
            break;
        }
        if (lang == SM_LANG_PHP && !has_function) return;
        /* without the function keyword it is a method: only in a class body or an object literal */
        if (js && !has_function && (sc->inner == B_NS || sc->inner == B_FUNC)) return;
        start = j + 1;
    } else { /* C, C++, Java: modifiers and the return type */
        for (;;) {
            int d = decoration_before(h, j);
            if (d >= 0) { j = d - 1; continue; }
            if (tk_ident(h, j)) {
                if (tk_in(h, j, c_statement_words)) return;
                if (tk_is(h, j, "new")) has_new = 1;
                else n_type++;
                j--;
                continue;
            }
            if (tk_ch(h, j, ')') && lang != SM_LANG_JAVA) { /* a macro with arguments: `ATTR(2, 3) int name(` */
                int g = group_start(h, j);
                if (g > 0 && tk_ident(h, g - 1)) { j = g - 2; continue; }
                break;
            }
            if (tk_ch(h, j, '*') || tk_ch(h, j, '&') || tk_is(h, j, "&&") || tk_is(h, j, "::") ||
                (lang == SM_LANG_JAVA && (tk_ch(h, j, '.') || tk_ch(h, j, '?')))) { j--; continue; }
            if (tk_ch(h, j, '>') || (tk_ch(h, j, ']') && lang == SM_LANG_JAVA)) {
                int g = group_start(h, j);
                if (g < 0) break;
                if (tk_is(h, g - 1, "template")) g--;
                j = g - 1;
                n_type++;
                continue;
            }
            break;
        }
        start = j + 1;
        if (lang == SM_LANG_JAVA && has_new) { b->kind = B_CONTAINER; return; }
        if (lang == SM_LANG_C && (!sc->only_ns || n_type < 1)) return;
        if (lang == SM_LANG_CPP && (!sc->only_types || (n_type < 1 && !qualified && !tk_ch(h, nk - 1, '~') && !in_type))) return;
        if (lang == SM_LANG_JAVA && !in_type) return;
    }
    sm_cut_kind kind = in_type || (lang == SM_LANG_CPP && qualified) ? SM_CUT_METHOD : SM_CUT_FUNCTION;
    define(b, h, B_FUNC, kind, start, name_first, name_last);
}

/* ---- Go, Rust, Perl, shell ---- */

static void analyze_go(const header *h, block *b) {
    if (!tk_is(h, 0, "func")) return;
    int k = 1;
    sm_cut_kind kind = SM_CUT_FUNCTION;
    if (tk_ch(h, 1, '(')) {
        k = group_end(h, 1) + 1;
        if (k <= 0) return;
        kind = SM_CUT_METHOD;
    }
    if (!tk_ident(h, k) || !(tk_ch(h, k + 1, '(') || tk_ch(h, k + 1, '['))) return;
    define(b, h, B_FUNC, kind, 0, k, k);
}

static void analyze_rust(const header *h, block *b, const scope *sc) {
    static const char *const modifiers[] = {"pub", "const", "async", "unsafe", "extern", "default", NULL};
    int k = 0;
    for (;;) {
        int e = skip_decoration(h, k);
        if (e > k) { k = e; continue; }
        if (tk_in(h, k, modifiers) || (k < h->n && tk_ptr(h, k)[0] == '"')) { k++; continue; }
        if (tk_ch(h, k, '(') && tk_is(h, k - 1, "pub")) { int g = group_end(h, k); if (g < 0) return; k = g + 1; continue; }
        break;
    }
    if (tk_is(h, k, "fn") && tk_ident(h, k + 1)) {
        int start = k;
        while (start > 0) {
            int d = decoration_before(h, start - 1);
            if (d >= 0) { start = d; continue; }
            if (tk_in(h, start - 1, modifiers) || tk_ptr(h, start - 1)[0] == '"') { start--; continue; }
            if (tk_ch(h, start - 1, ')')) { int g = group_start(h, start - 1); if (g > 0 && tk_is(h, g - 1, "pub")) { start = g - 1; continue; } }
            break;
        }
        define(b, h, B_FUNC, sc->inner == B_CLASS || sc->inner == B_CONTAINER ? SM_CUT_METHOD : SM_CUT_FUNCTION, start, k + 1, k + 1);
        return;
    }
    if (tk_is(h, k, "mod")) { b->kind = B_NS; return; }
    if (tk_is(h, k, "trait") && tk_ident(h, k + 1)) { define(b, h, B_CLASS, SM_CUT_CLASS, 0, k + 1, k + 1); return; }
    if (!tk_is(h, k, "impl")) return;
    int j = k + 1, nk = -1;
    if (tk_ch(h, j, '<')) j = group_end(h, j) + 1;
    if (j <= 0) return;
    for (int f = j; f < h->n; f++) {
        if (tk_ch(h, f, '<')) { f = group_end(h, f); if (f < 0) break; continue; }
        if (tk_is(h, f, "for")) { j = f + 1; break; }
        if (tk_is(h, f, "where")) break;
    }
    for (; j < h->n && (tk_ident(h, j) || tk_is(h, j, "::") || tk_ch(h, j, '&')); j++)
        if (tk_ident(h, j) && !tk_is(h, j, "dyn") && !tk_is(h, j, "mut")) nk = j;
    if (nk < 0) { b->kind = B_CONTAINER; return; }
    define(b, h, B_CLASS, SM_CUT_CLASS, 0, nk, nk);
}

static void analyze_perl(const header *h, block *b) {
    if (tk_is(h, 0, "package")) { b->kind = B_NS; return; }
    for (int k = 0; k + 1 < h->n; k++) {
        if (!tk_is(h, k, "sub") || !tk_ident(h, k + 1)) continue;
        int nk = k + 1;
        while (tk_is(h, nk + 1, "::") && tk_ident(h, nk + 2)) nk += 2;
        int start = k;
        if (tk_is(h, k - 1, "my") || tk_is(h, k - 1, "our")) start--;
        define(b, h, B_FUNC, SM_CUT_FUNCTION, start, nk, nk);
        return;
    }
}

static void analyze_shell(const header *h, block *b) {
    int k = tk_is(h, 0, "function") ? 1 : 0;
    if (!tk_ident(h, k)) return;
    int end = k + 1;
    if (tk_ch(h, end, '(') && tk_ch(h, end + 1, ')')) end += 2;
    else if (!k) return;
    if (end != h->n) return;
    define(b, h, B_FUNC, SM_CUT_FUNCTION, 0, k, k);
}

/* ---- the pass ---- */

/* The first byte of the header of the '{' at p. */
static size_t header_start(const cut_src *src, size_t p) {
    int newline_ends = src->lang == SM_LANG_GO || src->lang == SM_LANG_SHELL;
    size_t j = p, limit = p > MAX_HEADER ? p - MAX_HEADER : 0;
    int depth = 0;
    while (j > limit) {
        char c = src->v[j - 1];
        if (c == ')' || c == ']') depth++;
        else if (c == '(' || c == '[') { if (depth == 0) break; depth--; }
        else if (depth == 0 && (c == ';' || c == '{' || c == '}')) break;
        else if (depth == 0 && newline_ends && c == '\n') break;
        j--;
    }
    return j;
}

static void analyze(const header *h, block *b, const scope *sc) {
    switch (h->src->lang) {
    case SM_LANG_GO: analyze_go(h, b); break;
    case SM_LANG_RUST: analyze_rust(h, b, sc); break;
    case SM_LANG_PERL: analyze_perl(h, b); break;
    case SM_LANG_SHELL: analyze_shell(h, b); break;
    default: analyze_c_family(h, b, sc); break;
    }
}

int cut_braces(sm_cut_list *out, const cut_src *src) {
    static const block other = {0};
    block stack[MAX_DEPTH];
    header h = {.src = src};
    int depth = 0;
    for (size_t i = 0; i < src->n; i++) {
        char c = src->v[i];
        if (c == '{') {
            if (depth < MAX_DEPTH) {
                scope sc = {.inner = depth ? stack[depth - 1].kind : B_NS, .only_ns = 1, .only_types = 1};
                for (int d = 0; d < depth; d++) {
                    if (stack[d].kind != B_NS) sc.only_ns = 0;
                    if (stack[d].kind == B_FUNC || stack[d].kind == B_OTHER) sc.only_types = 0;
                }
                stack[depth] = other;
                tokenize(&h, header_start(src, i), i);
                analyze(&h, &stack[depth], &sc);
            }
            depth++;
        } else if (c == '}' && depth > 0) {
            depth--;
            if (depth >= MAX_DEPTH) continue;
            const block *b = &stack[depth];
            if (b->kind != B_FUNC && b->kind != B_CLASS) continue;
            int rc = cut_push(out, cut_line_of(src, b->start), cut_line_of(src, i), b->cut_kind, b->name, b->name_len);
            if (rc) return rc;
        }
    }
    return 0;
}
