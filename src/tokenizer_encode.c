/* tokenizer_encode.c: text to token ids (sm_tokenize in tokenizer.h), as llama.cpp's
 * llama_vocab::tokenize: the input is first cut around special tokens, then each stretch of
 * plain text goes through byte-level BPE (pre-tokenizer, then merges by rank inside each piece)
 * or SentencePiece-style BPE (merges by score over the whole stretch). Scratch memory lives in
 * one `work` per call, so many threads may share a tokenizer. */
#include "tokenizer_impl.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

/* ---- growable arrays ---- */

#define VEC(T) struct { T *v; size_t n, cap; }

static int grow(void **v, size_t *cap, size_t need, size_t es) {
    if (need <= *cap) return SM_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / es) return SM_ENOMEM;
        c *= 2;
    }
    void *p = realloc(*v, c * es);
    if (!p) return SM_ENOMEM;
    *v = p;
    *cap = c;
    return SM_OK;
}
#define VEC_RESERVE(vec, need) grow((void **)&(vec).v, &(vec).cap, (need), sizeof *(vec).v)
#define VEC_PUSH(vec, x) (VEC_RESERVE(vec, (vec).n + 1) ? SM_ENOMEM : ((vec).v[(vec).n++] = (x), SM_OK))

/* A stretch of the input: plain text [off, off+len) when id < 0, else special token id. */
typedef struct {
    size_t off, len;
    int id;
} fragment;

/* A symbol of the merge loops: a run of n bytes, linked to its live neighbours. */
typedef struct {
    size_t start; /* SPM: offset in the escaped text */
    int n;        /* bytes; 0 once merged into its left neighbour */
    int id;       /* its token, or -1 */
    int prev, next;
} symbol;

/* A candidate merge of symbols left and right (right == left's next when it was made). */
typedef struct {
    float score; /* SPM: the merged token's score (higher first) */
    int rank;    /* BPE: the merge's rank (lower first) */
    int left, right, size, id;
} bigram;

typedef struct {
    VEC(int) out;
    VEC(fragment) frags, frags2;
    VEC(symbol) sym;
    VEC(bigram) heap;
    VEC(char) buf;
    int spm; /* heap order: by score (SPM) or by rank (BPE) */
} work;

/* ---- the bigram heap ---- */

static int before(const work *w, const bigram *a, const bigram *b) {
    if (w->spm) {
        if (a->score != b->score) return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static int heap_push(work *w, bigram b) {
    if (VEC_PUSH(w->heap, b)) return SM_ENOMEM;
    bigram *h = w->heap.v;
    for (size_t i = w->heap.n - 1; i > 0;) {
        size_t p = (i - 1) / 2;
        if (!before(w, &h[i], &h[p])) break;
        bigram t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
    return SM_OK;
}

static bigram heap_pop(work *w) {
    bigram *h = w->heap.v, top = h[0];
    h[0] = h[--w->heap.n];
    for (size_t i = 0, n = w->heap.n;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(w, &h[l], &h[m])) m = l;
        if (r < n && before(w, &h[r], &h[m])) m = r;
        if (m == i) break;
        bigram t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

/* Merges the symbols of w->sym by the heap's order until no candidate is left. add_pair proposes
 * the merge of two neighbours (or nothing). */
typedef int (*add_pair_fn)(const sm_tokenizer *t, work *w, const char *text, int left, int right);

static int merge_all(const sm_tokenizer *t, work *w, const char *text, add_pair_fn add_pair) {
    symbol *s = w->sym.v;
    for (size_t i = 1; i < w->sym.n; i++)
        if (add_pair(t, w, text, (int)i - 1, (int)i)) return SM_ENOMEM;
    while (w->heap.n) {
        bigram b = heap_pop(w);
        symbol *l = &s[b.left], *r = &s[b.right];
        /* Stale: one side was merged away, or grew since (sizes then no longer add up). */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->id = b.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        if (add_pair(t, w, text, l->prev, b.left) || add_pair(t, w, text, b.left, l->next)) return SM_ENOMEM;
    }
    return SM_OK;
}

/* Sets up one symbol per UTF-8 character of text[0..n), or with per_byte one per byte. A
 * character is its lead byte and the continuation bytes that follow, as many as the lead byte
 * announces: on well-formed UTF-8 that is llama.cpp's (and llama2.c's) split; on malformed input
 * a lead byte never swallows the next character (llama.cpp's would take an escaped space into a
 * byte-fallback symbol, and detokenizing would no longer give the input back). */
static int make_symbols(work *w, const char *text, size_t n, int per_byte) {
    w->sym.n = 0;
    w->heap.n = 0;
    for (size_t off = 0; off < n;) {
        size_t len = 1, want = per_byte ? 1 : (size_t)sm_utf8_len((unsigned char)text[off]);
        while (len < want && off + len < n && ((unsigned char)text[off + len] & 0xC0) == 0x80) len++;
        symbol sy = {off, (int)len, -1, (int)w->sym.n - 1, off + len == n ? -1 : (int)w->sym.n + 1};
        if (VEC_PUSH(w->sym, sy)) return SM_ENOMEM;
        off += len;
    }
    return SM_OK;
}

/* ---- byte-level BPE ---- */

static int bpe_pair(const sm_tokenizer *t, work *w, const char *text, int left, int right) {
    (void)text;
    if (left < 0 || right < 0) return SM_OK;
    const symbol *l = &w->sym.v[left], *r = &w->sym.v[right];
    if (l->id < 0 || r->id < 0) return SM_OK;
    const merge_slot *m = tok_merge_lookup(t, l->id, r->id);
    if (!m) return SM_OK;
    return heap_push(w, (bigram){0.0f, m->rank, left, right, l->n + r->n, m->id});
}

/* Emits the token of a symbol the merges left without one: as llama.cpp, each byte of its
 * byte-level text that is itself a token (in practice none, and the byte is dropped). */
static int bpe_emit_unknown(const sm_tokenizer *t, work *w, unsigned char byte) {
    char s[4];
    int len = sm_utf8_encode(sm_byte_to_unicode(byte), s);
    for (int i = 0; i < len; i++) {
        int id = tok_lookup(t, s + i, 1);
        if (id >= 0 && VEC_PUSH(w->out, id)) return SM_ENOMEM;
    }
    return SM_OK;
}

/* One pre-tokenized piece ("word"). */
static int bpe_word(const sm_tokenizer *t, work *w, const char *word, size_t n) {
    if (t->ignore_merges) { /* a word that is a token is taken whole */
        w->buf.n = 0;
        for (size_t i = 0; i < n; i++) {
            char s[4];
            int len = sm_utf8_encode(sm_byte_to_unicode((unsigned char)word[i]), s);
            if (VEC_RESERVE(w->buf, w->buf.n + 4)) return SM_ENOMEM;
            memcpy(w->buf.v + w->buf.n, s, (size_t)len);
            w->buf.n += (size_t)len;
        }
        int id = tok_lookup(t, w->buf.v, w->buf.n);
        if (id >= 0) return VEC_PUSH(w->out, id);
    }
    if (make_symbols(w, word, n, 1)) return SM_ENOMEM;
    for (size_t i = 0; i < w->sym.n; i++) w->sym.v[i].id = t->byte_token[(unsigned char)word[i]];
    if (merge_all(t, w, word, bpe_pair)) return SM_ENOMEM;
    for (int i = 0; i >= 0; i = w->sym.v[i].next) {
        const symbol *s = &w->sym.v[i];
        int rc = s->id >= 0 ? VEC_PUSH(w->out, s->id) : bpe_emit_unknown(t, w, (unsigned char)word[s->start]);
        if (rc) return rc;
    }
    return SM_OK;
}

static int bpe_text(const sm_tokenizer *t, work *w, const char *text, size_t n, sm_error *err) {
    size_t *ends, n_pieces;
    int rc = sm_pretok_split(t->pretok, text, n, &ends, &n_pieces, err);
    if (rc) return rc;
    size_t start = 0;
    for (size_t i = 0; i < n_pieces && !rc; i++) {
        rc = bpe_word(t, w, text + start, ends[i] - start);
        start = ends[i];
    }
    free(ends);
    return rc ? sm_err(err, rc, "out of memory") : SM_OK;
}

/* ---- SentencePiece-style BPE ---- */

static int spm_pair(const sm_tokenizer *t, work *w, const char *text, int left, int right) {
    if (left < 0 || right < 0) return SM_OK;
    const symbol *l = &w->sym.v[left], *r = &w->sym.v[right];
    int id = tok_lookup(t, text + l->start, (size_t)(l->n + r->n));
    if (id < 0) return SM_OK;
    return heap_push(w, (bigram){t->score[id], 0, left, right, l->n + r->n, id});
}

/* text: one stretch of plain text, with a space prepended when prefix is set. */
static int spm_text(const sm_tokenizer *t, work *w, const char *text, size_t n, int prefix, sm_error *err) {
    w->buf.n = 0;
    if (VEC_RESERVE(w->buf, 3 * n + 3)) return sm_err(err, SM_ENOMEM, "out of memory");
    char *b = w->buf.v;
    size_t k = 0;
    if (prefix) memcpy(b + k, "\xe2\x96\x81", 3), k += 3;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') memcpy(b + k, "\xe2\x96\x81", 3), k += 3;
        else b[k++] = text[i];
    }
    if (make_symbols(w, b, k, 0)) return sm_err(err, SM_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->sym.n; i++) {
        symbol *s = &w->sym.v[i];
        s->id = tok_lookup(t, b + s->start, (size_t)s->n);
    }
    if (merge_all(t, w, b, spm_pair)) return sm_err(err, SM_ENOMEM, "out of memory");
    for (int i = 0; i >= 0; i = w->sym.v[i].next) {
        const symbol *s = &w->sym.v[i];
        if (s->id >= 0) {
            if (VEC_PUSH(w->out, s->id)) return sm_err(err, SM_ENOMEM, "out of memory");
            continue;
        }
        for (int j = 0; j < s->n; j++) { /* byte fallback */
            int id = t->byte_token[(unsigned char)b[s->start + (size_t)j]];
            if (id < 0) id = t->unk;
            if (id >= 0 && VEC_PUSH(w->out, id)) return sm_err(err, SM_ENOMEM, "out of memory");
        }
    }
    return SM_OK;
}

/* ---- special tokens ---- */

/* Cuts the plain-text fragments around every occurrence of each special token in turn, longest
 * first, as llama.cpp's tokenizer_st_partition. */
static int partition(const sm_tokenizer *t, work *w, const char *text, size_t len, int parse_special) {
    w->frags.n = 0;
    if (len == 0) return SM_OK;
    if (VEC_PUSH(w->frags, ((fragment){0, len, -1}))) return SM_ENOMEM;
    /* Which byte pairs occur in the text: a special token whose first two bytes do not occur
     * cannot match, and most are skipped without a search. */
    uint64_t pairs[65536 / 64] = {0};
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned p = (unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
        pairs[p / 64] |= 1ull << (p % 64);
    }
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special[k];
        if (!parse_special && t->type[id] != SM_TOKEN_USER_DEFINED) continue;
        const char *s = t->text + t->tok[id].off;
        size_t sl = t->tok[id].len;
        if (sl > len) continue;
        if (sl >= 2) {
            unsigned p = (unsigned char)s[0] << 8 | (unsigned char)s[1];
            if (!(pairs[p / 64] >> (p % 64) & 1)) continue;
        }
        int found = 0;
        for (size_t f = 0; f < w->frags.n && !found; f++)
            found = w->frags.v[f].id < 0 && w->frags.v[f].len >= sl &&
                    memmem(text + w->frags.v[f].off, w->frags.v[f].len, s, sl);
        if (!found) continue;
        w->frags2.n = 0;
        for (size_t f = 0; f < w->frags.n; f++) {
            fragment fr = w->frags.v[f];
            if (fr.id >= 0) {
                if (VEC_PUSH(w->frags2, fr)) return SM_ENOMEM;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            const char *hit;
            while (end - pos >= sl && (hit = memmem(text + pos, end - pos, s, sl))) {
                size_t at = (size_t)(hit - text);
                if (at > pos && VEC_PUSH(w->frags2, ((fragment){pos, at - pos, -1}))) return SM_ENOMEM;
                if (VEC_PUSH(w->frags2, ((fragment){at, sl, id}))) return SM_ENOMEM;
                pos = at + sl;
            }
            if (pos < end && VEC_PUSH(w->frags2, ((fragment){pos, end - pos, -1}))) return SM_ENOMEM;
        }
        VEC(fragment) tmp = {w->frags.v, w->frags.n, w->frags.cap};
        w->frags.v = w->frags2.v, w->frags.n = w->frags2.n, w->frags.cap = w->frags2.cap;
        w->frags2.v = tmp.v, w->frags2.n = tmp.n, w->frags2.cap = tmp.cap;
    }
    return SM_OK;
}

int sm_tokenize(const sm_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                int **ids, int *n_ids, sm_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len)) return sm_err(err, SM_EINVAL, "sm_tokenize: no tokenizer or no text");
    work w = {0};
    w.spm = t->kind == TOK_SPM;
    int rc = SM_OK;
    if (partition(t, &w, text, len, parse_special)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    if (add_special && t->add_bos && t->bos >= 0 && VEC_PUSH(w.out, t->bos)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    int prev_special = 1; /* SPM: a stretch at the start or after a special token gets the space prefix */
    for (size_t f = 0; f < w.frags.n; f++) {
        const fragment *fr = &w.frags.v[f];
        if (fr->id >= 0) {
            if (VEC_PUSH(w.out, fr->id)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
            prev_special = 1;
            continue;
        }
        if (w.spm) rc = spm_text(t, &w, text + fr->off, fr->len, t->add_space_prefix && prev_special, err);
        else rc = bpe_text(t, &w, text + fr->off, fr->len, err);
        if (rc) goto done;
        prev_special = 0;
    }
    if (add_special && t->add_eos && t->eos >= 0 && VEC_PUSH(w.out, t->eos)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    if (w.out.n > INT32_MAX) { rc = sm_err(err, SM_ENOMEM, "too many tokens"); goto done; }
    if (!w.out.v && VEC_RESERVE(w.out, 1)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    *ids = w.out.v;
    *n_ids = (int)w.out.n;
    w.out.v = NULL;
done:
    free(w.out.v);
    free(w.frags.v);
    free(w.frags2.v);
    free(w.sym.v);
    free(w.heap.v);
    free(w.buf.v);
    return rc;
}
