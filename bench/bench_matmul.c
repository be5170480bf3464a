/* bench_matmul.c: throughput of matmul_forward and attention_forward on the SmolLM2-135M shapes
 * (n_embd 576, n_ff 1536, n_head 9, n_head_kv 3, head_dim 64, vocab 49152, 30 layers).
 *
 * Prints one JSON line per case, the median of several runs ("us") and the best ("min_us"):
 *   {"bench":"matmul","impl":"opt","isa":"avx512","type":"q8_0","n":1,"in":576,"out":1536,
 *    "threads":2,"us":...,"gflops":...,"gbps":...}
 * impl "ref" is the plain reference on the same shape (one run); "estimate" lines add the
 * best runs of the matmuls and attention of a whole forward pass up into tokens per second (the
 * best, as a shared machine's scheduler noise swamps medians).
 * One-token cases cycle through enough copies of the weights to miss the caches, as a real
 * decode does. Usage: bench_matmul [--threads T] [--no-ref] [--types q8_0,q4_0,...] [--isa NAME]
 */
#include "kernels.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_LAYER = 30, N_EMBD = 576, N_FF = 1536, N_HEAD = 9, N_HEAD_KV = 3, HEAD_DIM = 64, N_VOCAB = 49152 };

typedef struct { const char *name; int in, out, per_layer; } shape;
static const shape shapes[] = {
    {"attn_q", N_EMBD, N_HEAD * HEAD_DIM, 1},    {"attn_kv", N_EMBD, N_HEAD_KV * HEAD_DIM, 2},
    {"attn_output", N_EMBD, N_EMBD, 1},          {"ffn_gate_up", N_EMBD, N_FF, 2},
    {"ffn_down", N_FF, N_EMBD, 1},               {"output", N_EMBD, N_VOCAB, 0},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])
static const int ns[] = {1, 128, 512};

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * 0x1p-24) * 2.0f - 1.0f;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) { fprintf(stderr, "bench_matmul: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}

/* Median microseconds of matmul (ref or optimised); copies > 1 cycles through weight copies. */
static double time_matmul(int ref, float *y, const float *x, const unsigned char *w, size_t wbytes, int copies,
                          int type, int n, int in, int out, double *min_us) {
    double t[64];
    int reps = 0;
    const double start = now_us();
    const int max_reps = ref ? 1 : 64;
    for (int r = 0; r < max_reps + 1; r++) {
        const unsigned char *wc = w + (size_t)(r % copies) * wbytes;
        const double t0 = now_us();
        (ref ? matmul_forward_ref : matmul_forward)(y, x, wc, type, n, in, out);
        const double dt = now_us() - t0;
        if (r > 0 || ref) t[reps++] = dt; /* the first run warms up */
        if (reps >= 3 && now_us() - start > 4e5) break;
    }
    qsort(t, reps, sizeof t[0], cmp_double);
    *min_us = t[0];
    return t[reps / 2];
}

static double time_attention(int n, int n_ctx, int threads, double *min_us) {
    const size_t qlen = (size_t)n * N_HEAD * HEAD_DIM, kvlen = (size_t)n_ctx * N_HEAD_KV * HEAD_DIM;
    float *q = xmalloc(qlen * 4), *out = xmalloc(qlen * 4), *k = xmalloc(kvlen * 4), *v = xmalloc(kvlen * 4);
    float *att = xmalloc((size_t)threads * n_ctx * 4);
    for (size_t i = 0; i < qlen; i++) q[i] = frand();
    for (size_t i = 0; i < kvlen; i++) { k[i] = frand(); v[i] = frand(); }
    double t[64];
    int reps = 0;
    const double start = now_us();
    for (int r = 0; r < 65; r++) {
        const double t0 = now_us();
        attention_forward(out, q, k, v, att, n, n_ctx - n, N_HEAD, N_HEAD_KV, HEAD_DIM);
        if (r > 0) t[reps++] = now_us() - t0;
        if (reps >= 3 && now_us() - start > 3e5) break;
    }
    qsort(t, reps, sizeof t[0], cmp_double);
    free(q); free(out); free(k); free(v); free(att);
    *min_us = t[0];
    return t[reps / 2];
}

int main(int argc, char **argv) {
    int threads = 2, with_ref = 1;
    const char *type_list = "f32,f16,bf16,q8_0,q4_0", *isa = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-ref") == 0) with_ref = 0;
        else if (strcmp(argv[i], "--types") == 0 && i + 1 < argc) type_list = argv[++i];
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) isa = argv[++i];
        else { fprintf(stderr, "usage: bench_matmul [--threads T] [--no-ref] [--types LIST] [--isa NAME]\n"); return 2; }
    }
    if (isa && sm_kernels_force_isa(isa) != 0) { fprintf(stderr, "bench_matmul: no %s path on this CPU\n", isa); return 2; }
    omp_set_num_threads(threads);

    /* attention at two context lengths: one new token (decode) and the whole context (prefill) */
    double att_us[2][2];
    const int ctxs[2] = {128, 512};
    for (int c = 0; c < 2; c++)
        for (int prefill = 0; prefill < 2; prefill++) {
            const int n = prefill ? ctxs[c] : 1;
            double min_us;
            const double us = time_attention(n, ctxs[c], threads, &min_us);
            double flops = 0;
            for (int t = 0; t < n; t++) flops += 4.0 * N_HEAD * HEAD_DIM * (ctxs[c] - n + t + 1);
            att_us[c][prefill] = min_us;
            printf("{\"bench\":\"attention\",\"isa\":\"%s\",\"n\":%d,\"n_ctx\":%d,\"n_head\":%d,\"n_head_kv\":%d,"
                   "\"head_dim\":%d,\"threads\":%d,\"us\":%.1f,\"min_us\":%.1f,\"gflops\":%.2f}\n",
                   sm_kernels_isa(), n, ctxs[c], N_HEAD, N_HEAD_KV, HEAD_DIM, threads, us, min_us, flops / us * 1e-3);
            fflush(stdout);
        }

    char types_buf[128];
    snprintf(types_buf, sizeof types_buf, "%s", type_list);
    for (char *save = NULL, *name = strtok_r(types_buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const int type = sm_type_from_name(name);
        if (type < 0) { fprintf(stderr, "bench_matmul: unknown type %s\n", name); return 2; }
        double step_us[3] = {0, 0, 0}, head_us = 0;
        for (size_t s = 0; s < N_SHAPES; s++) {
            const int in = shapes[s].in, out = shapes[s].out;
            size_t row;
            sm_type_row_bytes(type, in, &row);
            const size_t wbytes = row * out;
            const int copies = (int)((96u << 20) / wbytes + 1);
            unsigned char *w = xmalloc(wbytes * copies);
            float *wf = xmalloc((size_t)in * 4);
            for (int o = 0; o < out; o++) {
                for (int i = 0; i < in; i++) wf[i] = frand() * 0.05f;
                sm_quantize_row(type, w + (size_t)o * row, wf, in);
            }
            for (int c = 1; c < copies; c++) memcpy(w + (size_t)c * wbytes, w, wbytes);
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                const int n = ns[k];
                if (shapes[s].per_layer == 0 && n > 1) continue; /* logits only for the last token */
                float *x = xmalloc((size_t)n * in * 4), *y = xmalloc((size_t)n * out * 4);
                for (size_t i = 0; i < (size_t)n * in; i++) x[i] = frand();
                for (int impl_ref = 0; impl_ref <= with_ref; impl_ref++) {
                    double min_us;
                    const double us = time_matmul(impl_ref, y, x, w, wbytes, n == 1 ? copies : 1, type, n, in, out, &min_us);
                    const double flops = 2.0 * n * in * out, bytes = (double)wbytes + 4.0 * n * (in + out);
                    printf("{\"bench\":\"matmul\",\"impl\":\"%s\",\"isa\":\"%s\",\"type\":\"%s\",\"shape\":\"%s\",\"n\":%d,"
                           "\"in\":%d,\"out\":%d,\"threads\":%d,\"us\":%.1f,\"min_us\":%.1f,\"gflops\":%.2f,\"gbps\":%.2f}\n",
                           impl_ref ? "ref" : "opt", impl_ref ? "ref" : sm_kernels_isa(), name, shapes[s].name, n, in, out,
                           threads, us, min_us, flops / us * 1e-3, bytes / us * 1e-3);
                    fflush(stdout);
                    if (impl_ref) continue;
                    if (shapes[s].per_layer) step_us[k] += shapes[s].per_layer * min_us;
                    else head_us = min_us;
                }
                free(x); free(y);
            }
            free(w); free(wf);
        }
        /* a whole forward pass: 30 layers of matmuls and attention, the logits of the last token */
        const double decode_us = N_LAYER * (step_us[0] + att_us[0][0]) + head_us;
        const double prefill_us = N_LAYER * (step_us[2] + att_us[1][1]) + head_us;
        printf("{\"bench\":\"estimate\",\"isa\":\"%s\",\"type\":\"%s\",\"threads\":%d,\"decode_tok_s\":%.1f,"
               "\"prefill512_tok_s\":%.1f,\"note\":\"best runs of matmuls+attention only, decode at n_ctx 128\"}\n",
               sm_kernels_isa(), name, threads, 1e6 / decode_us, 512e6 / prefill_us);
        fflush(stdout);
    }
    return 0;
}
