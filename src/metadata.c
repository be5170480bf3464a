/* metadata.c: the four tasks for one snippet (prompts, shared prefill of activated adapters,
 * decoding with stops, constraints and trimming), plain completions, and the small helpers the
 * front ends share (language guess, binary check, the JSON form of a result); see metadata.h. */
#include "metadata.h"

#include "lang.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sm_meta_worker {
    const sm_model *model;
    sm_context *ctx;
    int n_vocab;
    float *logits;      /* (n_vocab) */
    float *seq_logits;  /* (SM_TASK_COUNT, n_vocab) the logits of the tasks decoding side by side */
    float *masked;      /* (n_vocab) logits outside the allowed set at -inf, for sampling */
    int *allowed;       /* (n_vocab) */
};

/* The longest answer of each task, in tokens. */
static const int max_gen[SM_TASK_COUNT] = {32, 128, 96, 160};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

sm_meta_params sm_meta_default_params(void) {
    sm_meta_params p = {.tasks = SM_TASK_ALL, .sampling = sm_sampler_default_params()};
    p.sampling.temp = 0;
    return p;
}

sm_meta_worker *sm_meta_worker_new(const sm_model *m, int n_ctx, sm_error *err) {
    if (n_ctx <= 0) n_ctx = SM_META_DEFAULT_CTX;
    if (m->config.n_ctx_train > 0 && n_ctx > m->config.n_ctx_train) n_ctx = m->config.n_ctx_train;
    sm_meta_worker *w = calloc(1, sizeof *w);
    if (!w) { sm_err(err, SM_ENOMEM, "out of memory for a worker"); return NULL; }
    w->model = m;
    w->n_vocab = m->config.n_vocab;
    w->logits = malloc((size_t)w->n_vocab * sizeof *w->logits);
    w->seq_logits = malloc((size_t)SM_TASK_COUNT * w->n_vocab * sizeof *w->seq_logits);
    w->masked = malloc((size_t)w->n_vocab * sizeof *w->masked);
    w->allowed = malloc((size_t)w->n_vocab * sizeof *w->allowed);
    if (!w->logits || !w->seq_logits || !w->masked || !w->allowed) {
        sm_meta_worker_free(w);
        sm_err(err, SM_ENOMEM, "out of memory for a worker");
        return NULL;
    }
    if (!(w->ctx = sm_context_new(m, n_ctx, 0, err))) { sm_meta_worker_free(w); return NULL; }
    return w;
}

void sm_meta_worker_free(sm_meta_worker *w) {
    if (!w) return;
    sm_context_free(w->ctx);
    free(w->logits);
    free(w->seq_logits);
    free(w->masked);
    free(w->allowed);
    free(w);
}

sm_context *sm_meta_worker_context(sm_meta_worker *w) { return w->ctx; }

void sm_meta_result_free(sm_meta_result *r) {
    if (!r) return;
    free(r->title);
    free(r->description);
    for (int i = 0; i < r->n_tags; i++) free(r->tags[i]);
    for (int i = 0; i < r->n_links; i++) free(r->links[i]);
    free(r->tags);
    free(r->links);
    memset(r, 0, sizeof *r);
}

/* ---- text ---- */

typedef struct { char *p; size_t len, cap; int oom; } text_buf;

static void tb_add(text_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* [BOS when the vocabulary asks for it] + the tokens of text; parse_special off, as training. */
static int tokenize(const sm_tokenizer *tok, const char *text, size_t len, int with_bos, int **ids, int *n, sm_error *err) {
    int *raw = NULL, n_raw = 0;
    int rc = sm_tokenize(tok, text, len, 0, 0, &raw, &n_raw, err);
    if (rc) return rc;
    int bos = with_bos && sm_tokenizer_add_bos(tok) && sm_tokenizer_bos(tok) >= 0;
    int *out = malloc((size_t)(n_raw + bos + 1) * sizeof *out);
    if (!out) { free(raw); return sm_err(err, SM_ENOMEM, "out of memory tokenizing"); }
    if (bos) out[0] = sm_tokenizer_bos(tok);
    memcpy(out + bos, raw, (size_t)n_raw * sizeof *raw);
    free(raw);
    *ids = out, *n = n_raw + bos;
    return SM_OK;
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80) return 1;
    size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (k == 0 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) return 0;
    return k;
}

static int count_words(const char *s, size_t n) {
    int words = 0, in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = isspace((unsigned char)s[i]);
        if (!sp && !in) words++;
        in = !sp;
    }
    return words;
}

/* The length of the first max words of s[0..n) (the cut falls after the last kept word). */
static size_t first_words(const char *s, size_t n, int max) {
    int words = 0, in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = isspace((unsigned char)s[i]);
        if (!sp && !in && ++words > max) return i;
        in = !sp;
    }
    return n;
}

/* Strips surrounding whitespace in place. */
static void trim(char *s) {
    size_t n = strlen(s), b = 0;
    while (b < n && isspace((unsigned char)s[b])) b++;
    while (n > b && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + b, n - b);
    s[n - b] = 0;
}

/* Replaces every byte that does not start a well-formed UTF-8 sequence with U+FFFD (tokens may
 * split a character, and a random or undertrained model may not put it together again), so that
 * the text is valid JSON. Returns s or a new string (s then freed); NULL when out of memory. */
static char *fix_utf8(char *s) {
    size_t bad = 0, n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0) bad++, k = 1;
        i += k;
    }
    if (!bad) return s;
    char *out = malloc(n + 2 * bad + 1), *o = out;
    if (!out) { free(s); return NULL; }
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3, k = 1;
        } else {
            memcpy(o, s + i, k);
            o += k;
        }
        i += k;
    }
    *o = 0;
    free(s);
    return out;
}

/* A title: the first line, at most 10 words, no trailing period. */
static void trim_title(char *s) {
    s[strcspn(s, "\r\n")] = 0;
    trim(s);
    s[first_words(s, strlen(s), 10)] = 0;
    trim(s);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '.' || isspace((unsigned char)s[n - 1]))) s[--n] = 0;
}

/* A description: up to a blank line, then the longest prefix ending a sentence that passes the
 * check, else the first 60 words. */
static void trim_description(char *s) {
    char *blank = strstr(s, "\n\n");
    if (blank) *blank = 0;
    trim(s);
    char reason[SM_REASON_MAX];
    if (sm_check_description(s, reason) == 0) return;
    for (size_t i = strlen(s); i > 0; i--) {
        char c = s[i - 1];
        if ((c == '.' || c == '!' || c == '?') && (!s[i] || isspace((unsigned char)s[i]))) {
            char saved = s[i];
            s[i] = 0;
            if (sm_check_description(s, reason) == 0) return;
            s[i] = saved;
        }
    }
    s[first_words(s, strlen(s), 60)] = 0;
    trim(s);
}

/* Whether decoding a title or description should stop with text so far. */
static int should_stop(sm_task t, const char *text, size_t len) {
    if (t == SM_TASK_TITLE) return memchr(text, '\n', len) != NULL;
    if (t != SM_TASK_DESCRIPTION) return 0;
    if (strstr(text, "\n\n") || count_words(text, len) > 60) return 1;
    char reason[SM_REASON_MAX];
    return sm_check_description(text, reason) != 0 && !strncmp(reason, "description-sentences", 21);
}

/* ---- decoding ---- */

/* The index of the allowed token (or end, -1) with the largest logit; the lowest id on ties. */
static int best_allowed(const float *logits, const int *allowed, int n, int can_end, int eos) {
    int best = -2;
    float best_v = -INFINITY;
    for (int i = 0; i < n; i++) {
        int id = allowed[i];
        if (best == -2 || logits[id] > best_v || (logits[id] == best_v && id < best)) best = id, best_v = logits[id];
    }
    if (can_end && eos >= 0 && (best == -2 || logits[eos] > best_v || (logits[eos] == best_v && eos < best))) best = eos;
    if (best == -2 && can_end) best = -1;
    return best;
}

static int blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == 0;
}

/* The next token of a title or description that has no word yet: the best (or a sampled) token
 * that neither ends the text nor holds a newline, so that the answer is never empty. */
static int first_word_token(sm_meta_worker *w, const float *logits, sm_sampler *sampler) {
    const sm_tokenizer *tok = w->model->tokenizer;
    memcpy(w->masked, logits, (size_t)w->n_vocab * sizeof *w->masked);
    char piece[64];
    int id = 0;
    for (int tries = 0; tries < 256; tries++) {
        id = sampler ? sm_sample(sampler, w->masked) : sm_argmax(w->masked, w->n_vocab);
        int len = sm_token_to_piece(tok, id, piece, sizeof piece, 0);
        int ok = !sm_tokenizer_is_eog(tok, id) && id != sm_tokenizer_bos(tok) && len > 0 &&
                 !memchr(piece, '\n', len < (int)sizeof piece ? (size_t)len : sizeof piece);
        if (ok) break;
        w->masked[id] = -INFINITY;
    }
    return id;
}

typedef struct {
    sm_task task;                   /* SM_TASK_COUNT: a plain completion */
    const sm_constraint *constraint;
    const char *first;
    int max_tokens;
    const char *const *stop;
    int n_stop;
} decode_spec;

/* The decoding of one answer, one token at a time: what decoder_step needs between steps. */
typedef struct {
    decode_spec d;
    sm_sampler *sampler;    /* NULL: greedy */
    sm_constraint_state st;
    text_buf out;
    int n_gen;
    int ended;              /* stopped by the model, a stop rule or the constraint, not by max_tokens */
} decoder;

static void decoder_init(decoder *dc, const decode_spec *d, sm_sampler *sampler) {
    memset(dc, 0, sizeof *dc);
    dc->d = *d;
    dc->sampler = sampler;
    if (d->constraint) sm_constraint_start(d->constraint, d->first, &dc->st);
    tb_add(&dc->out, "", 0);
}

/* One step: picks the next token from logits (n_vocab, the logits after the text so far) and adds
 * its piece to the text. pos is the position the token would take, n_ctx the context's size.
 * Returns 1 with *next set when decoding goes on (the caller runs *next through the model and
 * calls again with the logits after it), 0 when the answer is done, or SM_ENOMEM. */
static int decoder_step(sm_meta_worker *w, decoder *dc, const float *logits, int pos, int n_ctx, int *next, sm_error *err) {
    const decode_spec *d = &dc->d;
    const sm_tokenizer *tok = w->model->tokenizer;
    int eos = sm_tokenizer_eos(tok), bos = sm_tokenizer_bos(tok);
    sm_sampler *sampler = dc->sampler;
    int id;
    if (d->constraint) {
        int can_end = 0;
        int n = sm_constraint_allowed(d->constraint, d->first, &dc->st, w->allowed, &can_end);
        if (!sampler) {
            id = best_allowed(logits, w->allowed, n, can_end, eos);
        } else if (n == 0) {
            id = can_end ? -1 : -2;
        } else {
            for (int i = 0; i < w->n_vocab; i++) w->masked[i] = -INFINITY;
            for (int i = 0; i < n; i++) w->masked[w->allowed[i]] = logits[w->allowed[i]];
            if (can_end && eos >= 0) w->masked[eos] = logits[eos];
            id = sm_sample(sampler, w->masked);
        }
        if (id < 0) { dc->ended = id == -1; return 0; } /* -1: the output is complete; -2: a dead end */
    } else if (d->task <= SM_TASK_DESCRIPTION && blank(dc->out.p)) {
        id = first_word_token(w, logits, sampler);
    } else {
        id = sampler ? sm_sample(sampler, logits) : sm_argmax(logits, w->n_vocab);
    }
    if (sm_tokenizer_is_eog(tok, id) || id == bos) { dc->ended = 1; return 0; }
    char piece[256];
    int len = sm_token_to_piece(tok, id, piece, sizeof piece, 0);
    if (len > (int)sizeof piece) len = (int)sizeof piece; /* only unusual control pieces are this long */
    if (len > 0) tb_add(&dc->out, piece, (size_t)len);
    if (dc->out.oom) return sm_err(err, SM_ENOMEM, "out of memory decoding");
    if (d->constraint && len > 0) sm_constraint_advance(d->constraint, d->first, &dc->st, piece, len);
    ++dc->n_gen;
    if (d->task < SM_TASK_COUNT && should_stop(d->task, dc->out.p, dc->out.len)) { dc->ended = 1; return 0; }
    for (int i = 0; i < d->n_stop; i++) {
        char *hit = strstr(dc->out.p, d->stop[i]);
        if (hit) {
            *hit = 0, dc->out.len = (size_t)(hit - dc->out.p), dc->ended = 1;
            return 0;
        }
    }
    if (dc->n_gen >= d->max_tokens || pos >= n_ctx) return 0;
    *next = id;
    return 1;
}

/* Decodes one answer alone from w->logits (the prompt's last logits) into *out; sets *n_gen and
 * *ended (see decoder). */
static int decode(sm_meta_worker *w, const decode_spec *d, sm_sampler *sampler, text_buf *out, int *n_gen,
                  int *ended, sm_error *err) {
    decoder dc;
    decoder_init(&dc, d, sampler);
    int rc, next;
    while ((rc = decoder_step(w, &dc, w->logits, sm_context_pos(w->ctx), sm_context_n_ctx(w->ctx), &next, err)) == 1)
        if ((rc = sm_forward(w->ctx, &next, 1, w->logits, 0, err))) break;
    *out = dc.out, *n_gen = dc.n_gen, *ended = dc.ended;
    return rc < 0 ? rc : SM_OK;
}

/* Splits a tags or links completion into the items that are whole members of the constraint
 * (or the required first item), in order, without duplicates. */
static int split_items(const char *text, const char *sep, const sm_constraint *c, const char *first, char ***out,
                       int *n_out) {
    char **items = calloc(SM_CONSTRAINT_MAX_ITEMS, sizeof *items);
    if (!items) return SM_ENOMEM;
    int n = 0;
    size_t sep_len = strlen(sep);
    const char *p = text;
    while (*p && n < SM_CONSTRAINT_MAX_ITEMS) {
        const char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *item = strndup(p, len);
        if (!item) break;
        trim(item);
        int known = n == 0 && first && *first ? !strcmp(item, first) : 0;
        for (int i = 0; !known && i < sm_constraint_size(c); i++) known = !strcmp(sm_constraint_item(c, i), item);
        for (int i = 0; known && i < n; i++) known = strcmp(items[i], item) != 0;
        if (known) items[n++] = item;
        else free(item);
        if (!e) break;
        p = e + sep_len;
    }
    *out = items, *n_out = n;
    return SM_OK;
}

/* ---- the tasks ---- */

static int valid_lang(const char *lang) {
    if (!lang || !*lang || strlen(lang) > 40) return 0;
    for (const char *p = lang; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return 0;
    return 1;
}

/* One task's tokens: the prompt (standard) or the marker line after the shared prefix (activated). */
typedef struct {
    int *ids;
    int n;
} tokens;

/* The prompt of task t split at its last line (the marker line): prefix [0, split), marker after. */
static size_t marker_split(const char *prompt) {
    size_t n = strlen(prompt);
    size_t i = n > 0 ? n - 1 : 0; /* the prompt ends with the marker line's newline */
    while (i > 0 && prompt[i - 1] != '\n') i--;
    return i;
}

/* The marker line of prompt (after the shared prefix), tokenized without BOS. */
static int marker_tokens(const sm_tokenizer *tok, const char *prompt, tokens *out, sm_error *err) {
    size_t split = marker_split(prompt);
    free(out->ids), out->ids = NULL;
    return tokenize(tok, prompt + split, strlen(prompt + split), 0, &out->ids, &out->n, err);
}

/* How task t's answer is decoded. */
static decode_spec task_spec(sm_registry *r, sm_task t, const char *lang, const sm_meta_params *p) {
    decode_spec d = {.task = t, .max_tokens = max_gen[t]};
    if (p->max_tokens > 0 && p->max_tokens < max_gen[t]) d.max_tokens = p->max_tokens;
    if (t == SM_TASK_TAGS) d.constraint = sm_registry_tags(r), d.first = lang;
    if (t == SM_TASK_LINKS) d.constraint = sm_registry_links(r);
    return d;
}

/* Task t's sampler, seeded from (seed, t); NULL when greedy. */
static int task_sampler(const sm_meta_params *p, sm_task t, int n_vocab, sm_sampler **out, sm_error *err) {
    *out = NULL;
    if (!(p->sampling.temp > 0)) return SM_OK;
    sm_sampler_params sp = p->sampling;
    sp.seed = p->sampling.seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(t + 1));
    if (!(*out = sm_sampler_new(&sp, n_vocab))) return sm_err(err, SM_ENOMEM, "out of memory");
    return SM_OK;
}

/* Task t's answer from the decoded text (which it takes): trimmed or split into items, checked,
 * stored in out. */
static int finish_task(sm_registry *r, sm_task t, const char *lang, char *s, sm_meta_result *out, sm_error *err) {
    if (t <= SM_TASK_DESCRIPTION && !(s = fix_utf8(s))) return sm_err(err, SM_ENOMEM, "out of memory");
    if (t == SM_TASK_TITLE) trim_title(s), out->title = s;
    else if (t == SM_TASK_DESCRIPTION) trim_description(s), out->description = s;
    else {
        int rc = t == SM_TASK_TAGS ? split_items(s, ", ", sm_registry_tags(r), lang, &out->tags, &out->n_tags)
                                   : split_items(s, "\n", sm_registry_links(r), NULL, &out->links, &out->n_links);
        free(s);
        if (rc) return sm_err(err, SM_ENOMEM, "out of memory");
    }
    /* a check writes its reason only when it fails; out->check[t] stays "" otherwise */
    if (t == SM_TASK_TITLE) sm_check_title(out->title, out->check[t]);
    if (t == SM_TASK_DESCRIPTION) sm_check_description(out->description, out->check[t]);
    if (t == SM_TASK_TAGS) sm_check_tags((const char *const *)out->tags, out->n_tags, lang, out->check[t]);
    if (t == SM_TASK_LINKS) sm_check_links((const char *const *)out->links, out->n_links, out->check[t]);
    out->tasks |= 1u << t;
    return SM_OK;
}

/* The activated tasks side by side, after the shared prefill (the context holds the prefix, of
 * prefix_n positions): one sequence per task (sm_context_seqs_begin), each with its adapter; the
 * marker lines in one forward pass, then one pass per step with a row for each task still
 * decoding; a task that is done drops out. Each task's answer and token count are those of
 * decoding it alone (up to float summation order); its time is from the start of the batch to
 * its last step. Sets the bits of the tasks it ran in *done: none when the context has no room
 * for every answer beside the prefix or the sequences' caches cannot be allocated (the caller
 * then decodes them one after another). */
static int run_batched(sm_meta_worker *w, sm_registry *r, const char *lang, const sm_meta_params *p, const sm_lora *const adapter[],
                       char *const prompt[], int prefix_n, tokens marker[], sm_meta_result *out, unsigned *done, sm_error *err) {
    double t0 = now_ms();
    const sm_tokenizer *tok = w->model->tokenizer;
    int task[SM_TASK_COUNT], n_seq = 0, n_extra = 1, rc = SM_OK, total = 0;
    const sm_lora *seq_adapter[SM_TASK_COUNT];
    float scale[SM_TASK_COUNT];
    decoder dc[SM_TASK_COUNT];
    for (int t = 0; t < SM_TASK_COUNT && !rc; t++) {
        if (!adapter[t] || !adapter[t]->activated) continue;
        rc = marker_tokens(tok, prompt[t], &marker[t], err);
        if (rc) break;
        decode_spec d = task_spec(r, (sm_task)t, lang, p);
        if (marker[t].n + d.max_tokens > n_extra) n_extra = marker[t].n + d.max_tokens;
        total += marker[t].n;
        sm_sampler *sampler = NULL;
        if ((rc = task_sampler(p, (sm_task)t, w->n_vocab, &sampler, err))) break;
        decoder_init(&dc[n_seq], &d, sampler);
        task[n_seq] = t, seq_adapter[n_seq] = adapter[t], scale[n_seq] = 1.0f;
        n_seq++;
    }
    int *ids = rc ? NULL : malloc((size_t)(total > n_seq ? total : n_seq) * sizeof *ids);
    if (!rc && !ids) rc = sm_err(err, SM_ENOMEM, "out of memory");
    if (!rc) rc = sm_context_truncate(w->ctx, prefix_n, err); /* the prefix as the base computed it */
    /* no room for every answer beside the prefix, or no memory for the sequences' caches: the
     * tasks go one after another instead (the caller runs what is not in *done) */
    int fallback = !rc && prefix_n + n_extra > sm_context_n_ctx(w->ctx);
    if (!rc && !fallback) {
        rc = sm_context_seqs_begin(w->ctx, n_seq, seq_adapter, scale, n_extra, err);
        if (rc == SM_ENOMEM) fallback = 1, rc = SM_OK;
    }
    int n_tokens[SM_TASK_COUNT], n = 0;
    for (int k = 0; k < n_seq && !rc && !fallback; k++) {
        memcpy(ids + n, marker[task[k]].ids, (size_t)marker[task[k]].n * sizeof *ids);
        n += n_tokens[k] = marker[task[k]].n;
    }
    if (!rc && !fallback && n == 0) rc = sm_err(err, SM_EINVAL, "the marker lines are empty");
    if (!rc && !fallback) rc = sm_forward_seqs(w->ctx, ids, n_tokens, w->seq_logits, err);
    while (!rc && !fallback) {
        int running = 0;
        for (int k = 0, j = 0; k < n_seq && !rc; k++) {
            if (n_tokens[k] == 0) continue;
            int t = task[k], next = 0;
            const float *logits = w->seq_logits + (size_t)j++ * w->n_vocab;
            rc = decoder_step(w, &dc[k], logits, sm_context_seq_pos(w->ctx, k), sm_context_n_ctx(w->ctx), &next, err);
            if (rc == 1) {
                rc = SM_OK;
                ids[running++] = next, n_tokens[k] = 1;
                continue;
            }
            n_tokens[k] = 0;
            if (rc) break;
            out->n_generated[t] = dc[k].n_gen;
            rc = finish_task(r, (sm_task)t, lang, dc[k].out.p, out, err);
            dc[k].out.p = NULL;
            out->task_ms[t] = now_ms() - t0;
            *done |= 1u << t;
        }
        if (rc || running == 0) break;
        rc = sm_forward_seqs(w->ctx, ids, n_tokens, w->seq_logits, err);
    }
    sm_context_seqs_end(w->ctx);
    for (int k = 0; k < n_seq; k++) {
        free(dc[k].out.p);
        sm_sampler_free(dc[k].sampler);
    }
    free(ids);
    return rc;
}

int sm_meta_run(sm_meta_worker *w, sm_registry *r, const char *lang, const char *code, const sm_meta_params *p,
                sm_meta_result *out, sm_error *err) {
    memset(out, 0, sizeof *out);
    double t_start = now_ms();
    if (!valid_lang(lang)) return sm_err(err, SM_EINVAL, "bad language '%.40s' (expected lowercase kebab-case, e.g. python)", lang ? lang : "");
    unsigned tasks = p->tasks & SM_TASK_ALL;
    if (!tasks) return sm_err(err, SM_EINVAL, "no task asked for");
    const sm_tokenizer *tok = w->model->tokenizer;
    const sm_lora *adapter[SM_TASK_COUNT] = {0};
    tokens full[SM_TASK_COUNT] = {0}, marker[SM_TASK_COUNT] = {0}, prefix = {0};
    char *prompt[SM_TASK_COUNT] = {0};
    int rc = SM_OK, any_activated = 0;
    for (int t = 0; t < SM_TASK_COUNT && !rc; t++) {
        if (!(tasks & (1u << t))) continue;
        adapter[t] = sm_registry_acquire(r, sm_task_name((sm_task)t));
        if (!adapter[t])
            rc = sm_err(err, SM_EINVAL, "no adapter for task '%s' (expected %s/%s.gguf)", sm_task_name((sm_task)t),
                        sm_registry_dir(r), sm_task_name((sm_task)t));
        else any_activated |= adapter[t]->activated;
    }

    /* the prompts, with the code cut until every prompt and its answer fit the context */
    size_t budget = p->max_code_bytes ? p->max_code_bytes : SM_META_MAX_CODE_BYTES;
    int n_ctx = sm_context_n_ctx(w->ctx);
    for (int fits = 0; !rc && !fits;) {
        fits = 1;
        out->n_prompt_tokens = 0;
        for (int t = 0; t < SM_TASK_COUNT && !rc && fits; t++) {
            if (!adapter[t]) continue;
            free(prompt[t]);
            free(full[t].ids), full[t].ids = NULL;
            if (!(prompt[t] = sm_student_prompt(lang, code, (sm_task)t, budget))) { rc = sm_err(err, SM_ENOMEM, "out of memory"); break; }
            rc = tokenize(tok, prompt[t], strlen(prompt[t]), 1, &full[t].ids, &full[t].n, err);
            if (full[t].n > out->n_prompt_tokens) out->n_prompt_tokens = full[t].n;
            fits = full[t].n + max_gen[t] + 8 <= n_ctx; /* 8: the activated split may tokenize a little longer */
        }
        if (!rc && !fits) {
            out->code_cut = 1;
            if (budget < 32) rc = sm_err(err, SM_EINVAL, "the prompt does not fit the context of %d positions even with the code cut", n_ctx);
            budget = budget > strlen(code) ? strlen(code) * 3 / 4 : budget * 3 / 4;
        }
    }
    if (!rc && strlen(code) > budget) out->code_cut = 1;

    /* activated adapters: the prefix once, without adapters */
    int first_task = -1;
    for (int t = 0; t < SM_TASK_COUNT; t++)
        if (adapter[t] && first_task < 0) first_task = t;
    if (!rc && any_activated) {
        double t0 = now_ms();
        size_t split = marker_split(prompt[first_task]);
        rc = tokenize(tok, prompt[first_task], split, 1, &prefix.ids, &prefix.n, err);
        if (!rc) rc = sm_context_truncate(w->ctx, 0, err);
        if (!rc) rc = sm_context_set_adapters(w->ctx, NULL, NULL, 0, err);
        sm_context_set_adapter_start(w->ctx, 0);
        if (!rc) rc = sm_forward(w->ctx, prefix.ids, prefix.n, NULL, 0, err);
        out->prefill_ms = now_ms() - t0;
    }

    /* activated tasks first, while the cache still holds the prefix as the base computed it (side
     * by side when there are several, unless asked not to); a standard task then overwrites it
     * with its own adapter's values */
    int n_activated = 0;
    for (int t = 0; t < SM_TASK_COUNT; t++) n_activated += adapter[t] && adapter[t]->activated;
    unsigned done = 0;
    if (!rc && n_activated >= 2 && !p->sequential) rc = run_batched(w, r, lang, p, adapter, prompt, prefix.n, marker, out, &done, err);
    for (int k = 0; k < 2 * SM_TASK_COUNT && !rc; k++) {
        int t = k % SM_TASK_COUNT;
        if (!adapter[t] || adapter[t]->activated != (k < SM_TASK_COUNT) || (done & (1u << t))) continue;
        double t0 = now_ms();
        float scale = 1.0f;
        const sm_lora *a = adapter[t];
        if (a->activated) {
            rc = marker_tokens(tok, prompt[t], &marker[t], err);
            if (!rc) rc = sm_context_truncate(w->ctx, prefix.n, err);
            if (!rc) rc = sm_context_set_adapters(w->ctx, &a, &scale, 1, err);
            sm_context_set_adapter_start(w->ctx, prefix.n);
            if (!rc) rc = sm_forward(w->ctx, marker[t].ids, marker[t].n, w->logits, 0, err);
        } else {
            rc = sm_context_truncate(w->ctx, 0, err);
            if (!rc) rc = sm_context_set_adapters(w->ctx, &a, &scale, 1, err);
            sm_context_set_adapter_start(w->ctx, 0);
            if (!rc) rc = sm_forward(w->ctx, full[t].ids, full[t].n, w->logits, 0, err);
        }
        sm_sampler *sampler = NULL;
        if (!rc) rc = task_sampler(p, (sm_task)t, w->n_vocab, &sampler, err);
        if (rc) break;
        decode_spec d = task_spec(r, (sm_task)t, lang, p);
        text_buf text = {0};
        int ended = 0;
        rc = decode(w, &d, sampler, &text, &out->n_generated[t], &ended, err);
        sm_sampler_free(sampler);
        if (rc) { free(text.p); break; }
        if ((rc = finish_task(r, (sm_task)t, lang, text.p, out, err))) break;
        out->task_ms[t] = now_ms() - t0;
    }
    sm_context_set_adapters(w->ctx, NULL, NULL, 0, NULL);
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        sm_registry_release(r, adapter[t]);
        free(prompt[t]);
        free(full[t].ids);
        free(marker[t].ids);
    }
    free(prefix.ids);
    if (rc) sm_meta_result_free(out);
    out->total_ms = now_ms() - t_start;
    return rc;
}

json_t *sm_meta_result_json(const sm_meta_result *r, const char *lang, int timings) {
    json_t *o = json_object(), *checks = json_object();
    if (!o || !checks) { json_decref(o); json_decref(checks); return NULL; }
    json_object_set_new(o, "lang", json_string(lang));
    if (r->tasks & (1u << SM_TASK_TITLE)) json_object_set_new(o, "title", json_string(r->title));
    if (r->tasks & (1u << SM_TASK_DESCRIPTION)) json_object_set_new(o, "description", json_string(r->description));
    if (r->tasks & (1u << SM_TASK_TAGS)) {
        json_t *a = json_array();
        for (int i = 0; i < r->n_tags; i++) json_array_append_new(a, json_string(r->tags[i]));
        json_object_set_new(o, "tags", a);
    }
    if (r->tasks & (1u << SM_TASK_LINKS)) {
        json_t *a = json_array();
        for (int i = 0; i < r->n_links; i++) json_array_append_new(a, json_string(r->links[i]));
        json_object_set_new(o, "links", a);
    }
    for (int t = 0; t < SM_TASK_COUNT; t++)
        if ((r->tasks & (1u << t)) && r->check[t][0]) json_object_set_new(checks, sm_task_name((sm_task)t), json_string(r->check[t]));
    json_object_set_new(o, "checks", checks);
    if (timings) {
        json_t *tm = json_object();
        json_object_set_new(tm, "prefill_ms", json_real(r->prefill_ms));
        for (int t = 0; t < SM_TASK_COUNT; t++) {
            if (!(r->tasks & (1u << t))) continue;
            char key[32];
            snprintf(key, sizeof key, "%s_ms", sm_task_name((sm_task)t));
            json_object_set_new(tm, key, json_real(r->task_ms[t]));
        }
        json_object_set_new(tm, "total_ms", json_real(r->total_ms));
        json_object_set_new(tm, "prompt_tokens", json_integer(r->n_prompt_tokens));
        json_object_set_new(o, "timings", tm);
    }
    return o;
}

/* ---- helpers ---- */

const char *sm_meta_guess_lang(const char *path, const char *code) {
    sm_lang l = sm_lang_detect(path ? path : "", code, strlen(code) < 4096 ? strlen(code) : 4096);
    if (l != SM_LANG_NONE) return sm_lang_name(l);
    /* keywords: each distinct one present scores 1; the first best language wins */
    static const struct { const char *lang; const char *words[9]; } table[] = {
        {"python", {"def ", "import ", "self.", "elif ", "None", "__init__", "):\n", "print("}},
        {"cpp", {"std::", "template", "namespace ", "#include <iostream>", "cout", "public:", "nullptr", "auto "}},
        {"c", {"#include", "printf(", "->", "malloc(", "int main", "sizeof", "NULL", "static "}},
        {"go", {"func ", "package ", ":=", "fmt.", "err != nil", "[]string", "go func"}},
        {"rust", {"fn ", "let mut", "impl ", "pub fn", "&self", "println!", "&str", "match "}},
        {"java", {"public class", "public static", "private ", "System.out", "@Override", "import java", "new ", "String "}},
        {"typescript", {": string", ": number", "interface ", ": boolean", "export type", "const ", "=>"}},
        {"javascript", {"function ", "const ", "=>", "console.log", "let ", "require(", "document.", "var "}},
        {"php", {"<?php", "$this->", "echo ", "public function", "=> $", "$_"}},
        {"perl", {"my $", "sub ", "use strict", "=~", "@_", "my @"}},
        {"lua", {"local ", "function ", "end\n", "then\n", "~=", "elseif "}},
        {"shell", {"#!/bin/", "fi\n", "esac", "echo ", "$(", "then\n", "done\n", "${"}},
        {"ruby", {"def ", "end\n", "puts ", "attr_", "do |", "elsif ", "require '"}},
    };
    const char *best = NULL;
    int best_score = 0;
    size_t len = strlen(code) < 16384 ? strlen(code) : 16384; /* the head tells */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int score = 0;
        for (int k = 0; k < 9 && table[i].words[k]; k++) score += memmem(code, len, table[i].words[k], strlen(table[i].words[k])) != NULL;
        if (score > best_score) best = table[i].lang, best_score = score;
    }
    return best_score >= 2 ? best : NULL;
}

int sm_meta_is_binary(const char *text, size_t len) {
    size_t control = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0) return 1;
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f) control++;
        size_t k = utf8_len(text + i, len - i);
        if (k == 0) return 1;
        i += k;
    }
    return control * 100 > len;
}

int sm_meta_complete(sm_meta_worker *w, const sm_lora *l, const char *prompt, int max_tokens,
                     const sm_sampler_params *sampling, const char *const *stop, int n_stop, char **text,
                     const char **finish, int *n_prompt_tokens, int *n_completion_tokens, sm_error *err) {
    *text = NULL;
    int *ids = NULL, n = 0;
    int rc = tokenize(w->model->tokenizer, prompt, strlen(prompt), 1, &ids, &n, err);
    if (rc) return rc;
    if (n == 0) { free(ids); return sm_err(err, SM_EINVAL, "the prompt is empty and the vocabulary adds no BOS"); }
    *n_prompt_tokens = n;
    if (max_tokens < 1 || n + max_tokens > sm_context_n_ctx(w->ctx)) {
        free(ids);
        return sm_err(err, SM_EINVAL, "%d prompt tokens and max_tokens %d do not fit the context of %d positions", n,
                      max_tokens, sm_context_n_ctx(w->ctx));
    }
    float scale = 1.0f;
    rc = sm_context_truncate(w->ctx, 0, err);
    if (!rc) rc = l ? sm_context_set_adapters(w->ctx, &l, &scale, 1, err) : sm_context_set_adapters(w->ctx, NULL, NULL, 0, err);
    sm_context_set_adapter_start(w->ctx, 0);
    if (!rc) rc = sm_forward(w->ctx, ids, n, w->logits, 0, err);
    free(ids);
    sm_sampler *sampler = NULL;
    if (!rc && sampling->temp > 0 && !(sampler = sm_sampler_new(sampling, w->n_vocab))) rc = sm_err(err, SM_ENOMEM, "out of memory");
    text_buf out = {0};
    int ended = 0;
    decode_spec d = {.task = SM_TASK_COUNT, .max_tokens = max_tokens, .stop = stop, .n_stop = n_stop};
    if (!rc) rc = decode(w, &d, sampler, &out, n_completion_tokens, &ended, err);
    sm_sampler_free(sampler);
    sm_context_set_adapters(w->ctx, NULL, NULL, 0, NULL);
    if (rc) { free(out.p); return rc; }
    if (!(*text = fix_utf8(out.p))) return sm_err(err, SM_ENOMEM, "out of memory");
    *finish = ended ? "stop" : "length";
    return SM_OK;
}
