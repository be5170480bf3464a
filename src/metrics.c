/* metrics.c: BLEU-4, ROUGE-L, chrF, set precision/recall/F1 and link validity (definitions in
 * metrics.h), and the per-task accumulator behind `snipmeta eval`.
 *
 * n-gram matching works on sequences of symbols (word ids for BLEU, code points for chrF): the
 * n-grams of each side are sorted and the two sorted lists merged, so a pair costs
 * O(L log L) per order rather than O(L^2).
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORDER 6

/* ---- words and symbols ---- */

static int is_word_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

void sm_words_free(char **words, int n) {
    if (!words) return;
    for (int i = 0; i < n; i++) free(words[i]);
    free(words);
}

int sm_words(const char *text, char ***words, int *n) {
    *words = NULL, *n = 0;
    int cap = 0;
    for (const char *p = text; *p;) {
        if (!is_word_byte((unsigned char)*p)) { p++; continue; }
        const char *start = p;
        while (is_word_byte((unsigned char)*p)) p++;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*words, (size_t)cap * sizeof *grown);
            if (!grown) goto oom;
            *words = grown;
        }
        char *w = malloc((size_t)(p - start) + 1);
        if (!w) goto oom;
        for (const char *q = start; q < p; q++) w[q - start] = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        w[p - start] = 0;
        (*words)[(*n)++] = w;
    }
    return SM_OK;
oom:
    sm_words_free(*words, *n);
    *words = NULL, *n = 0;
    return SM_ENOMEM;
}

/* Word ids (>= 1) for the words of hyp and ref, shared between the two sides. */
static int word_ids(const char *hyp, const char *ref, uint32_t **h, int *nh, uint32_t **r, int *nr) {
    char **wh = NULL, **wr = NULL;
    int n_wh = 0, n_wr = 0, rc = SM_ENOMEM;
    *h = *r = NULL;
    if (sm_words(hyp, &wh, &n_wh) || sm_words(ref, &wr, &n_wr)) goto done;
    *h = malloc(((size_t)n_wh + 1) * sizeof **h);
    *r = malloc(((size_t)n_wr + 1) * sizeof **r);
    if (!*h || !*r) goto done;
    /* ids by first occurrence over hyp then ref */
    for (int i = 0; i < n_wh + n_wr; i++) {
        const char *w = i < n_wh ? wh[i] : wr[i - n_wh];
        uint32_t id = (uint32_t)i + 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(w, j < n_wh ? wh[j] : wr[j - n_wh])) { id = j < n_wh ? (*h)[j] : (*r)[j - n_wh]; break; }
        if (i < n_wh) (*h)[i] = id;
        else (*r)[i - n_wh] = id;
    }
    *nh = n_wh, *nr = n_wr;
    rc = SM_OK;
done:
    if (rc) { free(*h); free(*r); *h = *r = NULL; }
    sm_words_free(wh, n_wh);
    sm_words_free(wr, n_wr);
    return rc;
}

typedef struct {
    uint32_t c[MAX_ORDER]; /* symbols of one n-gram, zero-padded past n */
} gram;

static int gram_cmp(const void *a, const void *b) {
    const gram *x = a, *y = b;
    for (int i = 0; i < MAX_ORDER; i++)
        if (x->c[i] != y->c[i]) return x->c[i] < y->c[i] ? -1 : 1;
    return 0;
}

/* The sorted n-grams of s[0..len) into g (capacity len); returns their count. */
static int sorted_grams(gram *g, const uint32_t *s, int len, int n) {
    int count = len - n + 1 > 0 ? len - n + 1 : 0;
    for (int i = 0; i < count; i++) {
        memset(&g[i], 0, sizeof g[i]);
        memcpy(g[i].c, s + i, (size_t)n * sizeof *s);
    }
    qsort(g, (size_t)count, sizeof *g, gram_cmp);
    return count;
}

/* Clipped matches: the sum over distinct n-grams of min(count in h, count in r). */
static long merge_matches(const gram *gh, int nh, const gram *gr, int nr) {
    long match = 0;
    int i = 0, j = 0;
    while (i < nh && j < nr) {
        int c = gram_cmp(&gh[i], &gr[j]);
        if (c < 0) { i++; continue; }
        if (c > 0) { j++; continue; }
        int i2 = i, j2 = j;
        while (i2 < nh && !gram_cmp(&gh[i2], &gh[i])) i2++;
        while (j2 < nr && !gram_cmp(&gr[j2], &gr[j])) j2++;
        match += i2 - i < j2 - j ? i2 - i : j2 - j;
        i = i2, j = j2;
    }
    return match;
}

/* For n = 1..max_n: total[n-1] hypothesis n-grams, ref_total[n-1] reference n-grams and
 * match[n-1] clipped matches. */
static int ngram_stats(const uint32_t *h, int nh, const uint32_t *r, int nr, int max_n, long *total, long *ref_total,
                       long *match) {
    gram *gh = malloc(((size_t)nh + 1) * sizeof *gh), *gr = malloc(((size_t)nr + 1) * sizeof *gr);
    if (!gh || !gr) { free(gh); free(gr); return SM_ENOMEM; }
    for (int n = 1; n <= max_n; n++) {
        int ch = sorted_grams(gh, h, nh, n), cr = sorted_grams(gr, r, nr, n);
        total[n - 1] = ch, ref_total[n - 1] = cr;
        match[n - 1] = merge_matches(gh, ch, gr, cr);
    }
    free(gh);
    free(gr);
    return SM_OK;
}

/* ---- sentence scores ---- */

int sm_bleu4(const char *hyp, const char *ref, double *score) {
    uint32_t *h, *r;
    int nh, nr;
    long total[4], ref_total[4], match[4];
    *score = 0;
    if (word_ids(hyp, ref, &h, &nh, &r, &nr)) return SM_ENOMEM;
    int rc = ngram_stats(h, nh, r, nr, 4, total, ref_total, match);
    free(h);
    free(r);
    if (rc || nh == 0) return rc;
    double log_sum = 0, smooth = 1;
    int order = 0;
    for (int n = 1; n <= 4 && total[n - 1] > 0; n++) {
        double p;
        if (match[n - 1] > 0) p = (double)match[n - 1] / (double)total[n - 1];
        else smooth *= 2, p = 1.0 / (smooth * (double)total[n - 1]);
        log_sum += log(p);
        order = n;
    }
    double bp = nh < nr ? exp(1.0 - (double)nr / (double)nh) : 1.0;
    *score = bp * exp(log_sum / order);
    return SM_OK;
}

int sm_rouge_l(const char *hyp, const char *ref, double *score) {
    uint32_t *h, *r;
    int nh, nr;
    *score = 0;
    if (word_ids(hyp, ref, &h, &nh, &r, &nr)) return SM_ENOMEM;
    int *row = calloc((size_t)nr + 1, sizeof *row);
    if (!row) { free(h); free(r); return SM_ENOMEM; }
    /* one row of the LCS table, updated in place (diag keeps the cell up-left) */
    for (int i = 0; i < nh; i++) {
        int diag = 0;
        for (int j = 1; j <= nr; j++) {
            int up = row[j];
            row[j] = h[i] == r[j - 1] ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    int lcs = row[nr];
    free(row);
    free(h);
    free(r);
    if (lcs > 0) {
        double p = (double)lcs / nh, rec = (double)lcs / nr;
        *score = 2 * p * rec / (p + rec);
    }
    return SM_OK;
}

static int is_space_cp(uint32_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
                                            (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
                                            c == 0x205f || c == 0x3000 || (c >= 0x1c && c <= 0x1f); }

/* The code points of s without whitespace (Python's str.split() whitespace); a byte that does not
 * start valid UTF-8 stands for itself as 0xDC00 + byte (Python's surrogateescape). */
static uint32_t *code_points(const char *s, int *n) {
    size_t len = strlen(s);
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    int k = 0;
    while (*p) {
        uint32_t c = *p;
        int extra = c >= 0xf0 && c < 0xf8 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
        if (c >= 0xf8) extra = 0;
        int ok = c < 0x80 || extra > 0;
        for (int i = 1; ok && i <= extra; i++) ok = (p[i] & 0xc0) == 0x80;
        if (ok && extra) {
            c &= 0x3fu >> extra;
            for (int i = 1; i <= extra; i++) c = (c << 6) | (p[i] & 0x3f);
            p += extra + 1;
        } else {
            if (c >= 0x80) c = 0xdc00 + c;
            p++;
        }
        if (!is_space_cp(c)) cp[k++] = c;
    }
    *n = k;
    return cp;
}

int sm_chrf(const char *hyp, const char *ref, double *score) {
    int nh, nr;
    *score = 0;
    uint32_t *h = code_points(hyp, &nh), *r = code_points(ref, &nr);
    long total[MAX_ORDER], ref_total[MAX_ORDER], match[MAX_ORDER];
    int rc = h && r ? ngram_stats(h, nh, r, nr, MAX_ORDER, total, ref_total, match) : SM_ENOMEM;
    free(h);
    free(r);
    if (rc) return rc;
    const double beta2 = 4.0;
    double sum_p = 0, sum_r = 0;
    int orders = 0;
    for (int n = 0; n < MAX_ORDER; n++) {
        if (total[n] == 0 || ref_total[n] == 0) continue;
        sum_p += (double)match[n] / (double)total[n];
        sum_r += (double)match[n] / (double)ref_total[n];
        orders++;
    }
    if (orders == 0) return SM_OK;
    double p = sum_p / orders, rec = sum_r / orders;
    if (p + rec > 0) *score = (1 + beta2) * p * rec / (beta2 * p + rec);
    return SM_OK;
}

/* ---- sets ---- */

struct sm_item_counts {
    char *name;
    long tp, fp, fn;
};

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The counts of item name, inserted (zeroed) when new; NULL when out of memory. */
static struct sm_item_counts *item_at(sm_set_scores *s, const char *name) {
    int lo = 0, hi = s->n_items;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(s->items[mid].name, name);
        if (c == 0) return &s->items[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (s->n_items == s->cap_items) {
        int cap = s->cap_items ? 2 * s->cap_items : 64;
        struct sm_item_counts *grown = realloc(s->items, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        s->items = grown, s->cap_items = cap;
    }
    char *copy = strdup(name);
    if (!copy) return NULL;
    memmove(&s->items[lo + 1], &s->items[lo], (size_t)(s->n_items - lo) * sizeof *s->items);
    s->items[lo] = (struct sm_item_counts){.name = copy};
    s->n_items++;
    return &s->items[lo];
}

static int in_list(const char *const *list, int n, const char *x) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], x)) return 1;
    return 0;
}

int sm_set_scores_add(sm_set_scores *s, const char *const *pred, int n_pred, const char *const *gold, int n_gold,
                      const char *const *index, int n_index) {
    for (int i = 0; i < n_pred; i++) {
        if (in_list(pred, i, pred[i])) continue;
        struct sm_item_counts *c = item_at(s, pred[i]);
        if (!c) return SM_ENOMEM;
        int hit = in_list(gold, n_gold, pred[i]);
        s->n_pred++, s->tp += hit;
        if (hit) c->tp++;
        else c->fp++;
        if (!index || bsearch(&pred[i], index, (size_t)n_index, sizeof *index, str_cmp)) s->n_valid++;
    }
    for (int i = 0; i < n_gold; i++) {
        if (in_list(gold, i, gold[i])) continue;
        s->n_gold++;
        if (in_list(pred, n_pred, gold[i])) continue;
        struct sm_item_counts *c = item_at(s, gold[i]);
        if (!c) return SM_ENOMEM;
        c->fn++;
    }
    return SM_OK;
}

static sm_prf prf(double tp, double n_pred, double n_gold) {
    sm_prf r = {n_pred > 0 ? tp / n_pred : 0, n_gold > 0 ? tp / n_gold : 0, 0};
    if (r.precision + r.recall > 0) r.f1 = 2 * r.precision * r.recall / (r.precision + r.recall);
    return r;
}

sm_prf sm_set_scores_micro(const sm_set_scores *s) { return prf((double)s->tp, (double)s->n_pred, (double)s->n_gold); }

sm_prf sm_set_scores_macro(const sm_set_scores *s) {
    sm_prf m = {0, 0, 0};
    for (int i = 0; i < s->n_items; i++) {
        const struct sm_item_counts *c = &s->items[i];
        sm_prf one = prf((double)c->tp, (double)(c->tp + c->fp), (double)(c->tp + c->fn));
        m.precision += one.precision, m.recall += one.recall, m.f1 += one.f1;
    }
    if (s->n_items) m.precision /= s->n_items, m.recall /= s->n_items, m.f1 /= s->n_items;
    return m;
}

void sm_set_scores_free(sm_set_scores *s) {
    if (!s) return;
    for (int i = 0; i < s->n_items; i++) free(s->items[i].name);
    free(s->items);
    *s = (sm_set_scores){0};
}

int sm_completion_items(sm_task t, const char *completion, char ***items, int *n) {
    *items = NULL, *n = 0;
    const char sep = t == SM_TASK_TAGS ? ',' : '\n';
    int cap = 0;
    for (const char *p = completion; *p;) {
        const char *end = strchr(p, sep);
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r' || b[-1] == '\n')) b--;
        if (b > a) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 8;
                char **grown = realloc(*items, (size_t)cap * sizeof *grown);
                if (!grown) goto oom;
                *items = grown;
            }
            if (!((*items)[*n] = strndup(a, (size_t)(b - a)))) goto oom;
            (*n)++;
        }
        p = *end ? end + 1 : end;
    }
    return SM_OK;
oom:
    sm_words_free(*items, *n);
    *items = NULL, *n = 0;
    return SM_ENOMEM;
}

/* ---- the accumulator ---- */

typedef struct {
    char lang[32];
    long n, n_pass, both_empty;
    double bleu, rouge, chrf; /* sums over snippets */
    sm_set_scores set, set_nolang;
} tally;

struct sm_eval {
    sm_task task;
    char **index;
    int n_index;
    tally all;
    tally *langs;
    int n_langs;
};

sm_eval *sm_eval_new(sm_task t, const char *const *links_index, int n_index) {
    sm_eval *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->task = t;
    if (links_index && n_index > 0) {
        e->index = calloc((size_t)n_index, sizeof *e->index);
        if (!e->index) { free(e); return NULL; }
        for (; e->n_index < n_index; e->n_index++)
            if (!(e->index[e->n_index] = strdup(links_index[e->n_index]))) { sm_eval_free(e); return NULL; }
        qsort(e->index, (size_t)e->n_index, sizeof *e->index, str_cmp);
    }
    return e;
}

static void tally_free(tally *t) {
    sm_set_scores_free(&t->set);
    sm_set_scores_free(&t->set_nolang);
}

void sm_eval_free(sm_eval *e) {
    if (!e) return;
    sm_words_free(e->index, e->n_index);
    tally_free(&e->all);
    for (int i = 0; i < e->n_langs; i++) tally_free(&e->langs[i]);
    free(e->langs);
    free(e);
}

static tally *lang_tally(sm_eval *e, const char *lang) {
    for (int i = 0; i < e->n_langs; i++)
        if (!strcmp(e->langs[i].lang, lang)) return &e->langs[i];
    tally *grown = realloc(e->langs, ((size_t)e->n_langs + 1) * sizeof *grown);
    if (!grown) return NULL;
    e->langs = grown;
    tally *t = &e->langs[e->n_langs++];
    *t = (tally){0};
    snprintf(t->lang, sizeof t->lang, "%s", lang);
    return t;
}

/* Items of list other than lang, into out (capacity n); returns their count. */
static int without(const char **out, char *const *list, int n, const char *lang) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], lang)) out[k++] = list[i];
    return k;
}

static int tally_add(tally *t, const sm_eval *e, const char *lang, int pass, const double text[3], char **p, int np,
                     char **g, int ng) {
    t->n++, t->n_pass += pass;
    t->bleu += text[0], t->rouge += text[1], t->chrf += text[2];
    if (e->task == SM_TASK_TITLE || e->task == SM_TASK_DESCRIPTION) return SM_OK;
    t->both_empty += np == 0 && ng == 0;
    const char *const *index = e->task == SM_TASK_LINKS ? (const char *const *)e->index : NULL;
    int rc = sm_set_scores_add(&t->set, (const char *const *)p, np, (const char *const *)g, ng, index, e->n_index);
    if (rc || e->task != SM_TASK_TAGS) return rc;
    const char **pl = malloc(((size_t)np + 1) * sizeof *pl), **gl = malloc(((size_t)ng + 1) * sizeof *gl);
    if (pl && gl) rc = sm_set_scores_add(&t->set_nolang, pl, without(pl, p, np, lang), gl, without(gl, g, ng, lang), NULL, 0);
    else rc = SM_ENOMEM;
    free(pl);
    free(gl);
    return rc;
}

int sm_eval_add(sm_eval *e, const char *lang, const char *pred, const char *gold) {
    char reason[SM_REASON_MAX];
    int pass = sm_check_completion(e->task, pred, lang, reason) == 0;
    double text[3] = {0, 0, 0};
    char **p = NULL, **g = NULL;
    int np = 0, ng = 0, rc = SM_OK;
    if (e->task == SM_TASK_TITLE || e->task == SM_TASK_DESCRIPTION) {
        rc = sm_bleu4(pred, gold, &text[0]);
        if (!rc) rc = sm_rouge_l(pred, gold, &text[1]);
        if (!rc) rc = sm_chrf(pred, gold, &text[2]);
    } else {
        rc = sm_completion_items(e->task, pred, &p, &np);
        if (!rc) rc = sm_completion_items(e->task, gold, &g, &ng);
    }
    tally *lt = rc ? NULL : lang_tally(e, lang);
    if (!rc && !lt) rc = SM_ENOMEM;
    if (!rc) rc = tally_add(&e->all, e, lang, pass, text, p, np, g, ng);
    if (!rc) rc = tally_add(lt, e, lang, pass, text, p, np, g, ng);
    sm_words_free(p, np);
    sm_words_free(g, ng);
    return rc;
}

static json_t *tally_json(const sm_eval *e, const tally *t) {
    json_t *o = json_object();
    if (!o) return NULL;
    double n = t->n > 0 ? (double)t->n : 1;
    json_object_set_new(o, "n", json_integer(t->n));
    json_object_set_new(o, "check_pass", json_real(t->n_pass / n));
    if (e->task == SM_TASK_TITLE || e->task == SM_TASK_DESCRIPTION) {
        json_object_set_new(o, "bleu4", json_real(t->bleu / n));
        json_object_set_new(o, "rouge_l", json_real(t->rouge / n));
        json_object_set_new(o, "chrf", json_real(t->chrf / n));
        return o;
    }
    sm_prf mi = sm_set_scores_micro(&t->set), ma = sm_set_scores_macro(&t->set);
    if (e->task == SM_TASK_LINKS)
        json_object_set_new(o, "validity", json_real(t->set.n_pred ? (double)t->set.n_valid / (double)t->set.n_pred : 1.0));
    json_object_set_new(o, "precision", json_real(mi.precision));
    json_object_set_new(o, "recall", json_real(mi.recall));
    json_object_set_new(o, "f1", json_real(mi.f1));
    json_object_set_new(o, "macro_precision", json_real(ma.precision));
    json_object_set_new(o, "macro_recall", json_real(ma.recall));
    json_object_set_new(o, "macro_f1", json_real(ma.f1));
    if (e->task == SM_TASK_TAGS) json_object_set_new(o, "f1_without_lang", json_real(sm_set_scores_micro(&t->set_nolang).f1));
    json_object_set_new(o, "n_pred", json_integer(t->set.n_pred));
    json_object_set_new(o, "n_gold", json_integer(t->set.n_gold));
    if (e->task == SM_TASK_LINKS) json_object_set_new(o, "empty_agreement", json_real(t->both_empty / n));
    return o;
}

static int lang_cmp(const void *a, const void *b) { return strcmp(((const tally *)a)->lang, ((const tally *)b)->lang); }

json_t *sm_eval_json(const sm_eval *e) {
    json_t *o = tally_json(e, &e->all), *by = json_object();
    if (!o || !by) { json_decref(o); json_decref(by); return NULL; }
    json_object_del(o, "n");
    json_t *head = json_pack("{s:s, s:I}", "task", sm_task_name(e->task), "n", (json_int_t)e->all.n);
    if (!head) { json_decref(o); json_decref(by); return NULL; }
    json_object_update(head, o);
    json_decref(o);
    tally *sorted = malloc(((size_t)e->n_langs + 1) * sizeof *sorted);
    if (!sorted) { json_decref(head); json_decref(by); return NULL; }
    memcpy(sorted, e->langs, (size_t)e->n_langs * sizeof *sorted);
    qsort(sorted, (size_t)e->n_langs, sizeof *sorted, lang_cmp);
    for (int i = 0; i < e->n_langs; i++) json_object_set_new(by, sorted[i].lang, tally_json(e, &sorted[i]));
    free(sorted);
    json_object_set_new(head, "by_lang", by);
    return head;
}
