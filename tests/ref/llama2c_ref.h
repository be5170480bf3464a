/* llama2c_ref.h: a plain, independent re-statement of llama2.c's run.c for the tests: its
 * tokenizer.bin reader and encode() (BOS, a dummy-prefix " " for non-empty text, one token per
 * UTF-8 codepoint with byte fallback id = byte + 3, then repeated merging of the best-scoring
 * adjacent pair), and its checkpoint reader and single-token forward pass in straightforward
 * loops. Nothing here uses the library, so that the library is tested against it.
 * Header-only: every function is static inline. Test inputs are trusted fixtures; sizes are still
 * checked so that a wrong file fails cleanly. */
#ifndef SM_TEST_LLAMA2C_REF_H
#define SM_TEST_LLAMA2C_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole file; NULL on failure. */
static inline unsigned char *ref_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *size = buf ? (size_t)n : 0;
    return buf;
}

static inline int32_t ref_i32(const unsigned char *p) { /* little-endian */
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

typedef struct {
    int n_vocab;
    char **text;   /* NUL-terminated, as in tokenizer.bin (spaces as ' ') */
    float *score;
} ref_tokenizer;

static inline int ref_tokenizer_load(ref_tokenizer *t, const char *path, int n_vocab) {
    size_t size, off = 4;
    unsigned char *buf = ref_read_file(path, &size);
    if (!buf || size < 4) { free(buf); return -1; }
    t->n_vocab = n_vocab;
    t->text = calloc((size_t)n_vocab, sizeof *t->text);
    t->score = calloc((size_t)n_vocab, sizeof *t->score);
    for (int i = 0; i < n_vocab; i++) {
        if (size - off < 8) { free(buf); return -1; }
        int32_t s = ref_i32(buf + off), len = ref_i32(buf + off + 4);
        memcpy(&t->score[i], &s, 4);
        off += 8;
        if (len < 0 || size - off < (size_t)len) { free(buf); return -1; }
        t->text[i] = malloc((size_t)len + 1);
        memcpy(t->text[i], buf + off, (size_t)len);
        t->text[i][len] = 0;
        off += (size_t)len;
    }
    free(buf);
    return 0;
}

static inline void ref_tokenizer_free(ref_tokenizer *t) {
    for (int i = 0; t->text && i < t->n_vocab; i++) free(t->text[i]);
    free(t->text);
    free(t->score);
}

static inline int ref_lookup(const ref_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_vocab; i++)
        if (!strcmp(t->text[i], s)) return i;
    return -1;
}

/* llama2.c's encode(text, bos=1, eos=0) into tokens (room for strlen(text) + 3); returns the count. */
static inline int ref_encode(const ref_tokenizer *t, const char *text, int *tokens) {
    int n = 0;
    tokens[n++] = 1; /* BOS */
    if (text[0]) tokens[n++] = ref_lookup(t, " ");
    char cp[5];
    size_t cp_len = 0;
    for (const char *c = text; *c; c++) {
        if (((unsigned char)*c & 0xC0) != 0x80) cp_len = 0; /* a new codepoint starts */
        cp[cp_len++] = *c;
        cp[cp_len] = 0;
        if (((unsigned char)c[1] & 0xC0) == 0x80 && cp_len < 4) continue; /* more of this codepoint */
        int id = ref_lookup(t, cp);
        if (id >= 0) tokens[n++] = id;
        else
            for (size_t i = 0; i < cp_len; i++) tokens[n++] = (unsigned char)cp[i] + 3; /* byte fallback */
        cp_len = 0;
    }
    char *merged = malloc(2 * 64 + 1);
    for (;;) {
        float best_score = -1e10f;
        int best_id = -1, best_at = -1;
        for (int i = 0; i + 1 < n; i++) {
            size_t la = strlen(t->text[tokens[i]]), lb = strlen(t->text[tokens[i + 1]]);
            merged = realloc(merged, la + lb + 1);
            memcpy(merged, t->text[tokens[i]], la);
            memcpy(merged + la, t->text[tokens[i + 1]], lb + 1);
            int id = ref_lookup(t, merged);
            if (id >= 0 && t->score[id] > best_score) best_score = t->score[id], best_id = id, best_at = i;
        }
        if (best_at < 0) break;
        tokens[best_at] = best_id;
        memmove(tokens + best_at + 1, tokens + best_at + 2, (size_t)(n - best_at - 2) * sizeof *tokens);
        n--;
    }
    free(merged);
    return n;
}

/* ---- checkpoint and forward --------------------------------------------------------------- */

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    unsigned char *file;
    float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
    /* run state */
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *key_cache, *value_cache;
} ref_llama2c;

static inline int ref_llama2c_load(ref_llama2c *m, const char *path) {
    size_t size;
    memset(m, 0, sizeof *m);
    m->file = ref_read_file(path, &size);
    if (!m->file || size < 28) return -1;
    int *fields[7] = {&m->dim, &m->hidden_dim, &m->n_layers, &m->n_heads, &m->n_kv_heads, &m->vocab_size, &m->seq_len};
    for (int i = 0; i < 7; i++) *fields[i] = ref_i32(m->file + 4 * i);
    int shared = m->vocab_size > 0;
    m->vocab_size = abs(m->vocab_size);
    int hs = m->dim / m->n_heads, kv_dim = hs * m->n_kv_heads;
    size_t L = (size_t)m->n_layers, dim = (size_t)m->dim, hid = (size_t)m->hidden_dim;
    size_t need = 7 + (size_t)m->vocab_size * dim + L * dim * (2 + 2 * dim + 2 * (size_t)kv_dim + 3 * hid) + dim +
                  (size_t)m->seq_len * (size_t)hs + (shared ? 0 : (size_t)m->vocab_size * dim);
    if (need * 4 != size) return -1;
    float *p = malloc(size); /* an aligned copy of the floats */
    memcpy(p, m->file, size);
    free(m->file);
    m->file = (unsigned char *)p;
    p += 7;
    m->emb = p, p += (size_t)m->vocab_size * dim;
    m->rms_att = p, p += L * dim;
    m->wq = p, p += L * dim * dim;
    m->wk = p, p += L * dim * (size_t)kv_dim;
    m->wv = p, p += L * dim * (size_t)kv_dim;
    m->wo = p, p += L * dim * dim;
    m->rms_ffn = p, p += L * dim;
    m->w1 = p, p += L * dim * hid;
    m->w2 = p, p += L * dim * hid;
    m->w3 = p, p += L * dim * hid;
    m->rms_final = p, p += dim;
    p += (size_t)m->seq_len * (size_t)hs; /* freq_cis_real, freq_cis_imag */
    m->wcls = shared ? m->emb : p;
    m->x = calloc(dim, 4), m->xb = calloc(dim, 4), m->xb2 = calloc(dim, 4), m->q = calloc(dim, 4);
    m->hb = calloc(hid, 4), m->hb2 = calloc(hid, 4);
    m->att = calloc((size_t)m->n_heads * (size_t)m->seq_len, 4);
    m->logits = calloc((size_t)m->vocab_size, 4);
    m->key_cache = calloc(L * (size_t)m->seq_len * (size_t)kv_dim, 4);
    m->value_cache = calloc(L * (size_t)m->seq_len * (size_t)kv_dim, 4);
    return 0;
}

static inline void ref_llama2c_free(ref_llama2c *m) {
    free(m->file), free(m->x), free(m->xb), free(m->xb2), free(m->q), free(m->hb), free(m->hb2);
    free(m->att), free(m->logits), free(m->key_cache), free(m->value_cache);
}

static inline void ref_rmsnorm(float *o, const float *x, const float *w, int n) {
    float ss = 0.0f;
    for (int j = 0; j < n; j++) ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / n + 1e-5f);
    for (int j = 0; j < n; j++) o[j] = w[j] * (ss * x[j]);
}

static inline void ref_matmul(float *xout, const float *x, const float *w, int n, int d) { /* W (d,n) @ x (n) */
    for (int i = 0; i < d; i++) {
        float val = 0.0f;
        for (int j = 0; j < n; j++) val += w[(size_t)i * n + j] * x[j];
        xout[i] = val;
    }
}

static inline void ref_softmax(float *x, int n) {
    float max = x[0], sum = 0.0f;
    for (int i = 1; i < n; i++) if (x[i] > max) max = x[i];
    for (int i = 0; i < n; i++) sum += x[i] = expf(x[i] - max);
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/* llama2.c's forward(token, pos): returns the logits. */
static inline float *ref_llama2c_forward(ref_llama2c *m, int token, int pos) {
    int dim = m->dim, hs = dim / m->n_heads, kv_dim = hs * m->n_kv_heads, kv_mul = m->n_heads / m->n_kv_heads;
    int hid = m->hidden_dim;
    memcpy(m->x, m->emb + (size_t)token * dim, (size_t)dim * 4);
    for (int l = 0; l < m->n_layers; l++) {
        ref_rmsnorm(m->xb, m->x, m->rms_att + (size_t)l * dim, dim);
        size_t off = (size_t)l * m->seq_len * kv_dim;
        float *k = m->key_cache + off + (size_t)pos * kv_dim, *v = m->value_cache + off + (size_t)pos * kv_dim;
        ref_matmul(m->q, m->xb, m->wq + (size_t)l * dim * dim, dim, dim);
        ref_matmul(k, m->xb, m->wk + (size_t)l * dim * kv_dim, dim, kv_dim);
        ref_matmul(v, m->xb, m->wv + (size_t)l * dim * kv_dim, dim, kv_dim);
        for (int i = 0; i < dim; i += 2) { /* RoPE on adjacent pairs */
            int head_dim = i % hs;
            float freq = 1.0f / powf(10000.0f, head_dim / (float)hs), val = pos * freq;
            float fcr = cosf(val), fci = sinf(val);
            for (int which = 0; which < (i < kv_dim ? 2 : 1); which++) {
                float *vec = which == 0 ? m->q : k;
                float v0 = vec[i], v1 = vec[i + 1];
                vec[i] = v0 * fcr - v1 * fci;
                vec[i + 1] = v0 * fci + v1 * fcr;
            }
        }
        for (int h = 0; h < m->n_heads; h++) {
            float *q = m->q + h * hs, *att = m->att + (size_t)h * m->seq_len;
            for (int t = 0; t <= pos; t++) {
                const float *kt = m->key_cache + off + (size_t)t * kv_dim + (h / kv_mul) * hs;
                float score = 0.0f;
                for (int i = 0; i < hs; i++) score += q[i] * kt[i];
                att[t] = score / sqrtf((float)hs);
            }
            ref_softmax(att, pos + 1);
            float *xb = m->xb + h * hs;
            memset(xb, 0, (size_t)hs * 4);
            for (int t = 0; t <= pos; t++) {
                const float *vt = m->value_cache + off + (size_t)t * kv_dim + (h / kv_mul) * hs;
                for (int i = 0; i < hs; i++) xb[i] += att[t] * vt[i];
            }
        }
        ref_matmul(m->xb2, m->xb, m->wo + (size_t)l * dim * dim, dim, dim);
        for (int i = 0; i < dim; i++) m->x[i] += m->xb2[i];
        ref_rmsnorm(m->xb, m->x, m->rms_ffn + (size_t)l * dim, dim);
        ref_matmul(m->hb, m->xb, m->w1 + (size_t)l * dim * hid, dim, hid);
        ref_matmul(m->hb2, m->xb, m->w3 + (size_t)l * dim * hid, dim, hid);
        for (int i = 0; i < hid; i++) {
            float val = m->hb[i];
            m->hb[i] = val * (1.0f / (1.0f + expf(-val))) * m->hb2[i];
        }
        ref_matmul(m->xb, m->hb, m->w2 + (size_t)l * dim * hid, hid, dim);
        for (int i = 0; i < dim; i++) m->x[i] += m->xb[i];
    }
    ref_rmsnorm(m->x, m->x, m->rms_final, dim);
    ref_matmul(m->logits, m->x, m->wcls, dim, m->vocab_size);
    return m->logits;
}

/* llama2.c's generate loop at temperature 0: `steps` positions from the prompt (which starts with
 * BOS), the prompt forced, then argmax; writes each position's next token to out and returns how
 * many (fewer when BOS comes). */
static inline int ref_llama2c_greedy(ref_llama2c *m, const int *prompt, int n_prompt, int steps, int *out) {
    int token = prompt[0], n_out = 0;
    for (int pos = 0; pos < steps; pos++) {
        float *logits = ref_llama2c_forward(m, token, pos);
        int next;
        if (pos < n_prompt - 1) next = prompt[pos + 1];
        else {
            next = 0;
            for (int i = 1; i < m->vocab_size; i++) if (logits[i] > logits[next]) next = i;
        }
        if (next == 1) break;
        out[n_out++] = next;
        token = next;
    }
    return n_out;
}

#endif
