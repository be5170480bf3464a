/* tokenizer.c: builds a tokenizer from a GGUF file's tokenizer.ggml.* metadata and answers
 * questions about its vocabulary: lookups by text, special ids, detokenizing (tokenizer.h).
 * Tokenizing itself is in tokenizer_encode.c. Everything a tokenizer keeps lives in one slab
 * sized from the metadata's counts, plus the compiled pre-tokenizer of byte-level BPE. */
#include "tokenizer_impl.h"
#include "unicode.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hashing ---- */

static uint64_t mix(uint64_t h) { /* splitmix64's finalizer: every input bit reaches the low bits */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return mix(h);
}

static uint64_t hash_pair(int32_t a, int32_t b) { return mix((uint64_t)(uint32_t)a << 32 | (uint32_t)b); }

int tok_lookup(const sm_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_token_len) return -1;
    for (size_t i = hash_bytes(s, n) & t->tok_mask;; i = (i + 1) & t->tok_mask) {
        int32_t id = t->tok_slot[i];
        if (id < 0) return -1;
        if (t->tok[id].len == n && !memcmp(t->text + t->tok[id].off, s, n)) return id;
    }
}

const merge_slot *tok_merge_lookup(const sm_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merge) return NULL;
    for (size_t i = hash_pair(left, right) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *m = &t->merge[i];
        if (m->left < 0) return NULL;
        if (m->left == left && m->right == right) return m;
    }
}

/* Inserts id under its text; a later duplicate text replaces an earlier one (as llama.cpp). */
static void tok_insert(sm_tokenizer *t, int32_t id) {
    const char *s = t->text + t->tok[id].off;
    size_t n = t->tok[id].len;
    for (size_t i = hash_bytes(s, n) & t->tok_mask;; i = (i + 1) & t->tok_mask) {
        int32_t old = t->tok_slot[i];
        if (old < 0 || (t->tok[old].len == n && !memcmp(t->text + t->tok[old].off, s, n))) {
            t->tok_slot[i] = id;
            return;
        }
    }
}

/* ---- sizes ---- */

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

/* Adds an array of n elements of size es to the slab layout; returns its offset or SIZE_MAX. */
static size_t layout(size_t *total, size_t n, size_t es) {
    size_t bytes, start = (*total + 15) & ~(size_t)15;
    if (start < *total || __builtin_mul_overflow(n, es, &bytes) || __builtin_add_overflow(start, bytes, total))
        return SIZE_MAX;
    return start;
}

/* ---- reading the metadata ---- */

typedef struct {
    const sm_gguf *g;
    const char *path;
    sm_error *err;
} meta;

static int fail(const meta *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const meta *m, int code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sm_err(m->err, code, "%s: %s", m->path, msg);
}

static const char *type_name(sm_gguf_type t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                  "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown type";
}

/* Finds an array key of element type want (or any integer type when want is -1 and ints is set);
 * returns its index, -1 when absent, or -2 with the error set. */
static int64_t find_array(const meta *m, const char *key, sm_gguf_type want, uint64_t n_want) {
    int64_t i = sm_gguf_find_key(m->g, key);
    if (i < 0) return -1;
    if (sm_gguf_kv_type(m->g, i) != SM_GGUF_ARRAY) {
        fail(m, SM_EFORMAT, "expected %s to be an array of %s, found a %s", key, type_name(want),
             type_name(sm_gguf_kv_type(m->g, i)));
        return -2;
    }
    sm_gguf_type at = sm_gguf_arr_type(m->g, i);
    if (at != want) {
        fail(m, SM_EFORMAT, "expected %s to be an array of %s, found an array of %s", key, type_name(want),
             type_name(at));
        return -2;
    }
    if (n_want != UINT64_MAX && sm_gguf_arr_n(m->g, i) != n_want) {
        fail(m, SM_EFORMAT, "expected %s to have %llu entries (one per token), found %llu", key,
             (unsigned long long)n_want, (unsigned long long)sm_gguf_arr_n(m->g, i));
        return -2;
    }
    return i;
}

/* Reads an optional token id key into *id; a value outside the vocabulary is ignored with a
 * warning, as llama.cpp does. */
static int read_id(const meta *m, sm_tokenizer *t, const char *key, int *id) {
    uint32_t v;
    int rc = sm_gguf_get_u32(m->g, key, &v, m->err);
    if (rc == SM_EINVAL) return SM_OK; /* absent */
    if (rc) return rc;
    if (v >= (uint32_t)t->n_vocab) {
        if (!t->warning[0])
            snprintf(t->warning, sizeof t->warning, "%s: %s = %u is outside the vocabulary of %d tokens; ignored",
                     m->path, key, v, t->n_vocab);
        return SM_OK;
    }
    *id = (int)v;
    return SM_OK;
}

static int read_bool(const meta *m, const char *key, int *out) {
    int rc = sm_gguf_get_bool(m->g, key, out, m->err);
    return rc == SM_EINVAL ? SM_OK : rc;
}

static void add_eog(sm_tokenizer *t, int id) {
    if (id < 0 || t->n_eog == TOK_MAX_EOG) return;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    t->eog[t->n_eog++] = id;
}

/* Special ids, flags and the end-of-generation set, after llama.cpp's loader. */
static int read_specials(const meta *m, sm_tokenizer *t) {
    int n = t->n_vocab, rc;
    t->bos = t->eos = t->eot = t->eom = t->unk = -1;
    if (t->kind == TOK_SPM) {
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
        t->add_bos = 1;
        t->add_space_prefix = 1;
    } else {
        t->bos = t->eos = n > 11 ? 11 : -1;
        if (!strcmp(t->pre, "chatglm-bpe")) t->bos = -1; /* as llama.cpp: ChatGLM has no BOS */
        t->add_bos = sm_pretok_add_bos(t->pretok);
        t->ignore_merges = sm_pretok_ignore_merges(t->pretok);
    }
    int fim_pad = -1, fim_rep = -1, fim_sep = -1;
    if ((rc = read_id(m, t, "tokenizer.ggml.bos_token_id", &t->bos)) ||
        (rc = read_id(m, t, "tokenizer.ggml.eos_token_id", &t->eos)) ||
        (rc = read_id(m, t, "tokenizer.ggml.eot_token_id", &t->eot)) ||
        (rc = read_id(m, t, "tokenizer.ggml.eom_token_id", &t->eom)) ||
        (rc = read_id(m, t, "tokenizer.ggml.unknown_token_id", &t->unk)) ||
        (rc = read_id(m, t, "tokenizer.ggml.fim_pad_token_id", &fim_pad)) ||
        (rc = read_id(m, t, "tokenizer.ggml.fim_rep_token_id", &fim_rep)) ||
        (rc = read_id(m, t, "tokenizer.ggml.fim_sep_token_id", &fim_sep)) ||
        (rc = read_bool(m, "tokenizer.ggml.add_bos_token", &t->add_bos)) ||
        (rc = read_bool(m, "tokenizer.ggml.add_eos_token", &t->add_eos)) ||
        (rc = read_bool(m, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)))
        return rc;

    /* Tokens that end a turn, found by their text as llama.cpp does; they become CONTROL. */
    static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>",
                                            "<end_of_utterance>"};
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                            "<end_of_utterance>"};
    if (t->eot < 0) {
        for (size_t i = 0; i < sizeof eot_texts / sizeof eot_texts[0]; i++) {
            int id = tok_lookup(t, eot_texts[i], strlen(eot_texts[i]));
            if (id >= 0 && (t->eot < 0 || id < t->eot)) t->eot = id;
        }
        if (t->eot >= 0) t->type[t->eot] = SM_TOKEN_CONTROL;
    }
    if (t->eom < 0) {
        t->eom = tok_lookup(t, "<|eom_id|>", 10);
        if (t->eom >= 0) t->type[t->eom] = SM_TOKEN_CONTROL;
    }
    add_eog(t, fim_pad);
    add_eog(t, fim_rep);
    add_eog(t, fim_sep);
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int id = tok_lookup(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0) {
            add_eog(t, id);
            t->type[id] = SM_TOKEN_CONTROL;
        }
    }
    add_eog(t, t->eos);
    add_eog(t, t->eot);
    add_eog(t, t->eom);
    return SM_OK;
}

static int special_cmp(const void *a, const void *b, void *ctx) {
    const sm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tok[x].len != t->tok[y].len) return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return (x > y) - (x < y);
}

/* Reads tokenizer.ggml.merges into the pair table. */
static int read_merges(const meta *m, sm_tokenizer *t, int64_t km) {
    uint64_t n = sm_gguf_arr_n(m->g, km);
    char *buf = NULL;
    size_t cap = 0;
    int rc = SM_OK;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        const char *s = sm_gguf_arr_str(m->g, km, j, &len);
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            rc = fail(m, SM_EFORMAT, "tokenizer.ggml.merges[%llu] = '%.60s': expected two tokens separated by a space",
                      (unsigned long long)j, s);
            break;
        }
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        int l = tok_lookup(t, s, nl), r = tok_lookup(t, sp + 1, nr);
        if (l < 0 || r < 0) {
            rc = fail(m, SM_EFORMAT, "tokenizer.ggml.merges[%llu] = '%.60s': '%.*s' is not a token", (unsigned long long)j,
                      s, (int)(l < 0 ? nl : nr), l < 0 ? s : sp + 1);
            break;
        }
        if (nl + nr > cap) {
            cap = (nl + nr) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { rc = fail(m, SM_ENOMEM, "out of memory"); break; }
            buf = nb;
        }
        memcpy(buf, s, nl);
        memcpy(buf + nl, sp + 1, nr);
        int id = tok_lookup(t, buf, nl + nr);
        if (id < 0) {
            rc = fail(m, SM_EFORMAT, "tokenizer.ggml.merges[%llu] = '%.60s': the merged text '%.*s' is not a token",
                      (unsigned long long)j, s, (int)(nl + nr > 60 ? 60 : nl + nr), buf);
            break;
        }
        for (size_t i = hash_pair(l, r) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
            merge_slot *ms = &t->merge[i];
            if (ms->left < 0) {
                *ms = (merge_slot){l, r, (int32_t)j, id};
                break;
            }
            if (ms->left == l && ms->right == r) break; /* the first of duplicate merges wins */
        }
    }
    free(buf);
    return rc;
}

sm_tokenizer *sm_tokenizer_from_gguf(const sm_gguf *g, sm_error *err) {
    if (!g) { sm_err(err, SM_EINVAL, "sm_tokenizer_from_gguf: no file"); return NULL; }
    meta m = {g, sm_gguf_path(g) ? sm_gguf_path(g) : "(gguf)", err};
    sm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { fail(&m, SM_ENOMEM, "out of memory"); return NULL; }

    const char *model = sm_gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) {
        fail(&m, SM_EFORMAT, "%s tokenizer.ggml.model (a string: \"gpt2\" or \"llama\")",
             sm_gguf_find_key(g, "tokenizer.ggml.model") < 0 ? "missing" : "expected a string for");
        goto bad;
    }
    if (!strcmp(model, "gpt2")) t->kind = TOK_BPE;
    else if (!strcmp(model, "llama")) t->kind = TOK_SPM;
    else {
        fail(&m, SM_EUNSUPPORTED, "tokenizer.ggml.model '%s' is not supported (expected \"gpt2\" or \"llama\")", model);
        goto bad;
    }

    int64_t kt = find_array(&m, "tokenizer.ggml.tokens", SM_GGUF_STRING, UINT64_MAX);
    if (kt == -1) fail(&m, SM_EFORMAT, "missing tokenizer.ggml.tokens (an array of strings)");
    if (kt < 0) goto bad;
    uint64_t n = sm_gguf_arr_n(g, kt);
    if (n == 0 || n > INT32_MAX / 2) {
        fail(&m, SM_EFORMAT, "tokenizer.ggml.tokens has %llu entries; expected 1..%d", (unsigned long long)n, INT32_MAX / 2);
        goto bad;
    }
    t->n_vocab = (int)n;
    int64_t ks = find_array(&m, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, n);
    if (ks == -2) goto bad;
    int64_t ktt = sm_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (ktt >= 0) {
        sm_gguf_type at = sm_gguf_kv_type(g, ktt) == SM_GGUF_ARRAY ? sm_gguf_arr_type(g, ktt) : SM_GGUF_ARRAY;
        ktt = find_array(&m, "tokenizer.ggml.token_type", at == SM_GGUF_UINT32 ? SM_GGUF_UINT32 : SM_GGUF_INT32, n);
        if (ktt == -2) goto bad;
    }
    int64_t km = -1;
    uint64_t n_merges = 0;
    if (t->kind == TOK_BPE) {
        km = find_array(&m, "tokenizer.ggml.merges", SM_GGUF_STRING, UINT64_MAX);
        if (km == -1) fail(&m, SM_EFORMAT, "missing tokenizer.ggml.merges (an array of strings \"left right\")");
        if (km < 0) goto bad;
        n_merges = sm_gguf_arr_n(g, km);
        if (n_merges > INT32_MAX / 4) {
            fail(&m, SM_EFORMAT, "tokenizer.ggml.merges has %llu entries; too many", (unsigned long long)n_merges);
            goto bad;
        }
        const char *pre = sm_gguf_get_str(g, "tokenizer.ggml.pre");
        if (!pre && sm_gguf_find_key(g, "tokenizer.ggml.pre") >= 0)
            snprintf(t->warning, sizeof t->warning, "%s: tokenizer.ggml.pre is not a string; using 'default'", m.path);
        if (pre && !sm_pretok_known(pre)) {
            snprintf(t->warning, sizeof t->warning,
                     "%s: unknown pre-tokenizer '%.60s' (tokenizer.ggml.pre); using 'default'", m.path, pre);
            pre = NULL;
        }
        snprintf(t->pre, sizeof t->pre, "%s", pre && pre[0] ? pre : "default");
        if (!(t->pretok = sm_pretok_new(t->pre, err))) goto bad;
    }

    /* Sizes, then one slab. Empty texts become "[EMPTY_i]" as in llama.cpp. */
    size_t text_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        sm_gguf_arr_str(g, kt, i, &len);
        if (len > UINT32_MAX / 2) { fail(&m, SM_EFORMAT, "tokenizer.ggml.tokens[%llu] is too long", (unsigned long long)i); goto bad; }
        if (__builtin_add_overflow(text_bytes, (size_t)(len ? len : 32) + 1, &text_bytes) || text_bytes > UINT32_MAX) {
            fail(&m, SM_EFORMAT, "tokenizer.ggml.tokens: texts too large");
            goto bad;
        }
    }
    size_t tok_cap = pow2_at_least(2 * n), merge_cap = n_merges ? pow2_at_least(2 * n_merges) : 0;
    size_t total = 0;
    size_t o_tok = layout(&total, n, sizeof(tok_text));
    size_t o_score = layout(&total, n, sizeof(float));
    size_t o_slot = layout(&total, tok_cap, sizeof(int32_t));
    size_t o_merge = layout(&total, merge_cap, sizeof(merge_slot));
    size_t o_special = layout(&total, n, sizeof(int32_t));
    size_t o_type = layout(&total, n, 1);
    size_t o_text = layout(&total, text_bytes, 1);
    if (o_text == SIZE_MAX || o_tok == SIZE_MAX || o_score == SIZE_MAX || o_slot == SIZE_MAX ||
        o_merge == SIZE_MAX || o_special == SIZE_MAX || o_type == SIZE_MAX || !(t->slab = malloc(total))) {
        fail(&m, SM_ENOMEM, "out of memory for a vocabulary of %llu tokens", (unsigned long long)n);
        goto bad;
    }
    char *slab = t->slab;
    t->tok = (tok_text *)(slab + o_tok);
    t->score = (float *)(slab + o_score);
    t->tok_slot = (int32_t *)(slab + o_slot);
    t->tok_mask = tok_cap - 1;
    t->merge = merge_cap ? (merge_slot *)(slab + o_merge) : NULL;
    t->merge_mask = merge_cap ? merge_cap - 1 : 0;
    t->special = (int32_t *)(slab + o_special);
    t->type = (uint8_t *)(slab + o_type);
    t->text = slab + o_text;
    memset(t->tok_slot, 0xff, tok_cap * sizeof(int32_t));
    for (size_t i = 0; i < merge_cap; i++) t->merge[i].left = -1;

    const float *scores = ks >= 0 ? sm_gguf_arr_data(g, ks) : NULL;
    const int32_t *types = ktt >= 0 ? sm_gguf_arr_data(g, ktt) : NULL;
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = sm_gguf_arr_str(g, kt, i, &len);
        if (len) memcpy(t->text + off, s, len);
        else len = (uint64_t)sprintf(t->text + off, "[EMPTY_%llu]", (unsigned long long)i);
        t->text[off + len] = 0;
        t->tok[i] = (tok_text){(uint32_t)off, (uint32_t)len};
        if (len > t->max_token_len) t->max_token_len = (size_t)len;
        off += len + 1;
        t->score[i] = scores ? scores[i] : 0.0f;
        t->type[i] = types ? (types[i] >= 0 && types[i] <= SM_TOKEN_BYTE ? (uint8_t)types[i] : SM_TOKEN_UNDEFINED)
                           : SM_TOKEN_NORMAL;
        tok_insert(t, (int32_t)i);
    }

    if (km >= 0 && read_merges(&m, t, km)) goto bad;
    if (read_specials(&m, t)) goto bad;

    for (int b = 0; b < 256; b++) {
        char s[8];
        int len;
        if (t->kind == TOK_BPE) {
            len = sm_utf8_encode(sm_byte_to_unicode((uint8_t)b), s);
            t->byte_token[b] = tok_lookup(t, s, (size_t)len);
        } else {
            len = snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_token[b] = tok_lookup(t, s, (size_t)len);
            if (t->byte_token[b] < 0) {
                s[0] = (char)b;
                t->byte_token[b] = tok_lookup(t, s, 1);
            }
        }
    }
    for (uint32_t cp = 0; cp < 0x144; cp++) t->unmap[cp] = (int16_t)sm_unicode_to_byte(cp);

    for (int i = 0; i < t->n_vocab; i++)
        if (t->type[i] == SM_TOKEN_CONTROL || t->type[i] == SM_TOKEN_USER_DEFINED || t->type[i] == SM_TOKEN_UNKNOWN)
            t->special[t->n_special++] = i;
    qsort_r(t->special, (size_t)t->n_special, sizeof(int32_t), special_cmp, t);
    return t;
bad:
    sm_tokenizer_free(t);
    return NULL;
}

void sm_tokenizer_free(sm_tokenizer *t) {
    if (!t) return;
    sm_pretok_free(t->pretok);
    free(t->slab);
    free(t);
}

/* ---- questions ---- */

int sm_tokenizer_n_vocab(const sm_tokenizer *t) { return t->n_vocab; }
int sm_tokenizer_bos(const sm_tokenizer *t) { return t->bos; }
int sm_tokenizer_eos(const sm_tokenizer *t) { return t->eos; }
int sm_tokenizer_add_bos(const sm_tokenizer *t) { return t->add_bos && t->bos >= 0; }
int sm_tokenizer_add_eos(const sm_tokenizer *t) { return t->add_eos && t->eos >= 0; }
const char *sm_tokenizer_model(const sm_tokenizer *t) { return t->kind == TOK_BPE ? "gpt2" : "llama"; }
const char *sm_tokenizer_pre(const sm_tokenizer *t) { return t->kind == TOK_BPE ? t->pre : NULL; }
const char *sm_tokenizer_warning(const sm_tokenizer *t) { return t->warning[0] ? t->warning : NULL; }

int sm_tokenizer_is_eog(const sm_tokenizer *t, int id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

int sm_tokenizer_token_type(const sm_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab ? t->type[id] : -1;
}

int sm_tokenizer_find(const sm_tokenizer *t, const char *text, size_t len) { return tok_lookup(t, text, len); }

const char *sm_token_text(const sm_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tok[id].len;
    return t->text + t->tok[id].off;
}

/* ---- detokenizing ---- */

/* Writes bytes while they fit and counts them all. */
typedef struct {
    char *buf;
    int cap, n;
} piece_out;

static void put(piece_out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++, o->n++)
        if (o->n < o->cap) o->buf[o->n] = s[i];
}

int sm_token_to_piece(const sm_tokenizer *t, int id, char *buf, int cap, int special) {
    if (id < 0 || id >= t->n_vocab) return SM_EINVAL;
    piece_out o = {buf, cap > 0 ? cap : 0, 0};
    const char *s = t->text + t->tok[id].off;
    size_t n = t->tok[id].len;
    int type = t->type[id];
    if (type == SM_TOKEN_CONTROL || type == SM_TOKEN_UNKNOWN) {
        if (special) put(&o, s, n);
        return o.n;
    }
    if (type == SM_TOKEN_USER_DEFINED) {
        put(&o, s, n);
        return o.n;
    }
    if (t->kind == TOK_BPE) {
        if (type != SM_TOKEN_NORMAL) return 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int len = sm_utf8_decode(s + i, n - i, &cp);
            if (len == 0) { put(&o, s + i, 1); i++; continue; }
            if (cp < 0x144 && t->unmap[cp] >= 0) {
                char b = (char)t->unmap[cp];
                put(&o, &b, 1);
            } else {
                put(&o, s + i, (size_t)len); /* not in GPT-2's alphabet: kept as it is */
            }
            i += (size_t)len;
        }
        return o.n;
    }
    if (type == SM_TOKEN_BYTE) {
        unsigned v;
        if (n == 6 && sscanf(s, "<0x%2x>", &v) == 1) {
            char b = (char)v;
            put(&o, &b, 1);
        }
        return o.n;
    }
    if (type != SM_TOKEN_NORMAL) return 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            put(&o, " ", 1);
            i += 3;
        } else {
            put(&o, s + i, 1);
            i++;
        }
    }
    return o.n;
}

int sm_detokenize(const sm_tokenizer *t, const int *ids, int n, int special, char **text, size_t *len,
                  sm_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = sm_token_to_piece(t, ids[i], NULL, 0, special);
        if (k < 0) return sm_err(err, SM_EINVAL, "token id %d at position %d is outside the vocabulary of %d", ids[i], i, t->n_vocab);
        total += (size_t)k;
    }
    char *out = malloc(total + 1);
    if (!out) return sm_err(err, SM_ENOMEM, "out of memory");
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t room = total - at;
        at += (size_t)sm_token_to_piece(t, ids[i], out + at, room > INT32_MAX ? INT32_MAX : (int)room, special);
    }
    out[at] = 0;
    *text = out;
    *len = at;
    return SM_OK;
}
