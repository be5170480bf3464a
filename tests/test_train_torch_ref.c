/* test_train_torch_ref.c: the training forward/backward against PyTorch.
 *
 * tests/ref/train_ref.bin (written by tests/ref/gen_torch_train_ref.py with Debian's python3-torch,
 * in float64; its layout is described at the top of that script) holds a tiny Llama model, a LoRA
 * adapter on q/k/v/o, a batch with masked targets and packed segments, and PyTorch's logits, loss,
 * LoRA gradients and full fine-tune gradients. This test builds the same model in memory
 * (tests/ref/tiny_model.h), runs sm_train_forward_logits and sm_train_forward_backward in LoRA and
 * full mode, and prints each tensor's max abs and relative difference against its tolerance.
 * The dump is read field by field with every count checked. Exits 1 on any failure.
 */
#include "train_model.h"

#include "ref/tiny_model.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAGIC 0x52544d53u
#define REF_VERSION 1u

static int failures;

typedef struct {
    const unsigned char *p, *end;
    const char *path;
} reader;

static int need(reader *r, size_t n, const char *what) {
    if ((size_t)(r->end - r->p) < n) {
        fprintf(stderr, "%s: truncated at %s\n", r->path, what);
        return -1;
    }
    return 0;
}
static uint32_t rd_u32(reader *r) {
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}
static int rd_ints(reader *r, int *out, size_t n, const char *what) {
    if (need(r, 4 * n, what)) return -1;
    for (size_t i = 0; i < n; i++) out[i] = (int32_t)rd_u32(r);
    return 0;
}
static int rd_floats(reader *r, float *out, size_t n, const char *what) {
    if (need(r, 4 * n, what)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = rd_u32(r);
        memcpy(&out[i], &u, 4);
    }
    return 0;
}
static int rd_double(reader *r, double *out, const char *what) {
    if (need(r, 8, what)) return -1;
    uint64_t lo = rd_u32(r), hi = rd_u32(r), u = lo | hi << 32;
    memcpy(out, &u, 8);
    return 0;
}

static void compare(const char *what, const float *got, const float *want, size_t n, double tol) {
    double max_abs = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        const double e = fabs((double)got[i] - want[i]);
        if (e > max_abs || e != e) max_abs = e;
    }
    const double floor_ = scale > 1e-6 ? scale : 1e-6;
    const int bad = !(max_abs <= tol * floor_);
    printf("%-40s n %5zu  max|torch| %9.3g  max abs diff %9.3g  rel %9.3g  tol %6.0e  %s\n", what, n, scale, max_abs,
           max_abs / floor_, tol, bad ? "FAIL" : "ok");
    if (bad) failures++;
}

static void compare_loss(const char *what, double got, double want) {
    const double e = fabs(got - want);
    const int bad = !(e <= 1e-5 * fabs(want));
    printf("%-40s snipmeta %.9f  torch %.9f  abs diff %.3g  tol 1e-5 rel  %s\n", what, got, want, e, bad ? "FAIL" : "ok");
    if (bad) failures++;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && n < (1l << 26) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) &&
            fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *size = n > 0 ? (size_t)n : 0;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char path[4096];
    const char *src = __FILE__, *slash = strrchr(src, '/');
    snprintf(path, sizeof path, "%.*sref/train_ref.bin", slash ? (int)(slash - src + 1) : 0, src);
    size_t size = 0;
    unsigned char *buf = read_file(path, &size);
    if (!buf) { fprintf(stderr, "%s: cannot read\n", path); return 1; }
    reader r = {buf, buf + size, path};
    int hdr[10];
    float fh[3];
    if (need(&r, 8, "header") || rd_u32(&r) != REF_MAGIC) { fprintf(stderr, "%s: not a train reference dump\n", path); return 1; }
    uint32_t version = rd_u32(&r);
    if (version != REF_VERSION) { fprintf(stderr, "%s: version %u, expected %u\n", path, version, REF_VERSION); return 1; }
    if (rd_ints(&r, hdr, 10, "config") || rd_floats(&r, fh, 3, "config")) return 1;
    sm_model_config c = {.arch = "llama", .n_vocab = hdr[0], .n_embd = hdr[1], .n_layer = hdr[2], .n_head = hdr[3],
                         .n_head_kv = hdr[4], .n_ff = hdr[5], .n_ctx_train = 64, .rope_theta = fh[1],
                         .norm_eps = fh[2], .rope_neox = 0, .tied_output = 0};
    const int B = hdr[6], T = hdr[7], rank = hdr[8];
    const unsigned targets_mask = (unsigned)hdr[9];
    if (c.n_vocab < 2 || c.n_vocab > 4096 || c.n_embd < 2 || c.n_embd > 1024 || c.n_layer < 1 || c.n_layer > 8 ||
        c.n_head < 1 || c.n_head_kv < 1 || c.n_head % c.n_head_kv || c.n_embd % c.n_head || c.n_ff < 1 ||
        c.n_ff > 4096 || B < 1 || B > 16 || T < 1 || T > 256 || rank < 1 || rank > 64 || targets_mask == 0 ||
        targets_mask >= (1u << SM_PROJ_COUNT)) {
        fprintf(stderr, "%s: implausible config\n", path);
        return 1;
    }
    c.head_dim = c.n_embd / c.n_head;
    const int n = B * T;
    int *tokens = malloc(sizeof(int) * n), *targets = malloc(sizeof(int) * n), *seg = malloc(sizeof(int) * n);
    const size_t n_weights = tiny_weights_count(&c, 0);
    float *weights = malloc(sizeof(float) * n_weights), *full_grads = malloc(sizeof(float) * n_weights);
    float *ref_logits = malloc(sizeof(float) * (size_t)n * c.n_vocab), *logits = malloc(sizeof(float) * (size_t)n * c.n_vocab);
    if (rd_ints(&r, tokens, n, "tokens") || rd_ints(&r, targets, n, "targets") || rd_ints(&r, seg, n, "seg") ||
        rd_floats(&r, weights, n_weights, "weights"))
        return 1;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c.n_vocab || targets[i] < -1 || targets[i] >= c.n_vocab) {
            fprintf(stderr, "%s: token or target out of range at %d\n", path, i);
            return 1;
        }

    omp_set_num_threads(2);
    tiny_model tm;
    tiny_model_build(&tm, &c, weights, SM_TYPE_F32, 0);
    sm_error err = {0};
    sm_lora *lo = sm_lora_new(&c, rank, fh[0], 0, targets_mask, &err);
    if (!lo) { fprintf(stderr, "sm_lora_new: %s\n", err.msg); return 1; }
    /* the adapter: per layer, per targeted projection, A then B */
    for (int l = 0; l < c.n_layer; l++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pr = sm_lora_at(lo, l, p);
            if (!pr->a) continue;
            if (rd_floats(&r, pr->a, (size_t)rank * pr->in, "lora A") || rd_floats(&r, pr->b, (size_t)pr->out * rank, "lora B"))
                return 1;
        }
    double ref_loss, ref_full_loss;
    if (rd_floats(&r, ref_logits, (size_t)n * c.n_vocab, "logits") || rd_double(&r, &ref_loss, "loss")) return 1;
    float *ref_lora_grads = calloc(lo->n_params, sizeof(float));
    for (int l = 0; l < c.n_layer; l++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pr = sm_lora_at(lo, l, p);
            if (!pr->a) continue;
            if (rd_floats(&r, ref_lora_grads + (pr->a - lo->params), (size_t)rank * pr->in, "lora dA") ||
                rd_floats(&r, ref_lora_grads + (pr->b - lo->params), (size_t)pr->out * rank, "lora dB"))
                return 1;
        }
    if (rd_double(&r, &ref_full_loss, "full loss") || rd_floats(&r, full_grads, n_weights, "full grads")) return 1;
    if (r.p != r.end) { fprintf(stderr, "%s: %zu bytes after the last field\n", path, (size_t)(r.end - r.p)); return 1; }
    printf("%s: V %d, n_embd %d, %d layers, %d/%d heads, ffn %d, batch %dx%d, rank %d, alpha %g\n", path, c.n_vocab,
           c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff, B, T, rank, fh[0]);

    /* LoRA mode */
    sm_train_model *t = sm_train_model_new(&tm.model, lo, SM_TRAIN_LORA, B, T, 0.0f, 1, &err);
    if (!t) { fprintf(stderr, "sm_train_model_new: %s\n", err.msg); return 1; }
    sm_train_forward_logits(t, tokens, seg, B, T, logits, &err);
    compare("lora logits", logits, ref_logits, (size_t)n * c.n_vocab, 1e-5);
    float loss = 0.0f;
    sm_train_zero_grads(t);
    if (sm_train_forward_backward(t, tokens, targets, seg, B, T, &loss, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    compare_loss("lora loss", loss, ref_loss);
    const float *grads = sm_train_grads(t, NULL);
    for (int i = 0; i < sm_train_n_tensors(t); i++) {
        const sm_train_tensor *tt = sm_train_tensor_at(t, i);
        compare(tt->name, grads + tt->offset, ref_lora_grads + tt->offset, tt->n, 1e-4);
    }
    sm_train_model_free(t);

    /* full mode, no adapter */
    t = sm_train_model_new(&tm.model, NULL, SM_TRAIN_FULL, B, T, 0.0f, 1, &err);
    if (!t) { fprintf(stderr, "sm_train_model_new: %s\n", err.msg); return 1; }
    sm_train_zero_grads(t);
    sm_train_forward_backward(t, tokens, targets, seg, B, T, &loss, &err);
    compare_loss("full loss", loss, ref_full_loss);
    grads = sm_train_grads(t, NULL);
    for (int i = 0; i < sm_train_n_tensors(t); i++) {
        const sm_train_tensor *tt = sm_train_tensor_at(t, i);
        compare(tt->name, grads + tt->offset, full_grads + tt->offset, tt->n, 1e-4);
    }
    sm_train_model_free(t);
    sm_lora_free(lo);
    tiny_model_free(&tm);
    free(buf); free(tokens); free(targets); free(seg); free(weights); free(full_grads); free(ref_logits); free(logits);
    free(ref_lora_grads);
    if (failures) {
        printf("%d check(s) FAILED\n", failures);
        return 1;
    }
    printf("all PyTorch reference checks passed\n");
    return 0;
}
