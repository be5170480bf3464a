/* test_lora.c: LoRA adapters (lora.h) on tiny random models written with `snipmeta init`'s
 * generator: PEFT's initialisation (bounds, B zero, seeded), the scale (rsLoRA), GGUF and PEFT
 * round trips bit for bit (with the q/k RoPE row permutation checked for what it means: the same
 * attention scores under HF's and llama.cpp's rotations), the base fingerprint and its refusal,
 * truncated and corrupt files, the unmerged product in the forward pass against an independent
 * merged model W + s*B*A for every stored base type, sm_lora_merge_gguf against the same, and the
 * activated adapter's start position; seeded byte mutations of both file kinds (run it under
 * ASan: `cmake -DSM_SANITIZE=ON`). KEEP=1 keeps the temporary directory of models. argv[1]: the shared directory (its llama-spm vocabulary). */
#include "gguf.h"
#include "kernels.h"
#include "lora.h"
#include "model.h"
#include "model_init.h"
#include "safetensors.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
            failures++;                                           \
        }                                                         \
    } while (0)

static char dir[256];
static const sm_gguf *vocab;

static char *path_in_dir(const char *name) {
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* A tiny Llama base: 64 wide, 2 layers, 4 heads (2 KV heads, head_dim 16), ffn 96. */
static sm_model *make_base(const char *name, int type, uint64_t seed) {
    sm_model_shape shape = {.n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96, .n_ctx = 64,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    sm_init_scheme scheme;
    sm_error err = {0};
    if (sm_init_scheme_preset("decode", &shape, &scheme) ||
        sm_init_write_gguf(path_in_dir(name), &shape, &scheme, vocab, type, seed, &err)) {
        fprintf(stderr, "cannot write %s: %s\n", name, err.msg);
        exit(1);
    }
    sm_model *m = sm_model_load(path_in_dir(name), &err);
    if (!m) { fprintf(stderr, "cannot load %s: %s\n", name, err.msg); exit(1); }
    return m;
}

static uint64_t rng = 12345;
static float urand(void) { /* splitmix64 to [-1, 1) */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* An adapter for m with random A and B (B of about b_std), task and flags set. */
static sm_lora *random_adapter(const sm_model *m, int rank, float alpha, int rslora, unsigned targets, float b_std) {
    sm_error err = {0};
    sm_lora *l = sm_lora_new(&m->config, rank, alpha, rslora, targets, &err);
    if (!l) { fprintf(stderr, "sm_lora_new: %s\n", err.msg); exit(1); }
    sm_lora_init(l, 7);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            for (size_t i = 0; pair->b && i < (size_t)pair->out * rank; i++) pair->b[i] = b_std * 1.7320508f * urand();
        }
    snprintf(l->task, sizeof l->task, "title");
    l->prompt_format = 3;
    if (sm_model_fingerprint(m, l->base_fingerprint)) exit(1);
    return l;
}

static void check_same_adapter(const char *what, const sm_lora *x, const sm_lora *y) {
    CHECK(x->n_layer == y->n_layer && x->rank == y->rank && x->targets == y->targets && x->n_params == y->n_params,
          "%s: shape differs (layers %d/%d rank %d/%d targets %x/%x params %zu/%zu)", what, x->n_layer, y->n_layer,
          x->rank, y->rank, x->targets, y->targets, x->n_params, y->n_params);
    if (x->n_params != y->n_params) return;
    CHECK(!memcmp(x->params, y->params, x->n_params * sizeof(float)), "%s: parameters differ", what);
    CHECK(x->alpha == y->alpha && x->rslora == y->rslora, "%s: alpha %g/%g rslora %d/%d", what, x->alpha, y->alpha, x->rslora, y->rslora);
    CHECK(!strcmp(x->task, y->task) && !strcmp(x->base_fingerprint, y->base_fingerprint) && x->prompt_format == y->prompt_format &&
          x->activated == y->activated, "%s: metadata differs (task '%s'/'%s')", what, x->task, y->task);
    CHECK(!strcmp(x->arch, y->arch) && x->n_head == y->n_head && x->n_head_kv == y->n_head_kv, "%s: base description differs", what);
    for (int layer = 0; layer < x->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const sm_lora_pair *a = sm_lora_at(x, layer, (sm_proj)p), *b = sm_lora_at(y, layer, (sm_proj)p);
            if (!a->a) continue;
            CHECK(a->in == b->in && a->out == b->out && a->a - x->params == b->a - y->params && a->b - x->params == b->b - y->params,
                  "%s: layout of layer %d %s differs", what, layer, sm_proj_name((sm_proj)p));
        }
}

/* ---- init, scale ---------------------------------------------------------------------------- */

static void test_init(const sm_model *m) {
    sm_error err = {0};
    unsigned all = SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP;
    sm_lora *x = sm_lora_new(&m->config, 8, 16.0f, 0, all, &err), *y = sm_lora_new(&m->config, 8, 16.0f, 0, all, &err);
    sm_lora *z = sm_lora_new(&m->config, 8, 16.0f, 0, all, &err);
    if (!x || !y || !z) { CHECK(0, "sm_lora_new: %s", err.msg); return; }
    sm_lora_init(x, 42), sm_lora_init(y, 42), sm_lora_init(z, 43);
    CHECK(!memcmp(x->params, y->params, x->n_params * sizeof(float)), "init: the same seed gives different values");
    CHECK(memcmp(x->params, z->params, x->n_params * sizeof(float)), "init: another seed gives the same values");
    /* layout: one slab, layer by layer, projection by projection, A then B */
    size_t expect = 0;
    const float *next = x->params;
    for (int layer = 0; layer < x->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(x, layer, (sm_proj)p);
            const sm_weight *w = &m->layers[layer].proj[p];
            CHECK(pair->in == w->in && pair->out == w->out, "init: %s is %d x %d, the model's %d x %d", sm_proj_name((sm_proj)p),
                  pair->out, pair->in, w->out, w->in);
            CHECK(pair->a == next && pair->b == next + (size_t)8 * pair->in, "init: layer %d %s is not at its slab offset", layer, sm_proj_name((sm_proj)p));
            next += (size_t)8 * (pair->in + pair->out);
            expect += (size_t)8 * (pair->in + pair->out);
            double bound = 1.0 / sqrt(pair->in), sum = 0, sum2 = 0, lo = 1, hi = -1;
            size_t n = (size_t)8 * pair->in;
            for (size_t i = 0; i < n; i++) {
                double v = pair->a[i];
                sum += v, sum2 += v * v;
                lo = v < lo ? v : lo, hi = v > hi ? v : hi;
            }
            CHECK(lo >= -bound && hi < bound, "init: A of %s outside +-1/sqrt(in) = %g: [%g, %g]", sm_proj_name((sm_proj)p), bound, lo, hi);
            double mean = sum / n, var = sum2 / n - mean * mean, want = bound * bound / 3;
            CHECK(fabs(mean) < 4 * sqrt(want / n) && fabs(var / want - 1) < 0.2,
                  "init: A of %s has mean %g, variance %g (uniform: 0, %g)", sm_proj_name((sm_proj)p), mean, var, want);
            for (size_t i = 0; i < (size_t)pair->out * 8; i++)
                if (pair->b[i] != 0.0f) { CHECK(0, "init: B of %s is not zero", sm_proj_name((sm_proj)p)); break; }
        }
    CHECK(x->n_params == expect, "init: %zu parameters, expected %zu", x->n_params, expect);
    printf("init: %zu parameters in one slab; A within +-1/sqrt(in), uniform moments; B zero; seeded\n", x->n_params);

    sm_lora *a = sm_lora_new(&m->config, 4, 16.0f, 0, SM_LORA_TARGETS_ATTN, &err);
    sm_lora *b = sm_lora_new(&m->config, 4, 16.0f, 1, SM_LORA_TARGETS_ATTN, &err);
    CHECK(a && b && sm_lora_scale(a) == 4.0f && sm_lora_scale(b) == 8.0f, "scale: alpha 16 rank 4 gives %g (want 4), rsLoRA %g (want 8)",
          a ? sm_lora_scale(a) : 0, b ? sm_lora_scale(b) : 0);
    CHECK(!sm_lora_new(&m->config, 0, 1, 0, 1, &err) && err.code == SM_EINVAL, "rank 0 accepted");
    CHECK(!sm_lora_new(&m->config, 4, 1, 0, 0, &err) && err.code == SM_EINVAL, "an empty target mask accepted");
    CHECK(!sm_lora_new(&m->config, 4, 1, 0, 1u << SM_PROJ_COUNT, &err) && err.code == SM_EINVAL, "an unknown target accepted");
    unsigned t = 0;
    CHECK(!sm_lora_parse_targets("q,v,down", &t) && t == ((1u << SM_PROJ_Q) | (1u << SM_PROJ_V) | (1u << SM_PROJ_DOWN)), "targets q,v,down: %x", t);
    CHECK(!sm_lora_parse_targets("attn,gate_proj", &t) && t == (SM_LORA_TARGETS_ATTN | (1u << SM_PROJ_GATE)), "targets attn,gate_proj: %x", t);
    CHECK(sm_lora_parse_targets("q,x", &t) && sm_lora_parse_targets("", &t), "bad target lists accepted");
    sm_lora_free(a), sm_lora_free(b), sm_lora_free(x), sm_lora_free(y), sm_lora_free(z);
    sm_lora_free(NULL);
}

/* ---- files ---------------------------------------------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) free(buf), buf = NULL;
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

/* Seeded mutations of a valid file: 1-4 random bytes changed; whatever opens must be readable
 * in full (ASan catches a read outside the buffer). Returns how many opened. */
static int mutate_and_open(const unsigned char *good, size_t size, int iterations, int safetensors) {
    unsigned char *buf = malloc(size);
    int opened = 0;
    for (int it = 0; it < iterations; it++) {
        memcpy(buf, good, size);
        int n = 1 + (int)((urand() + 1) * 2);
        for (int k = 0; k < n; k++) {
            /* mostly the header, where the lengths and offsets are */
            size_t span = urand() < 0.6f ? (size < 2600 ? size : 2600) : size;
            size_t at = (size_t)((urand() + 1) * 0.5f * (float)span) % size;
            buf[at] = (unsigned char)((urand() + 1) * 128);
        }
        sm_error err = {0};
        double sum = 0;
        if (safetensors) {
            sm_safetensors *st = sm_safetensors_open_memory(buf, size, "mutated.safetensors", &err);
            for (int i = 0; st && i < sm_safetensors_n_tensors(st); i++) {
                const sm_st_tensor *t = sm_safetensors_tensor_at(st, i);
                for (size_t b = 0; b < t->nbytes; b++) sum += ((const unsigned char *)t->data)[b];
            }
            opened += st != NULL;
            sm_safetensors_close(st);
        } else {
            sm_lora *l = sm_lora_load_gguf_memory(buf, size, "mutated.gguf", &err);
            for (size_t i = 0; l && i < l->n_params; i++) sum += l->params[i];
            opened += l != NULL;
            sm_lora_free(l);
        }
        (void)sum;
    }
    free(buf);
    return opened;
}

/* Copies the GGUF file src to dst without the tensors named skip1 and skip2 (either may be NULL). */
static void copy_without(const char *src, const char *dst, const char *skip1, const char *skip2) {
    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(src, &err);
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (!g || !w) { fprintf(stderr, "copy_without: %s\n", err.msg); exit(1); }
    for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) sm_gguf_copy_kv(w, g, i);
    for (int64_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        if ((skip1 && !strcmp(t->name, skip1)) || (skip2 && !strcmp(t->name, skip2))) continue;
        sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (sm_gguf_write(w, dst, &err)) { fprintf(stderr, "copy_without: %s\n", err.msg); exit(1); }
    sm_gguf_writer_free(w);
    sm_gguf_close(g);
}

static void test_gguf_file(const sm_model *m, const sm_model *other) {
    sm_error err = {0};
    sm_lora *l = random_adapter(m, 4, 8.0f, 1, SM_LORA_TARGETS_ATTN | (1u << SM_PROJ_DOWN), 0.05f);
    l->activated = 1;
    const char *path = path_in_dir("a.gguf");
    CHECK(!sm_lora_save_gguf(l, path, &err), "save: %s", err.msg);
    sm_lora *r = sm_lora_load_gguf(path, &err);
    CHECK(r, "load: %s", err.msg);
    if (r) check_same_adapter("GGUF round trip", l, r);
    /* what llama.cpp reads: alpha for its alpha / rank, tensors {in, rank} and {rank, out} */
    sm_gguf *g = sm_gguf_open(path, &err);
    float alpha = 0;
    CHECK(g && !sm_gguf_get_f32(g, "adapter.lora.alpha", &alpha, &err) && fabsf(alpha / 4 - sm_lora_scale(l)) < 1e-6f,
          "adapter.lora.alpha %g does not give llama.cpp the scale %g", alpha, sm_lora_scale(l));
    const sm_gguf_tensor *ta = g ? sm_gguf_find_tensor(g, "blk.1.attn_k.weight.lora_a") : NULL;
    const sm_gguf_tensor *tb = g ? sm_gguf_find_tensor(g, "blk.1.attn_k.weight.lora_b") : NULL;
    CHECK(ta && tb && ta->ne[0] == 64 && ta->ne[1] == 4 && tb->ne[0] == 4 && tb->ne[1] == 32, "lora_a/lora_b shapes are not llama.cpp's");
    CHECK(g && !strcmp(sm_gguf_get_str(g, "general.type"), "adapter") && !strcmp(sm_gguf_get_str(g, "adapter.type"), "lora") &&
          !strcmp(sm_gguf_get_str(g, "general.architecture"), "llama"), "general.type / adapter.type / architecture");
    sm_gguf_close(g);

    /* an adapter stored in F16 or BF16 (convert_lora_to_gguf.py --outtype f16/bf16) reads as the rounded values */
    for (int half = 0; half < 2; half++) {
        int type = half ? SM_TYPE_BF16 : SM_TYPE_F16;
        sm_gguf *src = sm_gguf_open(path, &err);
        sm_gguf_writer *w = sm_gguf_writer_new();
        int64_t n = src ? sm_gguf_n_tensors(src) : 0;
        uint16_t **data = calloc((size_t)n + 1, sizeof *data);
        for (int64_t i = 0; src && i < sm_gguf_n_kv(src); i++) sm_gguf_copy_kv(w, src, i);
        for (int64_t i = 0; i < n; i++) {
            const sm_gguf_tensor *t = sm_gguf_tensor_at(src, i);
            size_t count = t->nbytes / 4;
            data[i] = malloc(count * 2);
            for (size_t k = 0; k < count; k++) {
                float x = ((const float *)t->data)[k];
                data[i][k] = half ? sm_fp32_to_bf16(x) : sm_fp32_to_fp16(x);
            }
            sm_gguf_add_tensor(w, t->name, type, t->n_dims, t->ne, data[i]);
        }
        const char *p16 = path_in_dir("a16.gguf");
        CHECK(src && !sm_gguf_write(w, p16, &err), "write %s adapter: %s", sm_type_name(type), err.msg);
        sm_lora *h = sm_lora_load_gguf(p16, &err);
        CHECK(h, "load %s adapter: %s", sm_type_name(type), err.msg);
        size_t bad = 0;
        for (size_t k = 0; h && k < l->n_params; k++)
            bad += h->params[k] != (half ? sm_bf16_to_fp32(sm_fp32_to_bf16(l->params[k])) : sm_fp16_to_fp32(sm_fp32_to_fp16(l->params[k])));
        CHECK(h && !bad, "%s adapter: %zu values are not the rounded originals", sm_type_name(type), bad);
        sm_lora_free(h);
        for (int64_t i = 0; i < n; i++) free(data[i]);
        free(data);
        sm_gguf_writer_free(w);
        sm_gguf_close(src);
    }

    /* a layer without a pair (as llama.cpp allows) keeps zeros; half a pair is refused */
    copy_without(path, path_in_dir("skip.gguf"), "blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b");
    sm_lora *sk = sm_lora_load_gguf(path_in_dir("skip.gguf"), &err);
    CHECK(sk, "an adapter without layer 0's q pair: %s", err.msg);
    if (sk) {
        const sm_lora_pair *q0 = sm_lora_at(sk, 0, SM_PROJ_Q), *q1 = sm_lora_at(sk, 1, SM_PROJ_Q), *o1 = sm_lora_at(l, 1, SM_PROJ_Q);
        size_t nonzero = 0;
        for (size_t i = 0; i < (size_t)q0->in * sk->rank; i++) nonzero += q0->a[i] != 0;
        for (size_t i = 0; i < (size_t)q0->out * sk->rank; i++) nonzero += q0->b[i] != 0;
        CHECK(!nonzero && !memcmp(q1->b, o1->b, (size_t)q1->out * sk->rank * sizeof(float)), "the skipped pair is not zero, or others moved");
    }
    sm_lora_free(sk);
    copy_without(path, path_in_dir("half.gguf"), "blk.1.attn_v.weight.lora_b", NULL);
    sk = sm_lora_load_gguf(path_in_dir("half.gguf"), &err);
    CHECK(!sk && strstr(err.msg, "blk.1.attn_v.weight has lora_a but no lora_b"), "half a pair: %s", sk ? "accepted" : err.msg);
    sm_lora_free(sk);

    /* the base check: this base passes, another is refused naming both files */
    char fp[65];
    CHECK(!sm_model_fingerprint(m, fp) && !strcmp(fp, l->base_fingerprint), "the fingerprint is not stable");
    CHECK(r && !sm_lora_check_base(r, path, m, NULL, &err), "check on its own base: %s", err.msg);
    int rc = r ? sm_lora_check_base(r, path, other, NULL, &err) : 0;
    CHECK(rc == SM_EINVAL && strstr(err.msg, path) && strstr(err.msg, sm_gguf_path(other->gguf)),
          "another base is not refused with both files named: %s", err.msg);
    if (rc) printf("refused: %s\n", err.msg);
    /* a fingerprint-less (llama.cpp) adapter is checked on shapes only */
    if (r) r->base_fingerprint[0] = 0;
    CHECK(r && !sm_lora_check_base(r, path, other, NULL, &err), "shape-only check failed: %s", err.msg);

    /* every truncation of the file is refused, and so are corrupt bytes, without a crash */
    size_t size;
    unsigned char *buf = read_all(path, &size);
    int refused = 0, tried = 0;
    for (size_t n = 0; buf && n < size; n += n < 2600 ? 1 : 997, tried++) {
        sm_lora *t = sm_lora_load_gguf_memory(buf, n, "truncated.gguf", &err);
        refused += !t;
        if (t) fprintf(stderr, "truncated at %zu of %zu bytes: accepted\n", n, size);
        sm_lora_free(t);
    }
    CHECK(refused == tried, "%d of %d truncations accepted", tried - refused, tried);
    int opened = buf ? mutate_and_open(buf, size, 3000, 0) : 0;
    size_t at_name = 0; /* a tensor name changed to something that is no projection */
    for (size_t i = 0; buf && i + 10 < size; i++)
        if (!memcmp(buf + i, "attn_q.weight", 13)) { at_name = i; break; }
    if (at_name) {
        buf[at_name + 5] = 'z';
        sm_lora *t = sm_lora_load_gguf_memory(buf, size, "renamed.gguf", &err);
        CHECK(!t && strstr(err.msg, "attn_z"), "a renamed tensor is not refused by name: %s", err.msg);
        sm_lora_free(t);
        buf[at_name + 5] = 'q';
    }
    /* a NaN in the data */
    if (buf) {
        float nan = NAN;
        memcpy(buf + size - 4, &nan, 4);
        sm_lora *t = sm_lora_load_gguf_memory(buf, size, "nan.gguf", &err);
        CHECK(!t && strstr(err.msg, "non-finite"), "a NaN is not refused: %s", err.msg);
        sm_lora_free(t);
    }
    printf("gguf: round trip exact; F16 and BF16 files read; %d truncations, a renamed tensor and a NaN refused; 3000 mutations, %d opened\n", tried, opened);
    free(buf);
    sm_lora_free(r);
    sm_lora_free(l);
}

static void test_peft_file(const sm_model *m) {
    sm_error err = {0};
    sm_lora *l = random_adapter(m, 4, 12.0f, 0, SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP, 0.05f);
    const char *peft = path_in_dir("peft");
    CHECK(!sm_lora_save_peft(l, "tiny-base", peft, &err), "save peft: %s", err.msg);
    sm_lora *r = sm_lora_load_peft(peft, &m->config, &err);
    CHECK(r, "load peft: %s", err.msg);
    if (r) check_same_adapter("PEFT round trip", l, r);
    sm_lora *r2 = sm_lora_load_peft(peft, NULL, &err); /* ours names its base's architecture and heads */
    CHECK(r2, "load peft without a base: %s", err.msg);
    if (r2) check_same_adapter("PEFT round trip without a base", l, r2);
    sm_lora_free(r2);

    /* The permutation means: HF rows with HF's RoPE (NEOX pairs) give the same q.k scores as our
     * rows with llama.cpp's (NORM pairs). Take q = B_q v, k = B_k w from the file and from l. */
    sm_safetensors *st = sm_safetensors_open(path_in_dir("peft/adapter_model.safetensors"), &err);
    CHECK(st, "open safetensors: %s", err.msg);
    const sm_st_tensor *bq = st ? sm_safetensors_find(st, "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight") : NULL;
    const sm_st_tensor *bk = st ? sm_safetensors_find(st, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight") : NULL;
    const sm_st_tensor *av = st ? sm_safetensors_find(st, "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight") : NULL;
    CHECK(bq && bk && av && bq->shape[0] == 64 && bq->shape[1] == 4 && av->shape[0] == 4 && av->shape[1] == 64,
          "PEFT tensor names or shapes (lora_A (r, in), lora_B (out, r))");
    if (bq && bk) {
        const sm_lora_pair *pq = sm_lora_at(l, 1, SM_PROJ_Q), *pk = sm_lora_at(l, 1, SM_PROJ_K);
        CHECK(memcmp(bq->data, pq->b, bq->nbytes), "q's B is not permuted in the PEFT file");
        float v[4], w[4], q_hf[64], k_hf[32], q_gg[64], k_gg[32];
        for (int i = 0; i < 4; i++) v[i] = urand(), w[i] = urand();
        matmul_forward_ref(q_hf, v, bq->data, SM_TYPE_F32, 1, 4, 64);
        matmul_forward_ref(k_hf, w, bk->data, SM_TYPE_F32, 1, 4, 32);
        matmul_forward_ref(q_gg, v, pq->b, SM_TYPE_F32, 1, 4, 64);
        matmul_forward_ref(k_gg, w, pk->b, SM_TYPE_F32, 1, 4, 32);
        int qpos[1] = {5}, kpos[1] = {2};
        rope_forward_ref(q_hf, qpos, 1, 4, 16, 10000.0f, 1), rope_forward_ref(k_hf, kpos, 1, 2, 16, 10000.0f, 1);
        rope_forward_ref(q_gg, qpos, 1, 4, 16, 10000.0f, 0), rope_forward_ref(k_gg, kpos, 1, 2, 16, 10000.0f, 0);
        double worst = 0;
        for (int h = 0; h < 4; h++) {
            double s_hf = 0, s_gg = 0;
            for (int d = 0; d < 16; d++) s_hf += q_hf[h * 16 + d] * k_hf[h / 2 * 16 + d], s_gg += q_gg[h * 16 + d] * k_gg[h / 2 * 16 + d];
            worst = fmax(worst, fabs(s_hf - s_gg));
        }
        CHECK(worst < 1e-5, "q.k under HF RoPE and under llama.cpp RoPE differ by %g", worst);
        printf("peft: round trip exact (F16 and BF16 files read too); q/k scores under HF and llama.cpp RoPE agree to %.2g\n", worst);
    }
    if (st) { /* PEFT files saved in F16 or BF16 read as the rounded values */
        for (int half = 0; half < 2; half++) {
            int type = half ? SM_TYPE_BF16 : SM_TYPE_F16, n = sm_safetensors_n_tensors(st);
            sm_st_tensor *all = calloc((size_t)n, sizeof *all);
            uint16_t **data = calloc((size_t)n, sizeof *data);
            for (int i = 0; i < n; i++) {
                const sm_st_tensor *t = sm_safetensors_tensor_at(st, i);
                size_t count = t->nbytes / 4;
                all[i] = *t, all[i].type = type;
                data[i] = malloc(count * 2);
                for (size_t k = 0; k < count; k++) {
                    float x;
                    memcpy(&x, (const char *)t->data + 4 * k, 4);
                    data[i][k] = half ? sm_fp32_to_bf16(x) : sm_fp32_to_fp16(x);
                }
                all[i].data = data[i];
            }
            const char *d16 = path_in_dir("peft16"), *f16 = path_in_dir("peft16/adapter_model.safetensors");
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/adapter_config.json' '%s/'", d16, peft, d16);
            CHECK(!system(cmd) && !sm_safetensors_write(f16, all, n, NULL, 0, &err), "write %s PEFT: %s", sm_type_name(type), err.msg);
            sm_lora *h = sm_lora_load_peft(d16, &m->config, &err);
            CHECK(h, "load %s PEFT: %s", sm_type_name(type), err.msg);
            size_t bad = 0;
            for (size_t k = 0; h && k < l->n_params; k++) {
                float want = half ? sm_bf16_to_fp32(sm_fp32_to_bf16(l->params[k])) : sm_fp16_to_fp32(sm_fp32_to_fp16(l->params[k]));
                bad += h->params[k] != want;
            }
            CHECK(h && !bad, "%s PEFT: %zu values are not the rounded originals", sm_type_name(type), bad);
            sm_lora_free(h);
            for (int i = 0; i < n; i++) free(data[i]);
            free(data), free(all);
        }
    }
    if (st) { /* a foreign directory (no snipmeta metadata) needs the base */
        sm_st_tensor *all = calloc((size_t)sm_safetensors_n_tensors(st), sizeof *all);
        for (int i = 0; i < sm_safetensors_n_tensors(st); i++) all[i] = *sm_safetensors_tensor_at(st, i);
        const char *dirs[2] = {path_in_dir("foreign"), path_in_dir("foreign/adapter_model.safetensors")};
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/adapter_config.json' '%s/'", dirs[0], peft, dirs[0]);
        CHECK(!system(cmd) && !sm_safetensors_write(dirs[1], all, sm_safetensors_n_tensors(st), NULL, 0, &err), "write foreign: %s", err.msg);
        sm_lora *f = sm_lora_load_peft(dirs[0], NULL, &err);
        CHECK(!f && err.code == SM_EINVAL && strstr(err.msg, "base"), "a foreign PEFT directory without a base: %s", f ? "accepted" : err.msg);
        sm_lora_free(f);
        f = sm_lora_load_peft(dirs[0], &m->config, &err);
        CHECK(f, "a foreign PEFT directory with its base: %s", err.msg);
        if (f) {
            CHECK(!memcmp(f->params, l->params, l->n_params * sizeof(float)), "foreign PEFT parameters differ");
            CHECK(!f->task[0] && !f->base_fingerprint[0], "foreign PEFT directory has a task or fingerprint");
        }
        sm_lora_free(f);
        free(all);
    }
    sm_safetensors_close(st);

    /* truncated or corrupt safetensors are refused */
    size_t size;
    unsigned char *buf = read_all(path_in_dir("peft/adapter_model.safetensors"), &size);
    int refused = 0, tried = 0;
    for (size_t n = 0; buf && n < size; n += n < 700 ? 7 : 1999, tried++) {
        sm_safetensors *t = sm_safetensors_open_memory(buf, n, "truncated.safetensors", &err);
        refused += !t;
        sm_safetensors_close(t);
    }
    CHECK(refused == tried, "%d of %d safetensors truncations accepted", tried - refused, tried);
    static const char *const bad[] = {
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 40]}}",
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}",
        "{\"x\": {\"dtype\": \"Q9\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}",
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 0]}}",
        "[1, 2]",
        "{\"x\": ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char file[512] = {0};
        size_t n = strlen(bad[i]);
        file[0] = (unsigned char)n;
        memcpy(file + 8, bad[i], n);
        sm_safetensors *t = sm_safetensors_open_memory(file, 8 + n + 8, "bad.safetensors", &err);
        CHECK(!t, "corrupt safetensors header %zu accepted: %s", i, bad[i]);
        sm_safetensors_close(t);
    }
    int opened = buf ? mutate_and_open(buf, size, 3000, 1) : 0;
    if (buf) { /* a truncated file in the adapter directory: the loader names it */
        write_all(path_in_dir("peft/adapter_model.safetensors"), buf, size - 10);
        sm_lora *t = sm_lora_load_peft(peft, &m->config, &err);
        CHECK(!t && strstr(err.msg, "adapter_model.safetensors"), "a truncated PEFT file is not refused by name: %s", err.msg);
        sm_lora_free(t);
    }
    write_all(path_in_dir("peft/adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 4", 28);
    sm_lora *t = sm_lora_load_peft(peft, &m->config, &err);
    CHECK(!t && strstr(err.msg, "adapter_config.json"), "a corrupt adapter_config.json is not refused by name: %s", err.msg);
    sm_lora_free(t);
    printf("safetensors: %d truncations and %zu corrupt headers refused; 3000 mutations, %d opened\n", tried,
           sizeof bad / sizeof bad[0], opened);
    free(buf);
    sm_lora_free(r);
    sm_lora_free(l);
}

/* ---- the forward pass ----------------------------------------------------------------------- */

/* Writes a copy of m in which every projection is F32: dequantized W plus, for the adapters,
 * sum scale_i * s_i * B_i A_i accumulated in double here (independently of lora.c). */
static void write_merged_reference(const sm_model *m, const sm_lora *const *ls, const float *scales, int n, const char *path) {
    const sm_gguf *g = m->gguf;
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (int64_t i = 0; i < sm_gguf_n_kv(g); i++) sm_gguf_copy_kv(w, g, i);
    int64_t n_t = sm_gguf_n_tensors(g);
    float **bufs = calloc((size_t)n_t, sizeof *bufs);
    for (int64_t i = 0; i < n_t; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        int layer = -1, proj = -1;
        for (int l = 0; l < m->config.n_layer; l++)
            for (int p = 0; p < SM_PROJ_COUNT; p++)
                if (!strcmp(m->layers[l].proj[p].name, t->name)) layer = l, proj = p;
        if (layer < 0) { sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data); continue; }
        int in = (int)t->ne[0], out = (int)t->ne[1];
        float *f = bufs[i] = malloc((size_t)in * out * sizeof(float));
        sm_dequantize_row(t->type, f, t->data, (int64_t)in * out);
        for (int k = 0; k < n; k++) {
            const sm_lora_pair *pair = sm_lora_at(ls[k], layer, (sm_proj)proj);
            if (!pair->a) continue;
            double s = (double)scales[k] * (ls[k]->rslora ? ls[k]->alpha / sqrt(ls[k]->rank) : ls[k]->alpha / ls[k]->rank);
            for (int o = 0; o < out; o++)
                for (int c = 0; c < in; c++) {
                    double d = 0;
                    for (int r = 0; r < ls[k]->rank; r++) d += (double)pair->b[(size_t)o * ls[k]->rank + r] * pair->a[(size_t)r * in + c];
                    f[(size_t)o * in + c] = (float)(f[(size_t)o * in + c] + s * d);
                }
        }
        sm_gguf_add_tensor(w, t->name, SM_TYPE_F32, t->n_dims, t->ne, f);
    }
    sm_error err = {0};
    if (sm_gguf_write(w, path, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    for (int64_t i = 0; i < n_t; i++) free(bufs[i]);
    free(bufs);
    sm_gguf_writer_free(w);
}

static const int seq[] = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889, 13, 1576, 338, 263};
enum { N_SEQ = sizeof seq / sizeof seq[0] };

/* All logits ((N_SEQ, n_vocab), malloc'd) of seq under m with the adapters from position start. */
static float *run(const sm_model *m, const sm_lora *const *ls, const float *scales, int n, int start) {
    sm_error err = {0};
    sm_context *c = sm_context_new(m, 64, 0, &err);
    float *logits = malloc((size_t)N_SEQ * m->config.n_vocab * sizeof(float));
    if (!c || sm_context_set_adapters(c, ls, scales, n, &err)) { fprintf(stderr, "context: %s\n", err.msg); exit(1); }
    sm_context_set_adapter_start(c, start);
    if (sm_forward(c, seq, N_SEQ, logits, 1, &err)) { fprintf(stderr, "forward: %s\n", err.msg); exit(1); }
    sm_context_free(c);
    return logits;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_forward(int type, uint64_t seed) {
    char name[64];
    snprintf(name, sizeof name, "base-%s.gguf", sm_type_name(type));
    sm_model *m = make_base(name, type, seed);
    size_t n_logits = (size_t)N_SEQ * m->config.n_vocab;
    sm_lora *a = random_adapter(m, 4, 8.0f, 0, SM_LORA_TARGETS_ATTN | SM_LORA_TARGETS_MLP, 0.5f);
    sm_lora *b = random_adapter(m, 8, 4.0f, 1, (1u << SM_PROJ_V) | (1u << SM_PROJ_UP), 0.5f);
    const sm_lora *ls[2] = {a, b};
    const float scales[2] = {0.7f, -1.3f}, zero[2] = {0, 0};
    sm_error err = {0};

    float *base = run(m, NULL, NULL, 0, 0), *unmerged = run(m, ls, scales, 2, 0);
    write_merged_reference(m, ls, zero, 0, path_in_dir("ref-base.gguf"));
    write_merged_reference(m, ls, scales, 2, path_in_dir("ref-lora.gguf"));
    CHECK(!sm_lora_merge_gguf(m, ls, scales, 2, path_in_dir("merged.gguf"), &err), "merge: %s", err.msg);
    sm_model *rb = sm_model_load(path_in_dir("ref-base.gguf"), &err), *rl = sm_model_load(path_in_dir("ref-lora.gguf"), &err);
    sm_model *mg = sm_model_load(path_in_dir("merged.gguf"), &err);
    if (!rb || !rl || !mg) { CHECK(0, "load references: %s", err.msg); exit(1); }
    float *ref_base = run(rb, NULL, NULL, 0, 0), *ref_lora = run(rl, NULL, NULL, 0, 0), *merged = run(mg, NULL, NULL, 0, 0);

    /* The unmerged product is f32 whatever the base's type (project() adds s*B(Ax) to W x the
     * same way for every type), so float bases, whose W x is f32 too, must match the all-f32
     * merged model to float rounding: that is the exact check. A quantized base rounds its matmul
     * inputs to Q8_0, as llama.cpp does, and the merged f32 model does not; with the adapters'
     * larger activations that rounding grows past the base's own drift, so there the check is a
     * sanity bound: 4x the base's drift plus 2% of the largest logit. */
    double drift = max_diff(base, ref_base, n_logits), scale_of = 0;
    for (size_t i = 0; i < n_logits; i++) scale_of = fmax(scale_of, fabs(ref_lora[i]));
    double tol = drift > 0 ? 4 * drift + 2e-2 * scale_of : 2e-5 * scale_of;
    double d_unmerged = max_diff(unmerged, ref_lora, n_logits), d_merged = max_diff(merged, ref_lora, n_logits);
    double effect = max_diff(unmerged, base, n_logits);
    printf("forward %-5s: |logits| <= %.3g; adapters move logits by %.3g; unmerged vs W+sBA %.3g (tol %.3g, base's own "
           "f32 drift %.3g); sm_lora_merge_gguf vs W+sBA %.3g\n", sm_type_name(type), scale_of, effect, d_unmerged, tol, drift, d_merged);
    CHECK(effect > 10 * tol, "%s: the adapters barely change the logits (%g), the test proves nothing", sm_type_name(type), effect);
    CHECK(d_unmerged <= tol, "%s: unmerged differs from W + s*B*A by %g (tol %g)", sm_type_name(type), d_unmerged, tol);
    CHECK(d_merged <= 2e-5 * scale_of, "%s: merged differs from W + s*B*A by %g", sm_type_name(type), d_merged);

    /* token by token (a decode step's own LoRA path) as the whole prefill */
    {
        sm_context *c1 = sm_context_new(m, 64, 0, &err);
        float *step = malloc(n_logits * sizeof(float));
        for (int t = 0; t < N_SEQ; t++) sm_forward(c1, seq + t, 1, step + (size_t)t * m->config.n_vocab, 0, &err);
        double d_base = max_diff(step, base, n_logits); /* the base's own step-vs-batch difference */
        sm_context_truncate(c1, 0, &err);
        sm_context_set_adapters(c1, ls, scales, 2, &err);
        for (int t = 0; t < N_SEQ; t++) sm_forward(c1, seq + t, 1, step + (size_t)t * m->config.n_vocab, 0, &err);
        double d_step = max_diff(step, unmerged, n_logits);
        /* The f32 kernels sum in another order for one row than for many (d_base for the base);
         * behind a quantized base's Q8_0 activation rounding such a difference can flip one int8
         * step, so there the bound is the tolerance of that rounding (tol above). */
        double step_tol = 3 * d_base + (drift > 0 ? tol : 2e-5 * scale_of);
        CHECK(d_step <= step_tol, "%s: token-by-token with adapters differs from the prefill by %g (tol %g; base: %g)",
              sm_type_name(type), d_step, step_tol, d_base);
        printf("decode %-5s: token by token vs prefill with adapters %.3g (tol %.3g; the base's own %.3g)\n", sm_type_name(type),
               d_step, step_tol, d_base);
        free(step);
        sm_context_free(c1);
    }

    /* activated: positions < start are the base's, bit for bit; from start on, the same as a
     * base prefix followed by the adapters (the shared-prefix use: truncate and swap adapters) */
    int start = 9;
    float *act = run(m, ls, scales, 2, start);
    size_t V = (size_t)m->config.n_vocab;
    CHECK(!memcmp(act, base, start * V * sizeof(float)), "%s: activated adapters touch positions before the start", sm_type_name(type));
    sm_context *c = sm_context_new(m, 64, 0, &err);
    float *two = malloc(n_logits * sizeof(float));
    sm_forward(c, seq, N_SEQ, NULL, 0, &err); /* the base over everything, then cut back to the prefix */
    sm_context_truncate(c, start, &err);
    sm_context_set_adapters(c, ls, scales, 2, &err);
    sm_forward(c, seq + start, N_SEQ - start, two, 1, &err);
    double d_act = max_diff(act + start * V, two, (N_SEQ - start) * V);
    CHECK(d_act <= 2e-5 * scale_of, "%s: activated suffix differs from prefix-then-adapters by %g", sm_type_name(type), d_act);
    CHECK(max_diff(act + start * V, base + start * V, (N_SEQ - start) * V) > 10 * tol, "%s: activated adapters do nothing after the start", sm_type_name(type));
    /* a swap is a pointer change: the other adapter alone on the same prefix */
    sm_context_truncate(c, start, &err);
    sm_context_set_adapters(c, ls + 1, scales + 1, 1, &err);
    sm_forward(c, seq + start, N_SEQ - start, two, 1, &err);
    float *only_b = run(m, ls + 1, scales + 1, 1, start);
    double d_swap = max_diff(only_b + start * V, two, (N_SEQ - start) * V);
    CHECK(d_swap <= 2e-5 * scale_of, "%s: swapped adapter differs by %g", sm_type_name(type), d_swap);
    printf("activated %-5s: prefix of %d positions bit-identical to the base; suffix vs prefix-then-adapters %.3g, after a swap %.3g\n",
           sm_type_name(type), start, d_act, d_swap);

    /* an adapter of another shape is refused by the context */
    sm_model_config cfg = m->config;
    cfg.n_ff = 64;
    sm_lora *wrong = sm_lora_new(&cfg, 2, 2, 0, SM_LORA_TARGETS_MLP, &err);
    const sm_lora *wl[1] = {wrong};
    float one = 1;
    CHECK(sm_context_set_adapters(c, wl, &one, 1, &err) == SM_EINVAL && strstr(err.msg, "ffn_gate"), "a wrong shape is not refused: %s", err.msg);

    free(only_b), free(two), free(act), free(base), free(unmerged), free(ref_base), free(ref_lora), free(merged);
    sm_context_free(c);
    sm_lora_free(wrong), sm_lora_free(a), sm_lora_free(b);
    sm_model_free(rb), sm_model_free(rl), sm_model_free(mg), sm_model_free(m);
}

int main(int argc, char **argv) {
    char vocab_path[512];
    snprintf(vocab_path, sizeof vocab_path, "%s/fixtures/tokenizers/ggml-vocab-llama-spm.gguf", argc > 1 ? argv[1] : "../shared");
    if (access(vocab_path, R_OK)) { printf("test_lora: SKIP: %s is missing\n", vocab_path); return 77; }
    sm_error err = {0};
    sm_gguf *v = sm_gguf_open(vocab_path, &err);
    if (!v) { fprintf(stderr, "%s\n", err.msg); return 1; }
    vocab = v;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sm_test_lora_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }

    sm_model *m = make_base("base.gguf", SM_TYPE_F32, 1), *other = make_base("other.gguf", SM_TYPE_F32, 2);
    test_init(m);
    test_gguf_file(m, other);
    test_peft_file(m);
    sm_model_free(other), sm_model_free(m);
    static const int types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
    for (int i = 0; i < 5; i++) test_forward(types[i], 10 + (uint64_t)i);

    sm_gguf_close(v);
    if (getenv("KEEP")) return failures != 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) { fprintf(stderr, "test_lora: %d failures\n", failures); return 1; }
    printf("test_lora: all passed\n");
    return 0;
}
