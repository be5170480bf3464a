/* constrain.c: the item trie (a sorted array, nodes as ranges) and the token trie (a byte trie of
 * token texts) of constrained decoding; see constrain.h. */
#include "constrain.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sm_constraint {
    const sm_tokenizer *tok;
    char sep[8];
    int sep_len;
    int min_items, max_items;
    int n;                  /* items */
    char **items;           /* sorted (strcmp), pointing into text */
    char *text;
    /* the token trie: node 0 is the root; children in a first-child / next-sibling list */
    int n_nodes;
    int *child, *sibling, *node_token;  /* (n_nodes) */
    unsigned char *byte;                /* (n_nodes) the edge byte into the node */
    int *token_next;                    /* (n_vocab) the next token ending at the same node, or -1 */
    int n_vocab;
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds token id with text piece[0..len) to the trie; returns 0 or -1 when out of memory. */
static int trie_insert(sm_constraint *c, const unsigned char *piece, int len, int id, int *cap) {
    int node = 0;
    for (int i = 0; i < len; i++) {
        int ch = c->child[node];
        while (ch >= 0 && c->byte[ch] != piece[i]) ch = c->sibling[ch];
        if (ch < 0) {
            if (c->n_nodes == *cap) {
                int nc = *cap * 2;
                int *a = realloc(c->child, (size_t)nc * sizeof *a);
                if (a) c->child = a;
                int *b = realloc(c->sibling, (size_t)nc * sizeof *b);
                if (b) c->sibling = b;
                int *t = realloc(c->node_token, (size_t)nc * sizeof *t);
                if (t) c->node_token = t;
                unsigned char *y = realloc(c->byte, (size_t)nc);
                if (y) c->byte = y;
                if (!a || !b || !t || !y) return -1;
                *cap = nc;
            }
            ch = c->n_nodes++;
            c->child[ch] = -1, c->node_token[ch] = -1, c->byte[ch] = piece[i];
            c->sibling[ch] = c->child[node];
            c->child[node] = ch;
        }
        node = ch;
    }
    c->token_next[id] = c->node_token[node];
    c->node_token[node] = id;
    return 0;
}

static int build_token_trie(sm_constraint *c, sm_error *err) {
    /* the alphabet: every byte of the items and the separator, and what a language name may hold */
    unsigned char alphabet[256] = {0};
    for (int i = 0; i < c->n; i++)
        for (const unsigned char *p = (const unsigned char *)c->items[i]; *p; p++) alphabet[*p] = 1;
    for (int i = 0; i < c->sep_len; i++) alphabet[(unsigned char)c->sep[i]] = 1;
    for (int b = 'a'; b <= 'z'; b++) alphabet[b] = 1;
    for (int b = '0'; b <= '9'; b++) alphabet[b] = 1;
    alphabet['-'] = 1;

    c->n_vocab = sm_tokenizer_n_vocab(c->tok);
    int cap = 1024;
    c->child = malloc((size_t)cap * sizeof *c->child);
    c->sibling = malloc((size_t)cap * sizeof *c->sibling);
    c->node_token = malloc((size_t)cap * sizeof *c->node_token);
    c->byte = malloc((size_t)cap);
    c->token_next = malloc((size_t)(c->n_vocab > 0 ? c->n_vocab : 1) * sizeof *c->token_next);
    if (!c->child || !c->sibling || !c->node_token || !c->byte || !c->token_next)
        return sm_err(err, SM_ENOMEM, "out of memory for the token trie");
    c->n_nodes = 1;
    c->child[0] = c->sibling[0] = c->node_token[0] = -1;
    c->byte[0] = 0;
    unsigned char piece[256];
    for (int id = 0; id < c->n_vocab; id++) {
        c->token_next[id] = -1;
        int len = sm_token_to_piece(c->tok, id, (char *)piece, sizeof piece, 0);
        if (len <= 0 || len > (int)sizeof piece) continue;
        int ok = 1;
        for (int i = 0; i < len && ok; i++) ok = alphabet[piece[i]];
        if (ok && trie_insert(c, piece, len, id, &cap)) return sm_err(err, SM_ENOMEM, "out of memory for the token trie");
    }
    return SM_OK;
}

sm_constraint *sm_constraint_new(const sm_tokenizer *tok, const char *const *items, int n, const char *sep,
                                 int min_items, int max_items, sm_error *err) {
    size_t sep_len = sep ? strlen(sep) : 0;
    if (!tok || n < 0 || sep_len == 0 || sep_len >= 8 || min_items < 0 || max_items < 1 || min_items > max_items ||
        max_items > SM_CONSTRAINT_MAX_ITEMS) {
        sm_err(err, SM_EINVAL, "sm_constraint_new: bad arguments");
        return NULL;
    }
    sm_constraint *c = calloc(1, sizeof *c);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += strlen(items[i]) + 1;
    if (c) {
        c->items = malloc((size_t)(n ? n : 1) * sizeof *c->items);
        c->text = malloc(bytes ? bytes : 1);
    }
    if (!c || !c->items || !c->text) {
        sm_constraint_free(c);
        sm_err(err, SM_ENOMEM, "out of memory for a constraint of %d items", n);
        return NULL;
    }
    c->tok = tok;
    memcpy(c->sep, sep, sep_len + 1);
    c->sep_len = (int)sep_len;
    c->min_items = min_items, c->max_items = max_items;
    char *p = c->text;
    for (int i = 0; i < n; i++) {
        const char *s = items[i];
        if (!*s) continue;
        for (const unsigned char *q = (const unsigned char *)s; *q; q++)
            if (*q < 0x20 || *q == (unsigned char)sep[0]) {
                sm_err(err, SM_EINVAL, "item %d ('%.60s') holds a control byte or the separator", i + 1, s);
                sm_constraint_free(c);
                return NULL;
            }
        c->items[c->n++] = p;
        p = stpcpy(p, s) + 1;
    }
    if (c->n > 1) qsort(c->items, (size_t)c->n, sizeof *c->items, cmp_str);
    int kept = 0;
    for (int i = 0; i < c->n; i++)
        if (!kept || strcmp(c->items[kept - 1], c->items[i])) c->items[kept++] = c->items[i];
    c->n = kept;
    if (build_token_trie(c, err)) { sm_constraint_free(c); return NULL; }
    return c;
}

sm_constraint *sm_constraint_load(const sm_tokenizer *tok, const char *path, const char *sep, int min_items,
                                  int max_items, sm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { sm_err(err, SM_EIO, "%s: %s", path, strerror(errno)); return NULL; }
    char **items = NULL, *line = NULL;
    size_t cap = 0, line_cap = 0;
    int n = 0, line_no = 0, rc = SM_OK;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        char *b = line, *e = line + len;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e == b) continue;
        *e = 0;
        if (memchr(b, 0, (size_t)(e - b)) || strchr(b, sep[0])) {
            rc = sm_err(err, SM_EFORMAT, "%s:%d: expected one item per line, without NUL bytes or '%s'", path, line_no,
                        sep[0] == '\n' ? "\\n" : sep);
            break;
        }
        if ((size_t)n == cap) {
            cap = cap ? cap * 2 : 256;
            char **grown = realloc(items, cap * sizeof *items);
            if (!grown) { rc = sm_err(err, SM_ENOMEM, "out of memory reading %s", path); break; }
            items = grown;
        }
        if (!(items[n] = strdup(b))) { rc = sm_err(err, SM_ENOMEM, "out of memory reading %s", path); break; }
        n++;
    }
    if (!rc && ferror(f)) rc = sm_err(err, SM_EIO, "%s: read error", path);
    fclose(f);
    free(line);
    sm_constraint *c = NULL;
    if (!rc) {
        c = sm_constraint_new(tok, (const char *const *)items, n, sep, min_items, max_items, err);
        if (!c && err && err->code == SM_EINVAL) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            sm_err(err, SM_EFORMAT, "%.200s: %.300s", path, msg);
        }
    }
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
    return c;
}

void sm_constraint_free(sm_constraint *c) {
    if (!c) return;
    free(c->items);
    free(c->text);
    free(c->child);
    free(c->sibling);
    free(c->node_token);
    free(c->byte);
    free(c->token_next);
    free(c);
}

int sm_constraint_size(const sm_constraint *c) { return c->n; }
const char *sm_constraint_item(const sm_constraint *c, int i) { return i >= 0 && i < c->n ? c->items[i] : NULL; }

size_t sm_constraint_bytes(const sm_constraint *c) {
    size_t text = 0;
    for (int i = 0; i < c->n; i++) text += strlen(c->items[i]) + 1 + sizeof(char *);
    return sizeof *c + text + (size_t)c->n_nodes * (3 * sizeof(int) + 1) + (size_t)c->n_vocab * sizeof(int);
}

/* Whether the first item is required and is the one being written. */
static int in_first(const char *first, const sm_constraint_state *s) { return first && *first && s->n_items == 0; }

/* Set items in [lo, hi) that the state has already used. */
static int used_in(const sm_constraint_state *s, int lo, int hi) {
    int k = 0;
    for (int i = 0; i < s->n_items; i++) k += s->items[i] >= lo && s->items[i] < hi;
    return k;
}

/* The index of the current item when its bytes are a whole unused item, -2 for the required
 * first item, -1 otherwise. */
static int current_item(const sm_constraint *c, const char *first, const sm_constraint_state *s) {
    if (s->phase != 0) return -1;
    if (in_first(first, s)) {
        if (first[s->depth]) return -1;
        for (int i = 0; i < c->n; i++) /* the first item's index when the set has it, for the duplicate check */
            if (!strcmp(c->items[i], first)) return i;
        return -2;
    }
    if (s->lo >= s->hi || c->items[s->lo][s->depth] || used_in(s, s->lo, s->lo + 1)) return -1;
    return s->lo;
}

void sm_constraint_start(const sm_constraint *c, const char *first, sm_constraint_state *s) {
    (void)first;
    memset(s, 0, sizeof *s);
    s->hi = c->n;
}

/* Narrows [lo, hi) to the items whose byte at depth is b (the range is sorted by that byte). */
static void narrow(const sm_constraint *c, int depth, unsigned char b, int *lo, int *hi) {
    int a = *lo, z = *hi;
    while (a < z) { /* first with byte >= b */
        int m = a + (z - a) / 2;
        if ((unsigned char)c->items[m][depth] < b) a = m + 1; else z = m;
    }
    int start = a;
    z = *hi;
    while (a < z) { /* first with byte > b */
        int m = a + (z - a) / 2;
        if ((unsigned char)c->items[m][depth] <= b) a = m + 1; else z = m;
    }
    *lo = start, *hi = a;
}

static int step(const sm_constraint *c, const char *first, sm_constraint_state *s, unsigned char b) {
    if (b == 0) return -1; /* items end at NUL: a NUL byte would match their end */
    if (s->phase == 1) {
        if ((unsigned char)c->sep[s->depth] != b) return -1;
        if (++s->depth == c->sep_len) s->phase = 0, s->depth = 0, s->lo = 0, s->hi = c->n;
        return 0;
    }
    if (s->phase != 0) return -1;
    if (b == (unsigned char)c->sep[0]) {
        int item = current_item(c, first, s);
        if (item == -1 || s->n_items + 1 >= c->max_items) return -1;
        s->items[s->n_items++] = item;
        if (used_in(s, 0, c->n) >= c->n) { s->n_items--; return -1; } /* no item left to follow */
        s->phase = 1, s->depth = 1;
        if (c->sep_len == 1) s->phase = 0, s->depth = 0, s->lo = 0, s->hi = c->n;
        return 0;
    }
    if (in_first(first, s)) {
        if ((unsigned char)first[s->depth] != b || !b) return -1;
        s->depth++;
        return 0;
    }
    int lo = s->lo, hi = s->hi;
    narrow(c, s->depth, b, &lo, &hi);
    if (lo >= hi || used_in(s, lo, hi) >= hi - lo) return -1;
    s->lo = lo, s->hi = hi, s->depth++;
    return 0;
}

int sm_constraint_advance(const sm_constraint *c, const char *first, sm_constraint_state *s, const char *bytes, int len) {
    for (int i = 0; i < len; i++)
        if (step(c, first, s, (unsigned char)bytes[i])) { s->phase = 2; return -1; }
    return 0;
}

int sm_constraint_accepts(const sm_constraint *c, const char *first, const sm_constraint_state *s) {
    if (s->phase != 0) return 0;
    if (s->n_items == 0 && s->depth == 0 && !in_first(first, s)) return c->min_items == 0;
    return current_item(c, first, s) != -1 && s->n_items + 1 >= c->min_items && s->n_items + 1 <= c->max_items;
}

/* Depth-first over the token trie below node, in step with the item trie. */
static int walk(const sm_constraint *c, const char *first, int node, const sm_constraint_state *s, int *allowed, int n) {
    for (int ch = c->child[node]; ch >= 0; ch = c->sibling[ch]) {
        sm_constraint_state next = *s;
        if (step(c, first, &next, c->byte[ch])) continue;
        for (int t = c->node_token[ch]; t >= 0; t = c->token_next[t]) allowed[n++] = t;
        n = walk(c, first, ch, &next, allowed, n);
    }
    return n;
}

int sm_constraint_allowed(const sm_constraint *c, const char *first, const sm_constraint_state *s, int *allowed,
                          int *can_end) {
    *can_end = sm_constraint_accepts(c, first, s);
    if (s->phase == 2) return 0;
    return walk(c, first, 0, s, allowed, 0);
}
