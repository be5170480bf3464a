/* bpe_train.c: byte-level BPE training (see bpe_train.h). It owns the word-count dictionary,
 * the pair counts with their pair -> words index, the max-heap of candidate pairs, and the
 * learned tokens and merges; writing the vocabulary GGUF is at the end of the file. */
#include "bpe_train.h"

#include "gguf.h"
#include "pretokenize.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

/* ---- growable arrays and a string table ---------------------------------------------------- */

/* Makes room for n more elements of size sz in *p (capacity *cap); 0 or -1 when out of memory. */
static int grow(void **p, size_t *cap, size_t used, size_t n, size_t sz) {
    if (used + n <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < used + n) {
        if (c > SIZE_MAX / 2 / sz) return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}
#define GROW(arr, cap, used, n) grow((void **)&(arr), &(cap), (used), (n), sizeof *(arr))

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

typedef struct {
    uint64_t hash, off;
    uint32_t len;
    int64_t val;
} str_entry;

/* Byte strings (in one arena) -> int64, by open addressing over entry indices. */
typedef struct {
    str_entry *e;
    size_t n, cap;
    int32_t *slot; /* entry index, -1 empty */
    size_t mask;
    char *arena;
    size_t arena_n, arena_cap;
} str_table;

static int strtab_rehash(str_table *t, size_t n_slots) {
    int32_t *s = malloc(n_slots * sizeof *s);
    if (!s) return -1;
    memset(s, 0xff, n_slots * sizeof *s);
    for (size_t i = 0; i < t->n; i++) {
        size_t j = t->e[i].hash & (n_slots - 1);
        while (s[j] >= 0) j = (j + 1) & (n_slots - 1);
        s[j] = (int32_t)i;
    }
    free(t->slot);
    t->slot = s;
    t->mask = n_slots - 1;
    return 0;
}

/* The entry of s[0..n), added with value 0 when absent; NULL when out of memory. */
static str_entry *strtab_get(str_table *t, const char *s, size_t n, int add) {
    if (n > UINT32_MAX) return NULL;
    uint64_t h = hash_bytes(s, n);
    if (t->slot) {
        for (size_t j = h & t->mask; t->slot[j] >= 0; j = (j + 1) & t->mask) {
            str_entry *e = &t->e[t->slot[j]];
            if (e->hash == h && e->len == n && !memcmp(t->arena + e->off, s, n)) return e;
        }
    }
    if (!add) return NULL;
    if (t->n >= INT32_MAX - 1) return NULL;
    if (!t->slot || (t->n + 1) * 2 > t->mask + 1)
        if (strtab_rehash(t, t->slot ? (t->mask + 1) * 2 : 1024)) return NULL;
    if (GROW(t->e, t->cap, t->n, 1) || GROW(t->arena, t->arena_cap, t->arena_n, n)) return NULL;
    memcpy(t->arena + t->arena_n, s, n);
    str_entry *e = &t->e[t->n];
    *e = (str_entry){h, t->arena_n, (uint32_t)n, 0};
    t->arena_n += n;
    size_t j = h & t->mask;
    while (t->slot[j] >= 0) j = (j + 1) & t->mask;
    t->slot[j] = (int32_t)t->n++;
    return e;
}

static void strtab_free(str_table *t) {
    free(t->e);
    free(t->slot);
    free(t->arena);
}

/* ---- the trainer ----------------------------------------------------------------------------- */

typedef struct {
    int32_t a, b;        /* token ids (internal: 0..255 bytes, 256 + k the k-th new token) */
    int64_t count;       /* frequency-weighted occurrences over all words */
    int64_t step_count;  /* count when first touched in the current merge step */
    int32_t step;        /* the merge step that last touched it */
    int32_t *words;      /* words that hold (or held) the pair; may repeat and go stale */
    size_t n_words, cap_words;
} pair_rec;

typedef struct {
    int64_t count;
    int32_t a, b;
} heap_entry;

typedef struct {
    int32_t a, b, id;    /* internal ids */
    int64_t count;
} merge_rec;

struct sm_bpe_trainer {
    sm_bpe_params p;
    char **texts;        /* copies of the special and marker texts: specials first */
    sm_pretok *pretok;
    char pre[64];
    str_table words;     /* piece -> count */
    uint64_t bytes, pieces;
    int trained;
    /* After training: */
    str_table tokens;    /* token bytes -> internal id */
    uint64_t *tok_off;   /* internal id -> bytes in tokens.arena */
    uint32_t *tok_len;
    size_t n_tok, cap_tok;
    merge_rec *merges;
    size_t n_merges, cap_merges;
};

static int cmp_heap(const heap_entry *x, const heap_entry *y) { /* > 0 when x goes first */
    if (x->count != y->count) return x->count > y->count ? 1 : -1;
    if (x->a != y->a) return x->a < y->a ? 1 : -1;
    return x->b < y->b ? 1 : (x->b > y->b ? -1 : 0);
}

static void heap_down(heap_entry *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cmp_heap(&h[l], &h[m]) > 0) m = l;
        if (r < n && cmp_heap(&h[r], &h[m]) > 0) m = r;
        if (m == i) return;
        heap_entry x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
}

static void heap_up(heap_entry *h, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (cmp_heap(&h[i], &h[parent]) <= 0) return;
        heap_entry x = h[i];
        h[i] = h[parent];
        h[parent] = x;
        i = parent;
    }
}

void sm_bpe_trainer_free(sm_bpe_trainer *t) {
    if (!t) return;
    for (int i = 0; i < t->p.n_special + t->p.n_markers; i++) free(t->texts[i]);
    free(t->texts);
    sm_pretok_free(t->pretok);
    strtab_free(&t->words);
    strtab_free(&t->tokens);
    free(t->tok_off);
    free(t->tok_len);
    free(t->merges);
    free(t);
}

sm_bpe_trainer *sm_bpe_trainer_new(const sm_bpe_params *p, sm_error *err) {
    if (p->n_special < 0 || p->n_markers < 0 || (p->n_special && !p->special) || (p->n_markers && !p->markers)) {
        sm_err(err, SM_EINVAL, "bpe: bad special or marker list");
        return NULL;
    }
    int n_fixed = p->n_special + p->n_markers;
    if (p->vocab_size < n_fixed + 256 || p->vocab_size > (1 << 24)) {
        sm_err(err, SM_EINVAL, "bpe: vocabulary size %d: expected %d (the specials, markers and 256 bytes) to %d",
               p->vocab_size, n_fixed + 256, 1 << 24);
        return NULL;
    }
    if (p->min_frequency < 1) {
        sm_err(err, SM_EINVAL, "bpe: min_frequency %d: expected at least 1", p->min_frequency);
        return NULL;
    }
    sm_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t || !(t->texts = calloc((size_t)n_fixed + 1, sizeof *t->texts))) {
        free(t);
        sm_err(err, SM_ENOMEM, "bpe: out of memory");
        return NULL;
    }
    t->p = *p;
    t->p.n_special = t->p.n_markers = 0; /* counted up as the copies succeed, for the destructor */
    for (int i = 0; i < n_fixed; i++) {
        const char *s = i < p->n_special ? p->special[i] : p->markers[i - p->n_special];
        if (!s || !s[0]) {
            sm_bpe_trainer_free(t);
            sm_err(err, SM_EINVAL, "bpe: an empty special or marker token");
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(t->texts[j], s)) {
                sm_bpe_trainer_free(t);
                sm_err(err, SM_EINVAL, "bpe: the token '%.60s' is given twice", s);
                return NULL;
            }
        if (!(t->texts[i] = strdup(s))) {
            sm_bpe_trainer_free(t);
            sm_err(err, SM_ENOMEM, "bpe: out of memory");
            return NULL;
        }
        if (i < p->n_special) t->p.n_special++;
        else t->p.n_markers++;
    }
    t->p.special = NULL;
    t->p.markers = NULL;
    const char *pre = p->pre && p->pre[0] ? p->pre : "default";
    if (!strcmp(pre, "gpt2")) pre = "gpt-2";
    snprintf(t->pre, sizeof t->pre, "%s", pre);
    t->p.pre = t->pre;
    if (!(t->pretok = sm_pretok_new(pre, err))) {
        sm_bpe_trainer_free(t);
        return NULL;
    }
    return t;
}

/* Counts the pre-tokenizer pieces of text[0..len), which holds no special text. */
static int count_pieces(sm_bpe_trainer *t, const char *text, size_t len, sm_error *err) {
    if (!len) return SM_OK;
    size_t *ends = NULL, n = 0;
    int rc = sm_pretok_split(t->pretok, text, len, &ends, &n, err);
    if (rc) return rc;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        str_entry *e = strtab_get(&t->words, text + start, ends[i] - start, 1);
        if (!e) {
            free(ends);
            return sm_err(err, SM_ENOMEM, "bpe: out of memory counting words");
        }
        e->val++;
        start = ends[i];
    }
    t->pieces += n;
    free(ends);
    return SM_OK;
}

int sm_bpe_add_text(sm_bpe_trainer *t, const char *text, size_t len, sm_error *err) {
    if (t->trained) return sm_err(err, SM_EINVAL, "bpe: text added after training");
    int n_fixed = t->p.n_special + t->p.n_markers;
    size_t pos = 0;
    while (pos < len) {
        /* The next special or marker text (the longest one where several start together). */
        const char *best = NULL;
        size_t best_len = 0;
        for (int i = 0; i < n_fixed; i++) {
            size_t k = strlen(t->texts[i]);
            const char *hit = memmem(text + pos, len - pos, t->texts[i], k);
            if (hit && (!best || hit < best || (hit == best && k > best_len))) best = hit, best_len = k;
        }
        size_t end = best ? (size_t)(best - text) : len;
        int rc = count_pieces(t, text + pos, end - pos, err);
        if (rc) return rc;
        pos = best ? end + best_len : len;
    }
    t->bytes += len;
    return SM_OK;
}

/* ---- merging --------------------------------------------------------------------------------- */

typedef struct {
    pair_rec *pair;
    size_t n_pairs, cap_pairs;
    int32_t *slot;       /* (a, b) -> pair index, -1 empty */
    size_t mask;
    heap_entry *heap;
    size_t n_heap, cap_heap;
    int32_t *touched;    /* pairs whose count changed in the current step */
    size_t n_touched, cap_touched;
} pair_state;

static size_t pair_hash(int32_t a, int32_t b) {
    uint64_t h = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h ^ (h >> 31));
}

static int pairs_rehash(pair_state *ps, size_t n_slots) {
    int32_t *s = malloc(n_slots * sizeof *s);
    if (!s) return -1;
    memset(s, 0xff, n_slots * sizeof *s);
    for (size_t i = 0; i < ps->n_pairs; i++) {
        size_t j = pair_hash(ps->pair[i].a, ps->pair[i].b) & (n_slots - 1);
        while (s[j] >= 0) j = (j + 1) & (n_slots - 1);
        s[j] = (int32_t)i;
    }
    free(ps->slot);
    ps->slot = s;
    ps->mask = n_slots - 1;
    return 0;
}

/* The index of pair (a, b), added with count 0 when absent; -1 when out of memory. */
static int64_t pair_get(pair_state *ps, int32_t a, int32_t b) {
    size_t j = pair_hash(a, b) & ps->mask;
    for (; ps->slot[j] >= 0; j = (j + 1) & ps->mask) {
        pair_rec *r = &ps->pair[ps->slot[j]];
        if (r->a == a && r->b == b) return ps->slot[j];
    }
    if (ps->n_pairs >= INT32_MAX - 1 || GROW(ps->pair, ps->cap_pairs, ps->n_pairs, 1)) return -1;
    ps->pair[ps->n_pairs] = (pair_rec){.a = a, .b = b, .step = -1};
    ps->slot[j] = (int32_t)ps->n_pairs++;
    if (ps->n_pairs * 2 > ps->mask + 1 && pairs_rehash(ps, (ps->mask + 1) * 2)) return -1;
    return (int64_t)ps->n_pairs - 1;
}

/* Adds delta to pair (a, b)'s count in merge step `step`, noting it as touched; with word >= 0
 * also records that the word holds the pair. Returns 0 or -1 when out of memory. */
static int pair_add(pair_state *ps, int32_t a, int32_t b, int64_t delta, int32_t word, int32_t step) {
    int64_t i = pair_get(ps, a, b);
    if (i < 0) return -1;
    pair_rec *r = &ps->pair[i];
    if (r->step != step) {
        if (GROW(ps->touched, ps->cap_touched, ps->n_touched, 1)) return -1;
        ps->touched[ps->n_touched++] = (int32_t)i;
        r->step = step;
        r->step_count = r->count;
    }
    r->count += delta;
    if (word >= 0 && (r->n_words == 0 || r->words[r->n_words - 1] != word)) {
        if (GROW(r->words, r->cap_words, r->n_words, 1)) return -1;
        r->words[r->n_words++] = word;
    }
    return 0;
}

static int heap_push(pair_state *ps, int64_t count, int32_t a, int32_t b) {
    if (GROW(ps->heap, ps->cap_heap, ps->n_heap, 1)) return -1;
    ps->heap[ps->n_heap] = (heap_entry){count, a, b};
    heap_up(ps->heap, ps->n_heap++);
    return 0;
}

/* Ends a merge step: every touched pair whose count grew goes on the heap (those that shrank
 * are corrected when they surface). */
static int push_touched(pair_state *ps) {
    for (size_t k = 0; k < ps->n_touched; k++) {
        pair_rec *r = &ps->pair[ps->touched[k]];
        if (r->count > r->step_count && heap_push(ps, r->count, r->a, r->b)) return -1;
    }
    ps->n_touched = 0;
    return 0;
}

static void pairs_free(pair_state *ps) {
    for (size_t i = 0; i < ps->n_pairs; i++) free(ps->pair[i].words);
    free(ps->pair);
    free(ps->slot);
    free(ps->heap);
    free(ps->touched);
}

/* Adds the token of bytes s[0..n) unless it exists; its internal id goes to *id. */
static int add_token(sm_bpe_trainer *t, const char *s, size_t n, int32_t *id) {
    str_entry *e = strtab_get(&t->tokens, s, n, 0);
    if (e) {
        *id = (int32_t)e->val;
        return 0;
    }
    if (!(e = strtab_get(&t->tokens, s, n, 1))) return -1;
    if (GROW(t->tok_off, t->cap_tok, t->n_tok, 1)) return -1;
    size_t cap = t->cap_tok; /* tok_len grows in step with tok_off */
    uint32_t *l = realloc(t->tok_len, cap * sizeof *l);
    if (!l) return -1;
    t->tok_len = l;
    t->tok_off[t->n_tok] = e->off;
    t->tok_len[t->n_tok] = e->len;
    e->val = (int64_t)t->n_tok;
    *id = (int32_t)t->n_tok++;
    return 0;
}

int sm_bpe_train(sm_bpe_trainer *t, void (*progress)(void *ctx, int done, int total), void *ctx, sm_error *err) {
    if (t->trained) return sm_err(err, SM_EINVAL, "bpe: already trained");
    t->trained = 1;
    int rc = SM_ENOMEM;
    pair_state ps = {0};
    int64_t *wcount = NULL;   /* word -> frequency */
    uint64_t *woff = NULL;    /* word -> its symbols in sym */
    uint32_t *wlen = NULL;    /* word -> symbols left */
    int32_t *wstep = NULL;    /* word -> the merge step that last merged it */
    int32_t *sym = NULL;
    size_t n_words = t->words.n;
    int32_t *where = NULL;    /* the words of the pair being merged */
    char *buf = NULL;
    size_t buf_cap = 0;

    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t id;
        if (add_token(t, &c, 1, &id)) goto oom;
    }
    if (!(wcount = malloc((n_words + 1) * sizeof *wcount)) || !(woff = malloc((n_words + 1) * sizeof *woff)) ||
        !(wlen = malloc((n_words + 1) * sizeof *wlen)) || !(wstep = malloc((n_words + 1) * sizeof *wstep)) ||
        !(sym = malloc((t->words.arena_n + 1) * sizeof *sym)))
        goto oom;
    if (pairs_rehash(&ps, 1 << 16)) goto oom;
    for (size_t w = 0; w < n_words; w++) {
        const str_entry *e = &t->words.e[w];
        wcount[w] = e->val;
        woff[w] = e->off;
        wlen[w] = e->len;
        wstep[w] = -1;
        const unsigned char *s = (const unsigned char *)t->words.arena + e->off;
        for (uint32_t i = 0; i < e->len; i++) sym[e->off + i] = s[i];
        for (uint32_t i = 0; i + 1 < e->len; i++)
            if (pair_add(&ps, s[i], s[i + 1], e->val, (int32_t)w, -1)) goto oom;
    }
    ps.n_touched = 0;
    for (size_t i = 0; i < ps.n_pairs; i++) {
        if (GROW(ps.heap, ps.cap_heap, ps.n_heap, 1)) goto oom;
        ps.heap[ps.n_heap++] = (heap_entry){ps.pair[i].count, ps.pair[i].a, ps.pair[i].b};
    }
    for (size_t i = ps.n_heap / 2; i-- > 0;) heap_down(ps.heap, ps.n_heap, i);

    int n_fixed = t->p.n_special + t->p.n_markers;
    int want = t->p.vocab_size - n_fixed - 256; /* new tokens */
    int32_t step = 0;
    while ((int)t->n_tok - 256 < want && ps.n_heap) {
        heap_entry top = ps.heap[0];
        ps.heap[0] = ps.heap[--ps.n_heap];
        heap_down(ps.heap, ps.n_heap, 0);
        int64_t pi = pair_get(&ps, top.a, top.b);
        if (pi < 0) goto oom;
        pair_rec *r = &ps.pair[pi];
        if (r->count != top.count) { /* stale: its count shrank since it was pushed */
            if (r->count > 0 && heap_push(&ps, r->count, r->a, r->b)) goto oom;
            continue;
        }
        if (r->count < t->p.min_frequency || r->count <= 0) break;
        int32_t a = r->a, b = r->b, z;
        size_t la = t->tok_len[a], lb = t->tok_len[b];
        if (GROW(buf, buf_cap, 0, la + lb)) goto oom;
        memcpy(buf, t->tokens.arena + t->tok_off[a], la);
        memcpy(buf + la, t->tokens.arena + t->tok_off[b], lb);
        if (add_token(t, buf, la + lb, &z)) goto oom;
        if (GROW(t->merges, t->cap_merges, t->n_merges, 1)) goto oom;
        t->merges[t->n_merges++] = (merge_rec){a, b, z, r->count};

        /* Merge (a, b) in every word that holds it, left to right without overlap, moving the
         * word's pair counts along: at each occurrence the junction pairs (prev, a) and (b, next)
         * become (prev, z) and (z, next); where two occurrences touch, (b, a) becomes (z, z). */
        where = r->words;
        size_t n_where = r->n_words;
        r->words = NULL;
        r->n_words = r->cap_words = 0;
        for (size_t k = 0; k < n_where; k++) {
            int32_t w = where[k];
            if (wstep[w] == step) continue;
            int32_t *s = sym + woff[w];
            uint32_t n = wlen[w], i = 0, o = 0;
            int64_t c = wcount[w];
            int found = 0, just_merged = 0;
            while (i < n) {
                if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                    int e = 0;
                    if (o > 0 && just_merged) { /* (b, a) was taken off at the occurrence before */
                        e |= pair_add(&ps, z, z, c, w, step);
                    } else if (o > 0) {
                        e |= pair_add(&ps, s[o - 1], a, -c, -1, step);
                        e |= pair_add(&ps, s[o - 1], z, c, w, step);
                    }
                    if (i + 2 < n) {
                        e |= pair_add(&ps, b, s[i + 2], -c, -1, step);
                        int next_merges = i + 3 < n && s[i + 2] == a && s[i + 3] == b;
                        if (!next_merges) e |= pair_add(&ps, z, s[i + 2], c, w, step);
                    }
                    e |= pair_add(&ps, a, b, -c, -1, step);
                    if (e) goto oom;
                    s[o++] = z;
                    i += 2;
                    found = just_merged = 1;
                } else {
                    s[o++] = s[i++];
                    just_merged = 0;
                }
            }
            wlen[w] = o;
            if (found) wstep[w] = step;
        }
        free(where);
        where = NULL;
        if (push_touched(&ps)) goto oom;
        step++;
        if (progress && (step & 255) == 0) progress(ctx, (int)t->n_tok - 256, want);
    }
    if (progress) progress(ctx, (int)t->n_tok - 256, want);
    rc = SM_OK;
    goto done;
oom:
    sm_err(err, SM_ENOMEM, "bpe: out of memory training");
done:
    pairs_free(&ps);
    free(wcount);
    free(woff);
    free(wlen);
    free(wstep);
    free(sym);
    free(where);
    free(buf);
    return rc;
}

/* ---- results ---------------------------------------------------------------------------------- */

void sm_bpe_get_stats(const sm_bpe_trainer *t, sm_bpe_stats *s) {
    int n_fixed = t->p.n_special + t->p.n_markers;
    *s = (sm_bpe_stats){t->bytes, t->pieces, t->words.n, (int)t->n_merges,
                        t->trained ? n_fixed + (int)t->n_tok : 0};
}

int sm_bpe_merge(const sm_bpe_trainer *t, int i, const char **left, size_t *left_len, const char **right,
                 size_t *right_len, uint64_t *count) {
    if (i < 0 || (size_t)i >= t->n_merges) return SM_EINVAL;
    const merge_rec *m = &t->merges[i];
    *left = t->tokens.arena + t->tok_off[m->a];
    *left_len = t->tok_len[m->a];
    *right = t->tokens.arena + t->tok_off[m->b];
    *right_len = t->tok_len[m->b];
    *count = (uint64_t)m->count;
    return SM_OK;
}

/* Appends token id's bytes in GPT-2's byte-to-unicode alphabet to out[*n..] (room for 4 per byte). */
static void map_bytes(char *out, size_t *n, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) *n += (size_t)sm_utf8_encode(sm_byte_to_unicode((uint8_t)s[i]), out + *n);
}

int sm_bpe_write_gguf(const sm_bpe_trainer *t, const char *path, sm_error *err) {
    if (!t->trained) return sm_err(err, SM_EINVAL, "bpe: write before training");
    int n_fixed = t->p.n_special + t->p.n_markers;
    size_t n_vocab = (size_t)n_fixed + t->n_tok, n_merges = t->n_merges;
    /* One slab: token and merge strings (mapped text is at most 4 bytes per byte, plus a space
     * and a NUL), their pointers, and the token types. */
    size_t text_bytes = 0;
    for (int i = 0; i < n_fixed; i++) text_bytes += strlen(t->texts[i]) + 1;
    for (size_t i = 0; i < t->n_tok; i++) text_bytes += 4 * (size_t)t->tok_len[i] + 1;
    for (size_t i = 0; i < n_merges; i++)
        text_bytes += 4 * ((size_t)t->tok_len[t->merges[i].a] + t->tok_len[t->merges[i].b]) + 2;
    size_t n_ptr = n_vocab + n_merges;
    char *slab = malloc(n_ptr * sizeof(char *) + n_vocab * sizeof(int32_t) + text_bytes);
    if (!slab) return sm_err(err, SM_ENOMEM, "bpe: out of memory writing %s", path);
    const char **tokens = (const char **)slab, **merges = tokens + n_vocab;
    int32_t *types = (int32_t *)(slab + n_ptr * sizeof(char *));
    char *text = (char *)(types + n_vocab);
    size_t used = 0;
    for (int i = 0; i < n_fixed; i++) {
        tokens[i] = t->texts[i];
        types[i] = i < t->p.n_special ? SM_TOKEN_CONTROL : SM_TOKEN_USER_DEFINED;
    }
    for (size_t i = 0; i < t->n_tok; i++) {
        tokens[n_fixed + i] = text + used;
        types[n_fixed + i] = SM_TOKEN_NORMAL;
        map_bytes(text, &used, t->tokens.arena + t->tok_off[i], t->tok_len[i]);
        text[used++] = 0;
    }
    for (size_t i = 0; i < n_merges; i++) {
        const merge_rec *m = &t->merges[i];
        merges[i] = text + used;
        map_bytes(text, &used, t->tokens.arena + t->tok_off[m->a], t->tok_len[m->a]);
        text[used++] = ' ';
        map_bytes(text, &used, t->tokens.arena + t->tok_off[m->b], t->tok_len[m->b]);
        text[used++] = 0;
    }

    char name[96];
    snprintf(name, sizeof name, "snipmeta-bpe-%zu", n_vocab);
    sm_gguf_writer *w = sm_gguf_writer_new();
    int rc = w ? SM_OK : SM_ENOMEM;
    if (!rc) rc = sm_gguf_set_str(w, "general.architecture", "llama");
    if (!rc) rc = sm_gguf_set_str(w, "general.name", name);
    if (!rc) rc = sm_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!rc) rc = sm_gguf_set_str(w, "tokenizer.ggml.pre", t->pre);
    if (!rc) rc = sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, n_vocab);
    if (!rc) rc = sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, types, n_vocab);
    if (!rc) rc = sm_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, n_merges);
    if (!rc && t->p.n_special > 0) {
        rc = sm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        if (!rc) rc = sm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        if (!rc) rc = sm_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    }
    if (!rc) rc = sm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    if (!rc) rc = sm_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    if (!rc) rc = sm_gguf_set_u32(w, "snipmeta.bpe.vocab_size", (uint32_t)t->p.vocab_size);
    if (!rc) rc = sm_gguf_set_u32(w, "snipmeta.bpe.min_frequency", (uint32_t)t->p.min_frequency);
    if (!rc) rc = sm_gguf_set_u64(w, "snipmeta.bpe.train_bytes", t->bytes);
    if (!rc) rc = sm_gguf_set_u64(w, "snipmeta.bpe.train_words", t->words.n);
    if (rc) {
        sm_err(err, rc, "bpe: cannot build the metadata of %s", path);
    } else {
        rc = sm_gguf_write(w, path, err);
    }
    sm_gguf_writer_free(w);
    free(slab);
    return rc;
}
