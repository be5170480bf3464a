/* llama2c.c: llama2.c checkpoint and tokenizer.bin to GGUF (see llama2c.h for both layouts).
 *
 * The checkpoint is mapped read-only and never trusted: every size comes from the 7-int header
 * through checked 64-bit arithmetic, and the sum of the sections must equal the file size
 * exactly. Tensors are written from the mapping as they are (little-endian f32 is GGUF's f32). */
#include "llama2c.h"

#include "gguf.h"
#include "tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES 28 /* 7 x int32 */

typedef struct {
    const unsigned char *data;
    size_t size;
} file_map;

static int map_file(const char *path, file_map *f, sm_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sm_err(err, SM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || st.st_size <= 0) {
        close(fd);
        return sm_err(err, SM_EFORMAT, "%s: empty or unreadable file", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return sm_err(err, SM_EIO, "%s: cannot map: %s", path, strerror(errno));
    f->data = p;
    f->size = (size_t)st.st_size;
    return SM_OK;
}

static void unmap_file(file_map *f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
}

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t rd_i32(const unsigned char *p) {
    uint32_t u = rd_u32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float rd_f32(const unsigned char *p) {
    uint32_t u = rd_u32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* a * b * c into *out; -1 on overflow. */
static int mul3(uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
    uint64_t ab;
    if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, out)) return -1;
    return 0;
}

/* ---- checkpoint -------------------------------------------------------------------------- */

enum { S_EMB, S_RMS_ATT, S_WQ, S_WK, S_WV, S_WO, S_RMS_FFN, S_W1, S_W2, S_W3, S_RMS_FINAL, S_FREQ, S_WCLS, S_COUNT };

static const char *const section_names[S_COUNT] = {
    "token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final",
    "freq_cis_real/imag", "wcls",
};

typedef struct {
    sm_llama2c_config cfg;
    const unsigned char *section[S_COUNT]; /* start of each section in the mapping */
} checkpoint;

static int read_checkpoint(const char *path, const file_map *f, checkpoint *ck, sm_error *err) {
    if (f->size < HEADER_BYTES)
        return sm_err(err, SM_EFORMAT, "%s: %zu bytes, shorter than the %d-byte llama2.c header", path, f->size, HEADER_BYTES);
    sm_llama2c_config *c = &ck->cfg;
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = rd_i32(f->data + 4 * i);
    c->dim = h[0], c->hidden_dim = h[1], c->n_layers = h[2], c->n_heads = h[3], c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]);
    c->seq_len = h[6];
    static const char *const field[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++)
        if (h[i] == 0 || (i != 5 && h[i] < 0) || h[i] == INT32_MIN)
            return sm_err(err, SM_EFORMAT, "%s: offset %d: header field %s is %d, expected a positive size", path, 4 * i, field[i], h[i]);
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return sm_err(err, SM_EFORMAT, "%s: dim %d is not n_heads %d times an even head size", path, c->dim, c->n_heads);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return sm_err(err, SM_EFORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", path, c->n_heads, c->n_kv_heads);

    uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t head_size = dim / (uint64_t)c->n_heads, kv_dim = head_size * (uint64_t)c->n_kv_heads;
    uint64_t count[S_COUNT];
    int bad = mul3((uint64_t)c->vocab_size, dim, 1, &count[S_EMB]) | mul3(L, dim, 1, &count[S_RMS_ATT]) |
              mul3(L, dim, dim, &count[S_WQ]) | mul3(L, kv_dim, dim, &count[S_WK]) | mul3(L, kv_dim, dim, &count[S_WV]) |
              mul3(L, dim, dim, &count[S_WO]) | mul3(L, dim, 1, &count[S_RMS_FFN]) | mul3(L, hidden, dim, &count[S_W1]) |
              mul3(L, dim, hidden, &count[S_W2]) | mul3(L, hidden, dim, &count[S_W3]) | mul3(dim, 1, 1, &count[S_RMS_FINAL]) |
              mul3((uint64_t)c->seq_len, head_size, 1, &count[S_FREQ]) |
              mul3(c->shared_classifier ? 0 : (uint64_t)c->vocab_size, dim, 1, &count[S_WCLS]);
    uint64_t offset = HEADER_BYTES;
    for (int s = 0; s < S_COUNT && !bad; s++) {
        uint64_t bytes;
        bad = __builtin_mul_overflow(count[s], 4, &bytes);
        if (!bad && offset <= f->size) ck->section[s] = f->data + offset;
        bad = bad || __builtin_add_overflow(offset, bytes, &offset);
        if (!bad && offset > f->size)
            return sm_err(err, SM_EFORMAT, "%s: truncated: section %s ends at byte %llu but the file has %zu bytes "
                          "(header: dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab %d, seq_len %d)",
                          path, section_names[s], (unsigned long long)offset, f->size, c->dim, c->hidden_dim,
                          c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
    }
    if (bad) return sm_err(err, SM_EFORMAT, "%s: the header's sizes overflow", path);
    if (offset != f->size)
        return sm_err(err, SM_EFORMAT, "%s: %zu bytes, but the header describes %llu; %llu unexpected bytes at offset %llu",
                      path, f->size, (unsigned long long)offset, (unsigned long long)(f->size - offset),
                      (unsigned long long)offset);
    return SM_OK;
}

/* ---- tokenizer --------------------------------------------------------------------------- */

typedef struct {
    char **text;      /* GGUF token texts (U+2581 for spaces), NUL-terminated */
    uint64_t *len;
    float *score;
    int32_t *type;
} vocab;

static void vocab_free(vocab *v, int n) {
    if (v->text)
        for (int i = 0; i < n; i++) free(v->text[i]);
    free(v->text);
    free(v->len);
    free(v->score);
    free(v->type);
}

static int is_byte_token(const unsigned char *s, int32_t len) {
    static const char hex[] = "0123456789ABCDEFabcdef";
    return len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr(hex, s[3]) && strchr(hex, s[4]) && s[3] && s[4];
}

/* GGUF text of llama2.c token id: BOS / EOS without llama2.c's newlines, ' ' as U+2581. */
static char *gguf_token_text(const unsigned char *s, int32_t len, int id, uint64_t *out_len) {
    if ((id == 1 || id == 2) && len >= 2 && s[0] == '\n' && s[len - 1] == '\n') s++, len -= 2;
    char *t = malloc((size_t)len * 3 + 1);
    if (!t) return NULL;
    size_t n = 0;
    for (int32_t i = 0; i < len; i++) {
        if (s[i] == ' ') { memcpy(t + n, "\xe2\x96\x81", 3); n += 3; }
        else t[n++] = (char)s[i];
    }
    t[n] = 0;
    *out_len = n;
    return t;
}

static int read_tokenizer(const char *path, const file_map *f, int n_vocab, vocab *v, sm_error *err) {
    if (f->size < 4) return sm_err(err, SM_EFORMAT, "%s: %zu bytes, too short for max_token_length", path, f->size);
    int32_t max_len = rd_i32(f->data);
    if (max_len <= 0) return sm_err(err, SM_EFORMAT, "%s: offset 0: max_token_length is %d, expected > 0", path, max_len);
    v->text = calloc((size_t)n_vocab, sizeof *v->text);
    v->len = calloc((size_t)n_vocab, sizeof *v->len);
    v->score = calloc((size_t)n_vocab, sizeof *v->score);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    if (!v->text || !v->len || !v->score || !v->type) return sm_err(err, SM_ENOMEM, "%s: out of memory for %d tokens", path, n_vocab);
    size_t off = 4;
    for (int id = 0; id < n_vocab; id++) {
        if (f->size - off < 8)
            return sm_err(err, SM_EFORMAT, "%s: offset %zu: truncated at token %d of %d (expected score and length)", path, off, id, n_vocab);
        v->score[id] = rd_f32(f->data + off);
        int32_t len = rd_i32(f->data + off + 4);
        off += 8;
        if (len < 0 || len > max_len)
            return sm_err(err, SM_EFORMAT, "%s: offset %zu: token %d has length %d, expected 0..%d (max_token_length)",
                          path, off - 4, id, len, max_len);
        if (f->size - off < (size_t)len)
            return sm_err(err, SM_EFORMAT, "%s: offset %zu: token %d needs %d bytes, the file has %zu left", path, off, id, len, f->size - off);
        const unsigned char *s = f->data + off;
        off += (size_t)len;
        v->text[id] = gguf_token_text(s, len, id, &v->len[id]);
        if (!v->text[id]) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
        v->type[id] = id == 0 ? 2 : (id == 1 || id == 2) ? 3 : is_byte_token(s, len) ? 6 : 1;
    }
    if (off != f->size)
        return sm_err(err, SM_EFORMAT, "%s: %zu unexpected bytes at offset %zu after the %d tokens of the checkpoint's vocabulary",
                      path, f->size - off, off, n_vocab);
    return SM_OK;
}

/* ---- GGUF -------------------------------------------------------------------------------- */

static int add_metadata(sm_gguf_writer *w, const sm_llama2c_config *c, const vocab *v, const char *name) {
    int rc = 0;
    rc |= sm_gguf_set_str(w, "general.architecture", "llama");
    rc |= sm_gguf_set_str(w, "general.name", name);
    rc |= sm_gguf_set_u32(w, "general.file_type", 0); /* all f32 */
    rc |= sm_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    rc |= sm_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    rc |= sm_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    rc |= sm_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    rc |= sm_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    rc |= sm_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    rc |= sm_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    rc |= sm_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    rc |= sm_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= sm_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
    rc |= sm_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    rc |= sm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->text, v->len, (uint64_t)c->vocab_size);
    rc |= sm_gguf_set_arr(w, "tokenizer.ggml.scores", SM_GGUF_FLOAT32, v->score, (uint64_t)c->vocab_size);
    rc |= sm_gguf_set_arr(w, "tokenizer.ggml.token_type", SM_GGUF_INT32, v->type, (uint64_t)c->vocab_size);
    rc |= sm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= sm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc |= sm_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    rc |= sm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    rc |= sm_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    return rc ? SM_ENOMEM : SM_OK;
}

/* Adds the f32 tensor `name` of ne = {in, out} (n_dims 2) or {in} (n_dims 1) at `data`. */
static int add_f32(sm_gguf_writer *w, const char *name, int n_dims, int64_t in, int64_t out, const unsigned char *data) {
    int64_t ne[2] = {in, out};
    return sm_gguf_add_tensor(w, name, SM_TYPE_F32, n_dims, ne, data);
}

static int add_tensors(sm_gguf_writer *w, const checkpoint *ck) {
    const sm_llama2c_config *c = &ck->cfg;
    size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, kv_dim = dim / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    const unsigned char *const *s = ck->section;
    int rc = add_f32(w, "token_embd.weight", 2, c->dim, c->vocab_size, s[S_EMB]);
    char name[64];
#define LAYER_TENSOR(stem, sec, n_dims, in, out)                                                                       \
    do {                                                                                                         \
        snprintf(name, sizeof name, "blk.%d." stem ".weight", l);                                                \
        rc |= add_f32(w, name, n_dims, (int64_t)(in), (int64_t)(out), s[sec] + (size_t)l * (in) * (out) * sizeof(float)); \
    } while (0)
    for (int l = 0; l < c->n_layers && !rc; l++) {
        LAYER_TENSOR("attn_norm", S_RMS_ATT, 1, dim, 1);
        LAYER_TENSOR("attn_q", S_WQ, 2, dim, dim);
        LAYER_TENSOR("attn_k", S_WK, 2, dim, kv_dim);
        LAYER_TENSOR("attn_v", S_WV, 2, dim, kv_dim);
        LAYER_TENSOR("attn_output", S_WO, 2, dim, dim);
        LAYER_TENSOR("ffn_norm", S_RMS_FFN, 1, dim, 1);
        LAYER_TENSOR("ffn_gate", S_W1, 2, dim, hidden);
        LAYER_TENSOR("ffn_down", S_W2, 2, hidden, dim);
        LAYER_TENSOR("ffn_up", S_W3, 2, dim, hidden);
    }
#undef LAYER_TENSOR
    rc |= add_f32(w, "output_norm.weight", 1, c->dim, 1, s[S_RMS_FINAL]);
    if (!c->shared_classifier) rc |= add_f32(w, "output.weight", 2, c->dim, c->vocab_size, s[S_WCLS]);
    return rc ? SM_EINVAL : SM_OK;
}

static void base_name(char *out, size_t cap, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

int sm_llama2c_convert(const char *ckpt_path, const char *tokenizer_path, const char *out_path,
                       sm_llama2c_config *cfg, sm_error *err) {
    file_map ckf = {0}, tokf = {0};
    checkpoint ck = {0};
    vocab v = {0};
    sm_gguf_writer *w = NULL;
    int rc = map_file(ckpt_path, &ckf, err);
    if (!rc) rc = read_checkpoint(ckpt_path, &ckf, &ck, err);
    if (!rc) rc = map_file(tokenizer_path, &tokf, err);
    if (!rc) rc = read_tokenizer(tokenizer_path, &tokf, ck.cfg.vocab_size, &v, err);
    if (!rc && !(w = sm_gguf_writer_new())) rc = sm_err(err, SM_ENOMEM, "out of memory");
    if (!rc) {
        char name[256];
        base_name(name, sizeof name, ckpt_path);
        if (add_metadata(w, &ck.cfg, &v, name) || add_tensors(w, &ck))
            rc = sm_err(err, SM_ENOMEM, "%s: cannot build the GGUF metadata and tensor table", out_path);
    }
    if (!rc) rc = sm_gguf_write(w, out_path, err);
    if (!rc && cfg) *cfg = ck.cfg;
    sm_gguf_writer_free(w);
    vocab_free(&v, ck.cfg.vocab_size);
    unmap_file(&tokf);
    unmap_file(&ckf);
    return rc;
}
