/* batch.c: examples from task JSONL and text files, and packed (B,T) batches (batch.h). */
#include "batch.h"

#include "jsonl.h"
#include "sha256.h"
#include "tasks.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a growing set of examples ---- */

typedef struct {
    sm_examples *ex;
    size_t cap_ex, cap_tok;
    int oom;
} builder;

static int builder_init(builder *bd) {
    memset(bd, 0, sizeof *bd);
    bd->ex = calloc(1, sizeof *bd->ex);
    if (!bd->ex || !(bd->ex->off = calloc(1, sizeof(size_t)))) {
        free(bd->ex);
        return SM_ENOMEM;
    }
    return SM_OK;
}

static int builder_add(builder *bd, const int *x, int len, int n_prompt) {
    sm_examples *ex = bd->ex;
    if ((size_t)ex->n + 1 >= bd->cap_ex) {
        size_t cap = bd->cap_ex ? 2 * bd->cap_ex : 256;
        size_t *off = realloc(ex->off, (cap + 1) * sizeof *off);
        if (!off) return SM_ENOMEM;
        ex->off = off;
        int *np = realloc(ex->n_prompt, cap * sizeof *np);
        if (!np) return SM_ENOMEM;
        ex->n_prompt = np;
        bd->cap_ex = cap;
    }
    if (ex->n_tokens + (size_t)len > bd->cap_tok) {
        size_t cap = bd->cap_tok ? bd->cap_tok : 4096;
        while (cap < ex->n_tokens + (size_t)len) cap *= 2;
        int *t = realloc(ex->tokens, cap * sizeof *t);
        if (!t) return SM_ENOMEM;
        ex->tokens = t;
        bd->cap_tok = cap;
    }
    memcpy(ex->tokens + ex->n_tokens, x, (size_t)len * sizeof *x);
    ex->n_tokens += (size_t)len;
    ex->n_prompt[ex->n] = n_prompt;
    ex->n_targets += (size_t)(len - 1 - (n_prompt > 1 ? n_prompt - 1 : 0));
    ex->n++;
    ex->off[ex->n] = ex->n_tokens;
    return SM_OK;
}

void sm_examples_free(sm_examples *ex) {
    if (!ex) return;
    free(ex->off);
    free(ex->n_prompt);
    free(ex->tokens);
    free(ex);
}

/* ---- task JSONL ---- */

static int hash_file(sm_sha256_ctx *h, const char *path, sm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sm_err(err, SM_EIO, "%s: cannot open", path);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) sm_sha256_update(h, buf, k);
    int bad = ferror(f);
    fclose(f);
    return bad ? sm_err(err, SM_EIO, "%s: read error", path) : SM_OK;
}

/* A prompt in the student format, taken apart: "Language: L\nCode:\nCODE\n### MARKER:\n". */
typedef struct {
    char *lang, *code;
    int task;
} student_parts;

static int parse_student(const char *prompt, student_parts *sp) {
    static const char lang_tag[] = "Language: ", code_tag[] = "\nCode:\n";
    if (strncmp(prompt, lang_tag, sizeof lang_tag - 1)) return -1;
    const char *lang = prompt + sizeof lang_tag - 1;
    const char *code = strstr(lang, code_tag);
    const char *marker = NULL;
    for (const char *p = strstr(prompt, "\n### "); p; p = strstr(p + 1, "\n### ")) marker = p;
    if (!code || !marker || marker < code + sizeof code_tag - 2 || memchr(lang, '\n', (size_t)(code - lang)) != NULL) return -1;
    for (int t = 0; t < SM_TASK_COUNT; t++) {
        const char *m = sm_task_marker((sm_task)t);
        size_t ml = strlen(m);
        if (!strncmp(marker + 5, m, ml) && !strcmp(marker + 5 + ml, ":\n")) {
            const char *cs = code + sizeof code_tag - 1;
            if (cs > marker) return -1;
            sp->lang = strndup(lang, (size_t)(code - lang));
            sp->code = strndup(cs, (size_t)(marker - cs));
            sp->task = t;
            if (!sp->lang || !sp->code) { free(sp->lang); free(sp->code); return -2; }
            return 0;
        }
    }
    return -1;
}

static int tokenize(const sm_tokenizer *tok, const char *s, size_t len, int **ids, int *n, sm_error *err) {
    return sm_tokenize(tok, s, len, 0, 0, ids, n, err);
}

/* Tokenizes prompt + completion into x (BOS first when asked for; no EOS yet) and returns the
 * number of prompt tokens in *n_prompt. *merged is set when the prompt's tokens are not a prefix
 * of the whole text's (then n_prompt is the common prefix). */
static int encode_pair(const sm_tokenizer *tok, const char *prompt, const char *completion, int **x, int *n_x,
                       int *n_prompt, int *merged, sm_error *err) {
    size_t lp = strlen(prompt), lc = strlen(completion);
    char *text = malloc(lp + lc + 1);
    if (!text) return sm_err(err, SM_ENOMEM, "out of memory");
    memcpy(text, prompt, lp);
    memcpy(text + lp, completion, lc + 1);
    int *all = NULL, *pt = NULL, n_all = 0, n_pt = 0;
    int rc = tokenize(tok, text, lp + lc, &all, &n_all, err);
    if (!rc) rc = tokenize(tok, prompt, lp, &pt, &n_pt, err);
    free(text);
    if (rc) { free(all); free(pt); return rc; }
    int common = 0;
    while (common < n_pt && common < n_all && pt[common] == all[common]) common++;
    *merged = common < n_pt;
    int bos = sm_tokenizer_add_bos(tok) && sm_tokenizer_bos(tok) >= 0;
    int *out = malloc(((size_t)n_all + 2) * sizeof *out);
    if (!out) { free(all); free(pt); return sm_err(err, SM_ENOMEM, "out of memory"); }
    int n = 0;
    if (bos) out[n++] = sm_tokenizer_bos(tok);
    memcpy(out + n, all, (size_t)n_all * sizeof *out);
    *x = out;
    *n_x = n + n_all;
    *n_prompt = n + common;
    free(all);
    free(pt);
    return SM_OK;
}

/* One JSONL record as an example of at most max_len tokens (EOS included). */
static int add_record(builder *bd, const sm_tokenizer *tok, const char *prompt, const char *completion, int max_len,
                      sm_error *err) {
    int *x = NULL, n_x = 0, n_prompt = 0, merged = 0;
    int rc = encode_pair(tok, prompt, completion, &x, &n_x, &n_prompt, &merged, err);
    if (rc) return rc;
    int eos = sm_tokenizer_eos(tok);
    int cut = 0;
    if (n_x + (eos >= 0) > max_len) {
        cut = 1;
        /* the student format: cut the code by lines, as at inference, until it fits */
        student_parts sp = {0};
        if (parse_student(prompt, &sp) == 0) {
            size_t budget = strlen(sp.code);
            for (int tries = 0; tries < 40 && budget > 0; tries++) {
                /* shrink the code's bytes in proportion to the tokens over, and at least by 1/16 */
                double over = (double)(n_x + (eos >= 0) - max_len) / (double)(n_x > 0 ? n_x : 1);
                size_t less = (size_t)(budget * (over + 1.0 / 16)) + 1;
                budget = less < budget ? budget - less : 0;
                if (!budget) break;
                char *p2 = sm_student_prompt(sp.lang, sp.code, (sm_task)sp.task, budget);
                if (!p2) { rc = sm_err(err, SM_ENOMEM, "out of memory"); break; }
                int *x2 = NULL, n2 = 0, np2 = 0, m2 = 0;
                rc = encode_pair(tok, p2, completion, &x2, &n2, &np2, &m2, err);
                free(p2);
                if (rc) break;
                free(x);
                x = x2, n_x = n2, n_prompt = np2, merged = m2;
                if (n_x + (eos >= 0) <= max_len) break;
            }
        }
        free(sp.lang);
        free(sp.code);
        if (rc) { free(x); return rc; }
    }
    int *seq = realloc(x, ((size_t)n_x + 1) * sizeof *seq);
    if (!seq) { free(x); return sm_err(err, SM_ENOMEM, "out of memory"); }
    x = seq;
    if (eos >= 0) x[n_x++] = eos;
    if (n_x > max_len) {
        /* keep the head of the prompt and as much of the completion as fits */
        int n_c = n_x - n_prompt;
        int keep_p = max_len - n_c;
        if (keep_p < n_prompt / 2 + 1 && keep_p < max_len / 2) keep_p = n_prompt < max_len / 2 ? n_prompt : max_len / 2;
        if (keep_p > n_prompt) keep_p = n_prompt;
        int keep_c = max_len - keep_p;
        memmove(x + keep_p, x + n_prompt, (size_t)keep_c * sizeof *x);
        n_prompt = keep_p;
        n_x = max_len;
    }
    if (n_prompt >= n_x) n_prompt = n_x - 1; /* at least one target */
    if (n_x >= 2) {
        rc = builder_add(bd, x, n_x, n_prompt);
        if (rc) sm_err(err, rc, "out of memory");
        bd->ex->n_cut += cut;
        bd->ex->n_merged += merged;
    }
    free(x);
    return rc;
}

int sm_examples_from_jsonl(sm_examples **out, const char *path, const sm_tokenizer *tok, int max_len, sm_error *err) {
    *out = NULL;
    if (max_len < 8) return sm_err(err, SM_EINVAL, "%s: sequence length %d is too short", path, max_len);
    builder bd;
    if (builder_init(&bd)) return sm_err(err, SM_ENOMEM, "out of memory");
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    int rc = hash_file(&h, path, err);
    sm_jsonl *r = NULL;
    if (!rc) rc = sm_jsonl_open(&r, path, err);
    json_t *obj = NULL;
    while (!rc && (rc = sm_jsonl_next(r, &obj, err)) == 1) {
        rc = 0;
        const char *prompt = json_string_value(json_object_get(obj, "prompt"));
        const char *completion = json_string_value(json_object_get(obj, "completion"));
        if (!prompt || !completion)
            rc = sm_err(err, SM_EFORMAT, "%s:%ld: expected string fields \"prompt\" and \"completion\"", path,
                        sm_jsonl_line(r));
        else
            rc = add_record(&bd, tok, prompt, completion, max_len, err);
        json_decref(obj);
    }
    if (r) sm_jsonl_close(r);
    if (!rc && bd.ex->n == 0) rc = sm_err(err, SM_EFORMAT, "%s: expected at least one example, found none", path);
    if (rc) { sm_examples_free(bd.ex); return rc; }
    sm_sha256_final(&h, bd.ex->hash);
    *out = bd.ex;
    return SM_OK;
}

/* ---- text documents ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The files of path: itself, or a directory's regular files in name order. */
static int list_files(const char *path, char ***files, int *n, sm_error *err) {
    struct stat st;
    if (stat(path, &st)) return sm_err(err, SM_EIO, "%s: cannot open", path);
    char **v = NULL;
    int k = 0, cap = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return sm_err(err, SM_EIO, "%s: cannot read the directory", path);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *full = malloc(strlen(path) + strlen(e->d_name) + 2);
            if (!full) break;
            sprintf(full, "%s/%s", path, e->d_name);
            struct stat fs;
            if (stat(full, &fs) || !S_ISREG(fs.st_mode)) { free(full); continue; }
            if (k == cap) {
                cap = cap ? 2 * cap : 64;
                char **nv = realloc(v, (size_t)cap * sizeof *nv);
                if (!nv) { free(full); break; }
                v = nv;
            }
            v[k++] = full;
        }
        closedir(d);
        qsort(v, (size_t)k, sizeof *v, cmp_str);
    } else {
        v = malloc(sizeof *v);
        if (v && (v[0] = strdup(path))) k = 1;
    }
    *files = v;
    *n = k;
    return SM_OK;
}

static int read_file(const char *path, char **buf, size_t *len, sm_sha256_ctx *h, sm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sm_err(err, SM_EIO, "%s: cannot open", path);
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
    if (bad) { free(b); return sm_err(err, SM_EIO, "%s: read error", path); }
    b[n] = 0;
    sm_sha256_update(h, b, n);
    *buf = b;
    *len = n;
    return SM_OK;
}

int sm_examples_from_text(sm_examples **train, sm_examples **val, const char *const *paths, int n_paths,
                          const sm_tokenizer *tok, int max_len, int val_every, sm_error *err) {
    *train = NULL;
    if (val) *val = NULL;
    if (max_len < 8) return sm_err(err, SM_EINVAL, "sequence length %d is too short", max_len);
    builder bt, bv;
    if (builder_init(&bt)) return sm_err(err, SM_ENOMEM, "out of memory");
    if (builder_init(&bv)) { sm_examples_free(bt.ex); return sm_err(err, SM_ENOMEM, "out of memory"); }
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    int bos = sm_tokenizer_add_bos(tok) ? sm_tokenizer_bos(tok) : -1, eos = sm_tokenizer_eos(tok);
    long chunk = 0;
    int rc = SM_OK;
    for (int p = 0; p < n_paths && !rc; p++) {
        char **files = NULL;
        int n_files = 0;
        rc = list_files(paths[p], &files, &n_files, err);
        for (int f = 0; f < n_files && !rc; f++) {
            char *text = NULL;
            size_t len = 0;
            int *ids = NULL, n_ids = 0;
            rc = read_file(files[f], &text, &len, &h, err);
            if (!rc) rc = tokenize(tok, text, len, &ids, &n_ids, err);
            free(text);
            int *doc = rc ? NULL : malloc(((size_t)n_ids + 2) * sizeof *doc);
            if (!rc && !doc) rc = sm_err(err, SM_ENOMEM, "%s: out of memory", files[f]);
            if (!rc) {
                int n = 0;
                if (bos >= 0) doc[n++] = bos;
                memcpy(doc + n, ids, (size_t)n_ids * sizeof *doc);
                n += n_ids;
                if (eos >= 0) doc[n++] = eos;
                /* chunks of max_len tokens, each starting at the previous one's last token */
                for (int s = 0; s + 1 < n && !rc; s += max_len - 1, chunk++) {
                    int l = n - s < max_len ? n - s : max_len;
                    builder *to = val_every > 0 && chunk % val_every == val_every - 1 ? &bv : &bt;
                    if (builder_add(to, doc + s, l, 0)) rc = sm_err(err, SM_ENOMEM, "out of memory");
                }
            }
            free(doc);
            free(ids);
        }
        for (int f = 0; f < n_files; f++) free(files[f]);
        free(files);
    }
    if (!rc && bt.ex->n == 0) rc = sm_err(err, SM_EFORMAT, "%s: expected text to train on, found no tokens", n_paths ? paths[0] : "corpus");
    if (rc || !val) sm_examples_free(bv.ex);
    if (rc) { sm_examples_free(bt.ex); return rc; }
    sm_sha256_final(&h, bt.ex->hash);
    memcpy(bv.ex->hash, bt.ex->hash, 32);
    *train = bt.ex;
    if (val) *val = bv.ex;
    return SM_OK;
}

/* ---- shuffling and packing ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sm_shuffle_order(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t epoch) {
    uint64_t s = seed ^ (0x5851F42D4C957F2Dull * (epoch + 1));
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        /* unbiased index in [0, i): reject the top partial range */
        uint64_t lim = UINT64_MAX - UINT64_MAX % i, r;
        do r = splitmix64(&s); while (r >= lim);
        uint32_t j = (uint32_t)(r % i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

struct sm_batcher {
    const sm_examples *ex;
    int shuffle;
    uint64_t seed;
    uint32_t *order;        /* the current epoch's order */
    sm_batch_cursor cur;
    sm_batch batch;
};

sm_batcher *sm_batcher_new(const sm_examples *ex, int B, int T, int shuffle, uint64_t seed, sm_error *err) {
    if (B < 1 || T < 1 || ex->n < 1) { sm_err(err, SM_EINVAL, "batches need B >= 1, T >= 1 and examples"); return NULL; }
    for (int i = 0; i < ex->n; i++)
        if (ex->off[i + 1] - ex->off[i] - 1 > (size_t)T) {
            sm_err(err, SM_EINVAL, "example %d has %zu tokens, more than T + 1 = %d", i, ex->off[i + 1] - ex->off[i], T + 1);
            return NULL;
        }
    sm_batcher *b = calloc(1, sizeof *b);
    size_t bt = (size_t)B * (size_t)T;
    if (b) {
        b->order = malloc((size_t)ex->n * sizeof *b->order);
        b->batch.tokens = malloc(3 * bt * sizeof(int));
    }
    if (!b || !b->order || !b->batch.tokens) {
        sm_batcher_free(b);
        sm_err(err, SM_ENOMEM, "out of memory for batches of %d x %d", B, T);
        return NULL;
    }
    b->batch.targets = b->batch.tokens + bt;
    b->batch.seg = b->batch.targets + bt;
    b->batch.B = B;
    b->batch.T = T;
    b->ex = ex;
    b->shuffle = shuffle;
    b->seed = seed;
    sm_batcher_rewind(b);
    return b;
}

void sm_batcher_free(sm_batcher *b) {
    if (!b) return;
    free(b->order);
    free(b->batch.tokens);
    free(b);
}

static void set_epoch(sm_batcher *b, uint64_t epoch) {
    b->cur.epoch = epoch;
    if (b->shuffle) sm_shuffle_order(b->order, (uint32_t)b->ex->n, b->seed, epoch);
    else for (int i = 0; i < b->ex->n; i++) b->order[i] = (uint32_t)i;
}

void sm_batcher_rewind(sm_batcher *b) {
    set_epoch(b, 0);
    b->cur.pos = 0;
}

sm_batch_cursor sm_batcher_cursor(const sm_batcher *b) { return b->cur; }

int sm_batcher_seek(sm_batcher *b, sm_batch_cursor c, sm_error *err) {
    if (c.pos > (uint64_t)b->ex->n) return sm_err(err, SM_EINVAL, "data cursor %llu is beyond the %d examples", (unsigned long long)c.pos, b->ex->n);
    set_epoch(b, c.epoch);
    b->cur.pos = c.pos;
    return SM_OK;
}

int sm_batcher_next(sm_batcher *b, const sm_batch **out) {
    const sm_examples *ex = b->ex;
    sm_batch *bt = &b->batch;
    if (!b->shuffle && b->cur.pos >= (uint64_t)ex->n) return 0;
    bt->n_targets = 0;
    bt->n_tokens = 0;
    bt->n_examples = 0;
    for (int r = 0; r < bt->B; r++) {
        int *tok = bt->tokens + (size_t)r * bt->T, *tgt = bt->targets + (size_t)r * bt->T, *seg = bt->seg + (size_t)r * bt->T;
        int used = 0, s = 0;
        for (;;) {
            if (b->cur.pos >= (uint64_t)ex->n) {
                if (!b->shuffle) break;
                set_epoch(b, b->cur.epoch + 1);
                b->cur.pos = 0;
            }
            uint32_t i = b->order[b->cur.pos];
            const int *x = ex->tokens + ex->off[i];
            int L = (int)(ex->off[i + 1] - ex->off[i]);
            if (used + L - 1 > bt->T) break;
            for (int j = 0; j < L - 1; j++) {
                tok[used + j] = x[j];
                tgt[used + j] = j + 1 >= ex->n_prompt[i] ? x[j + 1] : -1;
                seg[used + j] = s;
                bt->n_targets += tgt[used + j] >= 0;
            }
            used += L - 1;
            bt->n_tokens += L - 1;
            s++;
            bt->n_examples++;
            b->cur.pos++;
        }
        for (int j = used; j < bt->T; j++) {
            tok[j] = 0;
            tgt[j] = -1;
            seg[j] = s;
        }
    }
    *out = bt;
    return 1;
}
