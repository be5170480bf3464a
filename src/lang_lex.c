/* lang_lex.c: the code-view lexer (see lang_lex.h). One scanner per kind of literal; lex_code
 * walks code and hands each literal or comment to its scanner, which hides it in the view and
 * returns where it ends. Interpolations that hold code (JS ${}, Ruby #{}, shell $()) are lexed
 * recursively so that the quotes inside them are understood, then hidden with the literal. */
#include "lang_lex.h"

#include <string.h>

enum { MAX_HEREDOCS = 8, MAX_NEST = 32, MAX_DELIM = 64 };

typedef struct heredoc {
    char id[MAX_DELIM];
    size_t id_len;
    int indented; /* the terminator may be indented (<<-, <<~, PHP) */
    int php;      /* PHP: code may follow the terminator on its line */
} heredoc;

typedef struct lexer {
    const char *s;
    char *v;
    size_t n;
    sm_lang lang;
    heredoc pending[MAX_HEREDOCS]; /* heredocs opened on the current line */
    int n_pending;
    int nest;     /* depth of interpolations being lexed */
    int php_exit; /* a "?>" closed the PHP code */
} lexer;

static size_t lex_code(lexer *L, size_t i, char close);

static int is_ident_start(unsigned char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static int is_ident_char(unsigned char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static void hide_comment(lexer *L, size_t a, size_t b) {
    for (size_t i = a; i < b && i < L->n; i++)
        if (L->s[i] != '\n') L->v[i] = ' ';
}

static void hide_string(lexer *L, size_t a, size_t b) {
    for (size_t i = a; i < b && i < L->n; i++)
        if (L->s[i] != '\n') L->v[i] = SM_VIEW_STR;
    if (a < b && a < L->n && L->s[a] != '\n') L->v[a] = '"';
}

/* Hides the rest of a literal that began earlier (a heredoc's body): no '"' marker, so that its
 * lines read as starting inside a string. */
static void hide_string_rest(lexer *L, size_t a, size_t b) {
    for (size_t i = a; i < b && i < L->n; i++)
        if (L->s[i] != '\n') L->v[i] = SM_VIEW_STR;
}

static size_t line_end(const lexer *L, size_t i) {
    const char *nl = memchr(L->s + i, '\n', L->n - i);
    return nl ? (size_t)(nl - L->s) : L->n;
}

static int starts_with(const lexer *L, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= L->n && !memcmp(L->s + i, lit, k);
}

/* A quoted literal from the quote at i; backslash escapes the next byte. A single-line literal
 * that meets a newline ends there (unterminated: the rest of the line is hidden). Returns the
 * end (one past the closing quote). */
static size_t scan_quoted(const lexer *L, size_t i, char quote, int multiline, int escapes) {
    size_t j = i + 1;
    while (j < L->n) {
        char c = L->s[j];
        if (c == '\\' && escapes) { j += 2; continue; }
        if (c == quote) return j + 1;
        if (c == '\n' && !multiline) return j;
        j++;
    }
    return L->n;
}

/* A literal between open and close (nesting when they differ), from j just after open. */
static size_t scan_delimited(const lexer *L, size_t j, char open, char close) {
    int depth = 1;
    while (j < L->n) {
        char c = L->s[j];
        if (c == '\\') { j += 2; continue; }
        if (c == close && (open == close || --depth == 0)) return j + 1;
        if (c == open && open != close) depth++;
        j++;
    }
    return L->n;
}

static char closing_of(char open) {
    switch (open) {
    case '(': return ')';
    case '[': return ']';
    case '{': return '}';
    case '<': return '>';
    default: return open;
    }
}

/* Is the last significant thing before i a value (so that '/' divides and '%' is modulo)? */
static int prev_is_value(const lexer *L, size_t i) {
    size_t j = i;
    while (j > 0) {
        char c = L->v[j - 1];
        if (c == ' ' || c == '\t' || c == '\r') { j--; continue; }
        if (c == '\n') {
            if (L->lang == SM_LANG_RUBY || L->lang == SM_LANG_PERL) return 0;
            j--;
            continue;
        }
        break;
    }
    if (j == 0) return 0;
    char c = L->v[j - 1];
    if (c == SM_VIEW_STR || c == '"' || c == ')' || c == ']') return 1;
    if (!is_ident_char((unsigned char)c)) return 0;
    size_t e = j;
    while (j > 0 && is_ident_char((unsigned char)L->v[j - 1])) j--;
    /* words after which an operand, not an operator, comes */
    static const char *const keywords[] = {
        "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case",
        "do", "else", "yield", "await", "and", "or", "not", "if", "unless", "while", "until",
        "when", "elsif", "split", "grep", "map", "join", "push", "unshift", NULL};
    for (int k = 0; keywords[k]; k++)
        if (strlen(keywords[k]) == e - j && !memcmp(L->v + j, keywords[k], e - j)) return 0;
    return 1;
}

/* A regex literal from '/' at i, or i itself when it does not end on this line. */
static size_t scan_regex(const lexer *L, size_t i) {
    size_t j = i + 1;
    int in_class = 0;
    while (j < L->n && L->s[j] != '\n') {
        char c = L->s[j];
        if (c == '\\') { j += 2; continue; }
        if (c == '[') in_class = 1;
        else if (c == ']') in_class = 0;
        else if (c == '/' && !in_class) {
            j++;
            while (j < L->n && is_ident_char((unsigned char)L->s[j])) j++;
            return j;
        }
        j++;
    }
    return i;
}

/* A string whose ${...} / #{...} / $(...) parts hold code: from the quote at i to the closing
 * quote. interp is the byte that starts an interpolation ('$' or '#'), 0 for none. */
static size_t scan_interpolated(lexer *L, size_t i, char quote, char interp, char interp_open, char interp_close) {
    size_t j = i + 1;
    while (j < L->n) {
        char c = L->s[j];
        if (c == '\\') { j += 2; continue; }
        if (c == quote) return j + 1;
        if (interp && c == interp && j + 1 < L->n && L->s[j + 1] == interp_open && L->nest < MAX_NEST) {
            L->nest++;
            j = lex_code(L, j + 2, interp_close);
            L->nest--;
            continue;
        }
        if (L->lang == SM_LANG_SHELL && c == '`') { j = scan_quoted(L, j, '`', 1, 1); continue; }
        j++;
    }
    return L->n;
}

/* Registers a heredoc opened at i (the first '<'); returns the end of the opener, or i when
 * what is there is not a heredoc. */
static size_t heredoc_open(lexer *L, size_t i) {
    size_t j = i + 2;
    heredoc h = {0};
    if (L->lang == SM_LANG_PHP) {
        if (j >= L->n || L->s[j] != '<') return i;
        j++;
        while (j < L->n && is_blank(L->s[j])) j++;
        h.php = h.indented = 1;
    } else {
        if (j < L->n && L->s[j] == '<') return i; /* <<< here-string */
        if (j < L->n && (L->s[j] == '-' || L->s[j] == '~') && L->lang != SM_LANG_PERL) { h.indented = 1; j++; }
        else if (j < L->n && L->s[j] == '~' && L->lang == SM_LANG_PERL) { h.indented = 1; j++; }
        if (L->lang == SM_LANG_SHELL) {
            while (j < L->n && is_blank(L->s[j])) j++;
            if (j < L->n && L->s[j] == '\\') j++;
        }
    }
    if (j >= L->n) return i;
    char q = L->s[j];
    size_t a, b;
    if (q == '\'' || q == '"' || (q == '`' && L->lang != SM_LANG_PHP)) {
        a = j + 1;
        b = a;
        while (b < L->n && L->s[b] != q && L->s[b] != '\n') b++;
        if (b >= L->n || L->s[b] != q) return i;
        j = b + 1;
    } else {
        if (!is_ident_start((unsigned char)q)) return i;
        /* Ruby: a bare <<name is a shift unless it reads like a heredoc (upper case or <<~ / <<-) */
        if (L->lang == SM_LANG_RUBY && !h.indented && !(q >= 'A' && q <= 'Z')) return i;
        a = j;
        while (j < L->n && is_ident_char((unsigned char)L->s[j])) j++;
        b = j;
    }
    if (b == a || b - a >= MAX_DELIM) return i;
    memcpy(h.id, L->s + a, b - a);
    h.id_len = b - a;
    if (L->n_pending < MAX_HEREDOCS) L->pending[L->n_pending++] = h;
    hide_string(L, i, j);
    return j;
}

/* The bodies of the heredocs opened on the line that ends at i (a newline); returns where
 * lexing goes on. */
static size_t heredoc_bodies(lexer *L, size_t i) {
    size_t j = i + 1;
    for (int k = 0; k < L->n_pending; k++) {
        const heredoc *h = &L->pending[k];
        size_t body = j;
        for (;;) {
            if (j >= L->n) { hide_string_rest(L, body, L->n); L->n_pending = 0; return L->n; }
            size_t e = line_end(L, j), t = j;
            if (h->indented) while (t < e && is_blank(L->s[t])) t++;
            int hit = t + h->id_len <= e && !memcmp(L->s + t, h->id, h->id_len);
            if (hit) {
                size_t after = t + h->id_len;
                if (h->php) hit = after >= e || !is_ident_char((unsigned char)L->s[after]);
                else {
                    while (after < e && is_blank(L->s[after])) after++;
                    hit = after == e;
                }
            }
            if (hit) {
                hide_string_rest(L, body, t + h->id_len);
                if (h->php) { L->n_pending = 0; return t + h->id_len; }
                j = e; /* the terminator line's newline */
                break;
            }
            j = e + 1;
        }
        if (k + 1 < L->n_pending) j++;
    }
    L->n_pending = 0;
    return j;
}

/* Is the preprocessor directive word at d (before e) word? */
static int directive_is(const lexer *L, size_t d, size_t e, const char *word) {
    size_t k = strlen(word);
    return d + k <= e && !memcmp(L->s + d, word, k) && (d + k == e || !is_ident_char((unsigned char)L->s[d + k]));
}

/* Is the condition after "#if" at d (before e) just 0? */
static int if_zero(const lexer *L, size_t d, size_t e) {
    while (d < e && is_blank(L->s[d])) d++;
    if (d >= e || L->s[d] != '0') return 0;
    d++;
    while (d < e && is_blank(L->s[d])) d++;
    return d == e || L->s[d] == '/';
}

/* The start of the line of the #endif (or, when stop_at_else, the #else / #elif) that ends
 * the conditional branch whose directive line ends at e; the end of the text when none does. */
static size_t matching_directive(const lexer *L, size_t e, int stop_at_else) {
    int depth = 0;
    for (size_t j = e + 1; j < L->n; j = line_end(L, j) + 1) {
        size_t d = j, end = line_end(L, j);
        while (d < end && is_blank(L->s[d])) d++;
        if (d >= end || L->s[d] != '#') continue;
        d++;
        while (d < end && is_blank(L->s[d])) d++;
        if (directive_is(L, d, end, "if") || directive_is(L, d, end, "ifdef") || directive_is(L, d, end, "ifndef")) depth++;
        else if (directive_is(L, d, end, "endif")) { if (depth-- == 0) return j; }
        else if (depth == 0 && stop_at_else && (directive_is(L, d, end, "else") || directive_is(L, d, end, "elif"))) return j;
    }
    return L->n;
}

/* Constructs that only start at the beginning of a line: C preprocessor lines, Perl POD, Ruby
 * =begin blocks, __END__. i is the line's first byte; returns where lexing goes on. */
static size_t line_start(lexer *L, size_t i) {
    if (i >= L->n) return i;
    switch (L->lang) {
    case SM_LANG_C:
    case SM_LANG_CPP: {
        size_t j = i;
        while (j < L->n && is_blank(L->s[j])) j++;
        if (j >= L->n || L->s[j] != '#') return i;
        size_t e = line_end(L, j);
        while (e < L->n && e > j && (L->s[e - 1] == '\\' || (L->s[e - 1] == '\r' && e >= 2 && L->s[e - 2] == '\\')))
            e = line_end(L, e + 1);
        size_t d = j + 1;
        while (d < e && is_blank(L->s[d])) d++;
        int is_else = directive_is(L, d, e, "else") || directive_is(L, d, e, "elif");
        int is_if0 = directive_is(L, d, e, "if") && if_zero(L, d + 2, e);
        if (!is_else && !is_if0) { hide_comment(L, i, e); return e; }
        /* Only one branch of a conditional is read, so that braces are not doubled: the
         * first one, or the #else of an "#if 0". */
        size_t k = matching_directive(L, e, is_if0);
        hide_comment(L, i, k);
        if (k >= L->n) return L->n;
        size_t kd = k;
        while (kd < L->n && (is_blank(L->s[kd]) || L->s[kd] == '#')) kd++;
        if (is_if0 && !directive_is(L, kd, line_end(L, k), "endif")) { /* read the #else branch */
            size_t ke = line_end(L, k);
            hide_comment(L, k, ke);
            return ke;
        }
        return line_start(L, k);
    }
    case SM_LANG_PERL:
    case SM_LANG_RUBY: {
        if (starts_with(L, i, "__END__") || (L->lang == SM_LANG_PERL && starts_with(L, i, "__DATA__"))) {
            hide_comment(L, i, L->n);
            return L->n;
        }
        int pod = L->lang == SM_LANG_PERL ? L->s[i] == '=' && i + 1 < L->n && is_ident_start((unsigned char)L->s[i + 1])
                                          : starts_with(L, i, "=begin");
        if (!pod) return i;
        const char *end_mark = L->lang == SM_LANG_PERL ? "=cut" : "=end";
        size_t j = i;
        for (;;) {
            size_t e = line_end(L, j);
            if (j != i && starts_with(L, j, end_mark)) { hide_comment(L, i, e); return e; }
            if (e >= L->n) { hide_comment(L, i, L->n); return L->n; }
            j = e + 1;
        }
    }
    default:
        return i;
    }
}

static size_t newline(lexer *L, size_t i) {
    size_t j = L->n_pending ? heredoc_bodies(L, i) : i + 1;
    if (j > i + 1 && j < L->n && L->s[j] == '\n') return j; /* a terminator line: its newline comes next */
    if (j > 0 && j <= L->n && L->s[j - 1] == '\n') return line_start(L, j);
    return j;
}

/* A Lua long bracket from the '[' at i ("[[", "[==["): returns its end, or 0 when there is none. */
static size_t scan_long_bracket(const lexer *L, size_t i) {
    size_t q = i + 1, level = 0;
    while (q < L->n && L->s[q] == '=') { q++; level++; }
    if (q >= L->n || L->s[q] != '[') return 0;
    for (size_t e = q + 1; e < L->n; e++) {
        if (L->s[e] != ']') continue;
        size_t k = 0;
        while (k < level && e + 1 + k < L->n && L->s[e + 1 + k] == '=') k++;
        if (k == level && e + 1 + k < L->n && L->s[e + 1 + k] == ']') return e + 2 + k;
    }
    return L->n;
}

/* Identifier-led literals: string prefixes (Python rb"", C++ R"()", Rust r#""#) and Perl's
 * quote-like operators. i starts an identifier that ends at k; returns the literal's end, or k. */
static size_t ident_literal(lexer *L, size_t i, size_t k) {
    const char *w = L->s + i;
    size_t len = k - i;
    char next = k < L->n ? L->s[k] : 0;
    switch (L->lang) {
    case SM_LANG_PYTHON:
        if ((next == '"' || next == '\'') && len <= 2 && strspn(w, "rRbBuUfF") >= len) {
            size_t q = k;
            size_t e = (q + 2 < L->n && L->s[q + 1] == next && L->s[q + 2] == next)
                           ? 0 : scan_quoted(L, q, next, 0, 1);
            if (!e) { /* triple-quoted */
                e = q + 3;
                while (e < L->n && !(L->s[e] == next && e + 2 < L->n && L->s[e + 1] == next && L->s[e + 2] == next))
                    e += L->s[e] == '\\' ? 2 : 1;
                e = e < L->n ? e + 3 : L->n;
            }
            hide_string(L, i, e);
            return e;
        }
        return k;
    case SM_LANG_CPP:
        if (next == '"' && len <= 3 && w[len - 1] == 'R' &&
            (len == 1 || (len == 2 && strchr("uUL", w[0])) || (len == 3 && w[0] == 'u' && w[1] == '8'))) {
            size_t d = k + 1, p = d;
            while (p < L->n && p - d < 16 && L->s[p] != '(' && L->s[p] != '\n') p++;
            if (p >= L->n || L->s[p] != '(') return k;
            char close[20];
            size_t dl = p - d;
            close[0] = ')';
            memcpy(close + 1, L->s + d, dl);
            close[dl + 1] = '"';
            const char *end = memmem(L->s + p, L->n - p, close, dl + 2);
            size_t e = end ? (size_t)(end - L->s) + dl + 2 : L->n;
            hide_string(L, i, e);
            return e;
        }
        return k;
    case SM_LANG_RUST:
        if ((len == 1 && w[0] == 'r') || (len == 2 && (w[0] == 'b' || w[0] == 'c') && w[1] == 'r')) {
            size_t p = k;
            while (p < L->n && L->s[p] == '#') p++;
            if (p >= L->n || L->s[p] != '"') return k;
            size_t hashes = p - k, e = p + 1;
            for (; e < L->n; e++) {
                if (L->s[e] != '"') continue;
                size_t h = 0;
                while (h < hashes && e + 1 + h < L->n && L->s[e + 1 + h] == '#') h++;
                if (h == hashes) { e += 1 + hashes; break; }
            }
            hide_string(L, i, e < L->n ? e : L->n);
            return e < L->n ? e : L->n;
        }
        return k;
    case SM_LANG_PERL: {
        static const char *const ops[] = {"q", "qq", "qw", "qr", "m", "s", "tr", "y", NULL};
        int op = -1;
        for (int o = 0; ops[o]; o++)
            if (strlen(ops[o]) == len && !memcmp(w, ops[o], len)) op = o;
        if (op < 0) return k;
        if (i > 0 && strchr("$@%&*", L->s[i - 1])) return k;
        if (i > 1 && ((L->s[i - 2] == '-' && L->s[i - 1] == '>') || (L->s[i - 2] == ':' && L->s[i - 1] == ':'))) return k;
        size_t p = k;
        while (p < L->n && is_blank(L->s[p])) p++;
        if (p >= L->n) return k;
        char open = L->s[p];
        if (p > k && !strchr("{([</|!", open)) return k;
        if (is_ident_char((unsigned char)open) || strchr(" \t\n,;)]}>=#", open)) return k;
        if (open == '=' || (open == '}' )) return k;
        char close = closing_of(open);
        size_t e = scan_delimited(L, p + 1, open, close);
        if (op == 5 || op == 6 || op == 7) { /* s, tr, y: a second part */
            if (open != close) {
                while (e < L->n && (is_blank(L->s[e]) || L->s[e] == '\n')) e++;
                if (e < L->n) e = scan_delimited(L, e + 1, L->s[e], closing_of(L->s[e]));
            } else {
                e = scan_delimited(L, e, open, close);
            }
        }
        while (e < L->n && is_ident_char((unsigned char)L->s[e])) e++;
        hide_string(L, i, e);
        return e;
    }
    default:
        return k;
    }
}

/* A literal or comment that starts at i: hides it and returns its end, or returns i. */
static size_t lex_token(lexer *L, size_t i) {
    const char *s = L->s;
    size_t n = L->n;
    unsigned char c = (unsigned char)s[i];
    char c1 = i + 1 < n ? s[i + 1] : 0;
    sm_lang lang = L->lang;
    int c_like = lang == SM_LANG_C || lang == SM_LANG_CPP || lang == SM_LANG_GO || lang == SM_LANG_JAVA ||
                 lang == SM_LANG_JAVASCRIPT || lang == SM_LANG_TYPESCRIPT || lang == SM_LANG_RUST ||
                 lang == SM_LANG_PHP;
    size_t e;

    if (is_ident_start(c) || (c == '$' && (lang == SM_LANG_JAVASCRIPT || lang == SM_LANG_TYPESCRIPT || lang == SM_LANG_PHP))) {
        if (i > 0 && is_ident_char((unsigned char)s[i - 1])) return i + 1;
        size_t k = i + 1;
        while (k < n && (is_ident_char((unsigned char)s[k]) || s[k] == '$')) k++;
        return ident_literal(L, i, k);
    }
    if (c >= '0' && c <= '9') {
        if (i > 0 && is_ident_char((unsigned char)s[i - 1])) return i + 1;
        size_t k = i + 1;
        while (k < n && (is_ident_char((unsigned char)s[k]) || s[k] == '.' ||
                         (s[k] == '\'' && lang == SM_LANG_CPP && k + 1 < n && is_ident_char((unsigned char)s[k + 1]))))
            k++;
        return k;
    }
    if (c_like && c == '/' && c1 == '/') {
        e = line_end(L, i);
        if (lang == SM_LANG_PHP) {
            const char *close = memmem(s + i, e - i, "?>", 2);
            if (close) e = (size_t)(close - s);
        }
        hide_comment(L, i, e);
        return e;
    }
    if (c_like && c == '/' && c1 == '*') {
        int depth = 1;
        e = i + 2;
        while (e < n && depth > 0) {
            if (s[e] == '*' && e + 1 < n && s[e + 1] == '/') { depth--; e += 2; }
            else if (lang == SM_LANG_RUST && s[e] == '/' && e + 1 < n && s[e + 1] == '*') { depth++; e += 2; }
            else e++;
        }
        hide_comment(L, i, e);
        return e;
    }
    switch (lang) {
    case SM_LANG_C:
    case SM_LANG_CPP:
    case SM_LANG_GO:
        if (c == '"' || c == '\'') e = scan_quoted(L, i, (char)c, 0, 1);
        else if (c == '`' && lang == SM_LANG_GO) e = scan_quoted(L, i, '`', 1, 0);
        else return i;
        break;
    case SM_LANG_JAVA:
        if (c == '"' && c1 == '"' && i + 2 < n && s[i + 2] == '"') {
            const char *end = memmem(s + i + 3, n - i - 3, "\"\"\"", 3);
            while (end && end[-1] == '\\') end = memmem(end + 1, n - (size_t)(end + 1 - s), "\"\"\"", 3);
            e = end ? (size_t)(end - s) + 3 : n;
        } else if (c == '"' || c == '\'') e = scan_quoted(L, i, (char)c, 0, 1);
        else return i;
        break;
    case SM_LANG_JAVASCRIPT:
    case SM_LANG_TYPESCRIPT:
        if (c == '"' || c == '\'') e = scan_quoted(L, i, (char)c, 0, 1);
        else if (c == '`') e = scan_interpolated(L, i, '`', '$', '{', '}');
        else if (c == '/' && !prev_is_value(L, i)) { e = scan_regex(L, i); if (e == i) return i; }
        else if (c == '#' && c1 == '!' && i == 0) { e = line_end(L, i); hide_comment(L, i, e); return e; }
        else return i;
        break;
    case SM_LANG_RUST:
        if (c == '"') e = scan_quoted(L, i, '"', 1, 1);
        else if (c == '\'') {
            if (c1 == '\\') e = scan_quoted(L, i, '\'', 0, 1);
            else {
                size_t len = 1;
                unsigned char u = (unsigned char)c1;
                if (u >= 0xf0) len = 4; else if (u >= 0xe0) len = 3; else if (u >= 0xc0) len = 2;
                if (i + 1 + len < n && s[i + 1 + len] == '\'' && c1 != '\n') e = i + 2 + len;
                else return i + 1; /* a lifetime or a loop label */
            }
        } else return i;
        break;
    case SM_LANG_PHP:
        if (c == '?' && c1 == '>') { L->php_exit = 1; return i + 2; }
        if (c == '#' && c1 != '[') { e = line_end(L, i); const char *close = memmem(s + i, e - i, "?>", 2); if (close) e = (size_t)(close - s); hide_comment(L, i, e); return e; }
        if (c == '\'' || c == '"' || c == '`') e = scan_quoted(L, i, (char)c, 1, 1);
        else if (c == '<' && c1 == '<') { e = heredoc_open(L, i); return e; }
        else return i;
        break;
    case SM_LANG_PYTHON:
        if (c == '#') { e = line_end(L, i); hide_comment(L, i, e); return e; }
        if (c == '"' || c == '\'') return ident_literal(L, i, i); /* no prefix */
        return i;
    case SM_LANG_LUA:
        if (c == '-' && c1 == '-') {
            e = (i + 2 < n && s[i + 2] == '[') ? scan_long_bracket(L, i + 2) : 0;
            if (!e) e = line_end(L, i);
            hide_comment(L, i, e);
            return e;
        }
        if (c == '"' || c == '\'') e = scan_quoted(L, i, (char)c, 0, 1);
        else if (c == '[' && (e = scan_long_bracket(L, i)) != 0) {}
        else return i;
        break;
    case SM_LANG_SHELL:
        if (c == '\\') return i + 2 <= n ? i + 2 : n;
        if (c == '#' && (i == 0 || strchr(" \t\n;&|()", s[i - 1]))) { e = line_end(L, i); hide_comment(L, i, e); return e; }
        if (c == '\'') e = scan_quoted(L, i, '\'', 1, 0);
        else if (c == '$' && c1 == '\'') e = scan_quoted(L, i + 1, '\'', 1, 1);
        else if (c == '"') e = scan_interpolated(L, i, '"', '$', '(', ')');
        else if (c == '`') e = scan_quoted(L, i, '`', 1, 1);
        else if (c == '<' && c1 == '<') return heredoc_open(L, i);
        else return i;
        break;
    case SM_LANG_PERL:
        if (c == '#' && !(i > 0 && s[i - 1] == '$')) { e = line_end(L, i); hide_comment(L, i, e); return e; }
        if (c == '$' && (c1 == '#' || c1 == '\'' || c1 == '"' || c1 == '`')) return i + 2;
        if (c == '\'' || c == '"' || c == '`') e = scan_quoted(L, i, (char)c, 1, 1);
        else if (c == '/' && !prev_is_value(L, i)) { e = scan_regex(L, i); if (e == i) return i; }
        else if (c == '<' && c1 == '<') return heredoc_open(L, i);
        else return i;
        break;
    case SM_LANG_RUBY:
        if (c == '#') { e = line_end(L, i); hide_comment(L, i, e); return e; }
        if (c == '\'') e = scan_quoted(L, i, '\'', 1, 1);
        else if (c == '"' || c == '`') e = scan_interpolated(L, i, (char)c, '#', '{', '}');
        else if (c == '/' && !prev_is_value(L, i)) { e = scan_regex(L, i); if (e == i) return i; }
        else if (c == '<' && c1 == '<') return heredoc_open(L, i);
        else if (c == '%' && !prev_is_value(L, i) && c1) {
            size_t p = i + 1;
            if (s[p] && strchr("qQwWiIrsx", s[p]) && p + 1 < n && !is_ident_char((unsigned char)s[p + 1]) && !is_blank(s[p + 1])) p++;
            char open = s[p];
            if (is_ident_char((unsigned char)open) || is_blank(open) || open == '\n' || open == '=') return i;
            e = scan_delimited(L, p + 1, open, closing_of(open));
        } else if (c == '?' && c1 && !is_blank(c1) && c1 != '\n' && !prev_is_value(L, i)) {
            e = c1 == '\\' ? i + 3 : i + 2;
            if (e < n && is_ident_char((unsigned char)s[e])) return i;
        } else return i;
        break;
    default:
        return i;
    }
    hide_string(L, i, e);
    return e;
}

/* Walks code from i. With close set (the end of an interpolation), it returns just after the
 * close byte that balances the brackets opened since i; otherwise at the end of the text (or at
 * a PHP "?>"). */
static size_t lex_code(lexer *L, size_t i, char close) {
    int depth = 0;
    while (i < L->n) {
        char c = L->s[i];
        if (c == '\n') { i = newline(L, i); continue; }
        if (close) {
            if (c == '{' || c == '(' || c == '[') depth++;
            else if (c == close && depth == 0) return i + 1;
            else if ((c == '}' || c == ')' || c == ']') && depth > 0) depth--;
        }
        size_t j = lex_token(L, i);
        i = j > i ? j : i + 1;
        if (L->php_exit) return i;
    }
    return L->n;
}

void sm_lex_view(char *view, const char *src, size_t n, sm_lang lang) {
    lexer L = {.s = src, .v = view, .n = n, .lang = lang};
    memcpy(view, src, n);
    size_t i = 0;
    if (n >= 2 && src[0] == '#' && src[1] == '!' && !(n > 2 && src[2] == '[')) {
        i = line_end(&L, 0);
        hide_comment(&L, 0, i);
    } else {
        i = line_start(&L, 0);
    }
    if (lang != SM_LANG_PHP) {
        lex_code(&L, i, 0);
        return;
    }
    /* PHP: text outside <?php ... ?> is inline HTML, hidden like a string */
    while (i < n) {
        const char *open = memmem(src + i, n - i, "<?", 2);
        size_t code = open ? (size_t)(open - src) + 2 : n;
        if (code < n && n - code >= 3 && !memcmp(src + code, "php", 3)) code += 3;
        else if (code < n && src[code] == '=') code += 1;
        hide_string(&L, i, open ? (size_t)(open - src) : n);
        if (code >= n) return;
        L.php_exit = 0;
        i = lex_code(&L, code, 0);
    }
}
