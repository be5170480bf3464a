/* collect_cut_blocks.c: definitions in Python (by indentation) and in Lua and Ruby (by block
 * keywords matched with 'end'). All read the code view, so keywords, brackets and indentation
 * inside strings and comments are invisible. */
#include "collect_cut_impl.h"

#include <stdlib.h>
#include <string.h>

#include "lang_lex.h"
#include "snipmeta.h"

enum { MAX_DEPTH = 256 };

static size_t line_begin(const cut_src *src, int line) { return src->line_off[line]; }
static size_t line_stop(const cut_src *src, int line) {
    return line + 1 < src->n_lines ? src->line_off[line + 1] - 1 : src->n;
}

static int word_at(const char *v, size_t i, size_t end, const char *w) {
    size_t k = strlen(w);
    return i + k <= end && !memcmp(v + i, w, k) && (i + k == end || !cut_is_ident_char((unsigned char)v[i + k])) &&
           (i == 0 || !cut_is_ident_char((unsigned char)v[i - 1]));
}

/* ---- Python ---- */

typedef struct py_line {
    int indent;  /* columns of leading whitespace (tabs to multiples of 8) */
    int blank;   /* nothing but whitespace in the view */
    int cont;    /* continues a statement: inside brackets, a string, or after a backslash */
    size_t text; /* first non-blank byte */
} py_line;

int cut_python(sm_cut_list *out, const cut_src *src) {
    const char *v = src->v;
    int nl = src->n_lines;
    py_line *ln = calloc((size_t)nl, sizeof *ln);
    if (!ln) return SM_ENOMEM;
    int depth = 0, backslash = 0;
    for (int l = 0; l < nl; l++) {
        size_t a = line_begin(src, l), e = line_stop(src, l), i = a;
        int col = 0;
        while (i < e && (v[i] == ' ' || v[i] == '\t' || v[i] == '\f')) { col = v[i] == '\t' ? (col / 8 + 1) * 8 : col + 1; i++; }
        ln[l].indent = col;
        ln[l].text = i;
        ln[l].cont = depth > 0 || backslash || (a < e && v[a] == SM_VIEW_STR);
        int blank = 1;
        for (size_t k = i; k < e; k++) {
            char c = v[k];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\f') blank = 0;
            if (c == '(' || c == '[' || c == '{') depth++;
            else if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        }
        ln[l].blank = blank;
        size_t last = e;
        while (last > a && (v[last - 1] == ' ' || v[last - 1] == '\t' || v[last - 1] == '\r')) last--;
        backslash = last > a && v[last - 1] == '\\';
    }

    struct { int indent, is_class; } stack[MAX_DEPTH];
    int n_stack = 0, rc = 0;
    for (int l = 0; l < nl && !rc; l++) {
        if (ln[l].blank || ln[l].cont) continue;
        size_t i = ln[l].text, e = line_stop(src, l);
        int is_class = 0;
        if (word_at(v, i, e, "async")) { i += 5; while (i < e && (v[i] == ' ' || v[i] == '\t')) i++; }
        if (word_at(v, i, e, "def")) i += 3;
        else if (word_at(v, i, e, "class") && i == ln[l].text) { i += 5; is_class = 1; }
        else continue;
        while (i < e && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t name = i;
        while (i < e && cut_is_ident_char((unsigned char)v[i])) i++;
        if (i == name) continue;
        int d = ln[l].indent;
        while (n_stack > 0 && stack[n_stack - 1].indent >= d) n_stack--;
        sm_cut_kind kind = is_class ? SM_CUT_CLASS : (n_stack > 0 && stack[n_stack - 1].is_class) ? SM_CUT_METHOD : SM_CUT_FUNCTION;
        if (n_stack < MAX_DEPTH) { stack[n_stack].indent = d; stack[n_stack].is_class = is_class; n_stack++; }
        /* the body: every following line indented deeper, with its continuation lines */
        int last = l;
        for (int k = l + 1; k < nl; k++) {
            if (ln[k].cont) { last = k; continue; }
            if (ln[k].blank) continue;
            if (ln[k].indent <= d) break;
            last = k;
        }
        /* decorators above, at the same indentation (blank and comment lines may come between) */
        int first = l;
        for (int k = l - 1; k >= 0; k--) {
            while (k > 0 && ln[k].blank && !ln[k].cont) k--;
            int s = k;
            while (s > 0 && ln[s].cont) s--;
            if (ln[s].blank || ln[s].indent != d || v[ln[s].text] != '@') break;
            first = s;
            k = s;
        }
        rc = cut_push(out, first + 1, last + 1, kind, v + name, i - name);
    }
    free(ln);
    return rc;
}

/* ---- Lua and Ruby: keyword blocks ---- */

typedef struct kw_tok {
    size_t a, b;
} kw_tok;

typedef struct kw_block {
    int is_def;         /* a function/def/class to report */
    sm_cut_kind kind;
    int is_class;
    int line;           /* where it starts */
    size_t name_a, name_b;
} kw_block;

/* The next token of the view from *i: an identifier (Ruby: with a trailing ? or !), a
 * newline, or one punctuation byte. Returns 0 at the end. */
static int next_tok(const cut_src *src, size_t *i, kw_tok *t) {
    const char *v = src->v;
    size_t j = *i;
    while (j < src->n && (v[j] == ' ' || v[j] == '\t' || v[j] == '\r' || v[j] == SM_VIEW_STR)) j++;
    if (j >= src->n) return 0;
    t->a = j;
    if (cut_is_ident_char((unsigned char)v[j])) {
        while (j < src->n && cut_is_ident_char((unsigned char)v[j])) j++;
        if (src->lang == SM_LANG_RUBY && j < src->n && (v[j] == '?' || v[j] == '!') && !(j + 1 < src->n && v[j + 1] == '=')) j++;
    } else {
        j++;
        if (v[j - 1] == ':' && j < src->n && v[j] == ':') j++;
    }
    t->b = j;
    *i = j;
    return 1;
}

static int kw_is(const cut_src *src, const kw_tok *t, const char *w) {
    size_t k = strlen(w);
    return t->b - t->a == k && !memcmp(src->v + t->a, w, k);
}

static int kw_ch(const cut_src *src, const kw_tok *t, char c) { return t->b - t->a == 1 && src->v[t->a] == c; }

static int kw_ident(const cut_src *src, const kw_tok *t) { return cut_is_ident_char((unsigned char)src->v[t->a]); }

enum { MAX_KW_TOKS = 1 << 20 };

/* Tokenises the whole view (identifiers, newlines, punctuation). */
static kw_tok *kw_tokens(const cut_src *src, int *n_out) {
    size_t cap = 1024, n = 0, i = 0;
    kw_tok *t = malloc(cap * sizeof *t), tk;
    if (!t) return NULL;
    while (next_tok(src, &i, &tk)) {
        if (n == cap) {
            if (cap >= MAX_KW_TOKS) break;
            kw_tok *g = realloc(t, 2 * cap * sizeof *t);
            if (!g) { free(t); return NULL; }
            t = g;
            cap *= 2;
        }
        t[n++] = tk;
    }
    *n_out = (int)n;
    return t;
}

static int push_block(kw_block *stack, int *n, kw_block b) {
    if (*n >= MAX_DEPTH) { (*n)++; return 0; }
    stack[(*n)++] = b;
    return 0;
}

static int pop_block(sm_cut_list *out, const cut_src *src, kw_block *stack, int *n, size_t end_off) {
    if (*n == 0) return 0;
    (*n)--;
    if (*n >= MAX_DEPTH || !stack[*n].is_def) return 0;
    const kw_block *b = &stack[*n];
    return cut_push(out, b->line, cut_line_of(src, end_off), b->kind, src->v + b->name_a, b->name_b - b->name_a);
}

static int inside_class(const kw_block *stack, int n) {
    for (int k = (n < MAX_DEPTH ? n : MAX_DEPTH) - 1; k >= 0; k--)
        if (stack[k].is_def) return stack[k].is_class;
    return 0;
}

int cut_lua(sm_cut_list *out, const cut_src *src) {
    int n = 0, depth = 0, rc = 0;
    kw_tok *t = kw_tokens(src, &n);
    if (!t) return SM_ENOMEM;
    kw_block stack[MAX_DEPTH];
    for (int k = 0; k < n && !rc; k++) {
        if (k > 0 && (kw_ch(src, &t[k - 1], '.') || kw_ch(src, &t[k - 1], ':'))) continue; /* a field */
        if (kw_is(src, &t[k], "function")) {
            kw_block b = {.is_def = 1, .kind = SM_CUT_FUNCTION, .line = cut_line_of(src, t[k].a)};
            int j = k + 1;
            if (j < n && kw_ident(src, &t[j])) { /* function a.b:c( */
                b.name_a = t[j].a; b.name_b = t[j].b;
                while (j + 2 < n && (kw_ch(src, &t[j + 1], '.') || kw_ch(src, &t[j + 1], ':')) && kw_ident(src, &t[j + 2])) {
                    if (kw_ch(src, &t[j + 1], ':')) b.kind = SM_CUT_METHOD;
                    j += 2;
                    b.name_a = t[j].a; b.name_b = t[j].b;
                }
                if (k > 0 && kw_is(src, &t[k - 1], "local")) b.line = cut_line_of(src, t[k - 1].a);
            } else if (k >= 2 && kw_ch(src, &t[k - 1], '=') && kw_ident(src, &t[k - 2])) { /* name = function( */
                b.name_a = t[k - 2].a; b.name_b = t[k - 2].b;
                int s = k - 2;
                while (s >= 2 && kw_ch(src, &t[s - 1], '.') && kw_ident(src, &t[s - 2])) s -= 2;
                if (s >= 1 && kw_is(src, &t[s - 1], "local")) s--;
                b.line = cut_line_of(src, t[s].a);
            } else {
                b.is_def = 0;
            }
            push_block(stack, &depth, b);
        } else if (kw_is(src, &t[k], "if") || kw_is(src, &t[k], "do") || kw_is(src, &t[k], "repeat")) {
            push_block(stack, &depth, (kw_block){0});
        } else if (kw_is(src, &t[k], "end") || kw_is(src, &t[k], "until")) {
            rc = pop_block(out, src, stack, &depth, t[k].a);
        }
    }
    free(t);
    return rc;
}

/* Ruby: may the keyword at k open a block (it starts a statement), or is it a modifier? */
static int ruby_statement_start(const cut_src *src, const kw_tok *t, int k) {
    if (k == 0) return 1;
    const kw_tok *p = &t[k - 1];
    if (kw_ch(src, p, '\n') || kw_ch(src, p, ';') || kw_ch(src, p, '(') || kw_ch(src, p, '=') ||
        kw_ch(src, p, ',') || kw_ch(src, p, '[') || kw_ch(src, p, '{') || kw_ch(src, p, '|') ||
        kw_ch(src, p, '&') || kw_ch(src, p, '!') || kw_ch(src, p, '?') || kw_ch(src, p, ':') || kw_ch(src, p, '+') ||
        kw_ch(src, p, '-') || kw_ch(src, p, '<') || kw_ch(src, p, '>'))
        return 1;
    static const char *const words[] = {"return", "then", "else", "do", "and", "or", "not", "begin", "puts", NULL};
    for (int w = 0; words[w]; w++)
        if (kw_is(src, p, words[w])) return 1;
    return 0;
}

int cut_ruby(sm_cut_list *out, const cut_src *src) {
    int n = 0, depth = 0, rc = 0, loop_do = 0;
    kw_tok *t = kw_tokens(src, &n);
    if (!t) return SM_ENOMEM;
    kw_block stack[MAX_DEPTH];
    const char *v = src->v;
    for (int k = 0; k < n && !rc; k++) {
        if (kw_ch(src, &t[k], '\n') || kw_ch(src, &t[k], ';')) { loop_do = 0; continue; }
        if (!kw_ident(src, &t[k])) continue;
        if (k > 0 && (kw_ch(src, &t[k - 1], '.') || kw_is(src, &t[k - 1], "::"))) continue; /* a method call */
        if (k > 0 && kw_ch(src, &t[k - 1], ':') && t[k - 1].b == t[k].a) continue;       /* a :symbol */
        if (t[k].b < src->n && v[t[k].b] == ':' && !(t[k].b + 1 < src->n && v[t[k].b + 1] == ':')) continue; /* a label: */
        if (kw_is(src, &t[k], "def")) {
            kw_block b = {.is_def = 1, .line = cut_line_of(src, t[k].a)};
            b.kind = inside_class(stack, depth) ? SM_CUT_METHOD : SM_CUT_FUNCTION;
            int j = k + 1;
            if (j + 2 < n && kw_is(src, &t[j], "self") && kw_ch(src, &t[j + 1], '.')) j += 2;
            if (j >= n || kw_ch(src, &t[j], '\n')) continue;
            b.name_a = t[j].a;
            b.name_b = t[j].b;
            /* a setter (def name=(v)) or an operator (def ==(o), def [](i)) */
            while (j + 1 < n && t[j + 1].a == t[j].b && !kw_ch(src, &t[j + 1], '(') && !kw_ch(src, &t[j + 1], '\n') &&
                   !kw_ch(src, &t[j + 1], ';') && !kw_ident(src, &t[j + 1])) { j++; b.name_b = t[j].b; }
            /* endless def: `def name(args) = expr` */
            int p = j + 1;
            if (p < n && kw_ch(src, &t[p], '(')) {
                int d = 0;
                for (; p < n; p++) {
                    if (kw_ch(src, &t[p], '(')) d++;
                    else if (kw_ch(src, &t[p], ')') && --d == 0) { p++; break; }
                }
            }
            if (p < n && kw_ch(src, &t[p], '=') && !(t[p].b < src->n && (v[t[p].b] == '=' || v[t[p].b] == '~'))) continue;
            push_block(stack, &depth, b);
            k = j;
        } else if (kw_is(src, &t[k], "class") || kw_is(src, &t[k], "module")) {
            kw_block b = {.is_def = 1, .is_class = 1, .kind = SM_CUT_CLASS, .line = cut_line_of(src, t[k].a)};
            int j = k + 1;
            if (j < n && kw_ch(src, &t[j], '<')) { b.is_def = 0; push_block(stack, &depth, b); continue; } /* class << self */
            if (j >= n || !kw_ident(src, &t[j])) { b.is_def = 0; push_block(stack, &depth, b); continue; }
            b.name_a = t[j].a; b.name_b = t[j].b;
            while (j + 2 < n && kw_is(src, &t[j + 1], "::") && kw_ident(src, &t[j + 2])) { j += 2; b.name_a = t[j].a; b.name_b = t[j].b; }
            push_block(stack, &depth, b);
            k = j;
        } else if (kw_is(src, &t[k], "while") || kw_is(src, &t[k], "until") || kw_is(src, &t[k], "for")) {
            if (ruby_statement_start(src, t, k)) { push_block(stack, &depth, (kw_block){0}); loop_do = 1; }
        } else if (kw_is(src, &t[k], "if") || kw_is(src, &t[k], "unless")) {
            if (ruby_statement_start(src, t, k)) push_block(stack, &depth, (kw_block){0});
        } else if (kw_is(src, &t[k], "do")) {
            if (loop_do) loop_do = 0;
            else push_block(stack, &depth, (kw_block){0});
        } else if (kw_is(src, &t[k], "case") || kw_is(src, &t[k], "begin")) {
            push_block(stack, &depth, (kw_block){0});
        } else if (kw_is(src, &t[k], "end")) {
            rc = pop_block(out, src, stack, &depth, t[k].a);
        }
    }
    free(t);
    return rc;
}
