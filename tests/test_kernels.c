/* test_kernels.c: every optimised kernel (kernels.h) against its plain reference, on random data
 * of odd sizes, for each SIMD path this CPU has (forced one at a time) and 1 and 2 threads. The
 * references themselves are checked against double precision: quantized matmul against a
 * dequantize-then-dot within the expected quantization error, RoPE against a worked example.
 * Prints each kernel's max abs/rel difference; exits 1 when one exceeds its tolerance.
 */
#include "kernels.h"
#include "kernels_isa.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * 0x1p-24) * 2.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) { for (size_t i = 0; i < n; i++) x[i] = frand() * scale; }
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

/* The largest difference of a against b; `bound` gives the allowed difference of element i. */
typedef struct { double abs, rel; int bad; } diff;
static void diff_add(diff *d, double got, double want, double allowed) {
    const double a = fabs(got - want), r = a / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);
    if (a > d->abs) d->abs = a;
    if (r > d->rel && fabs(want) > 1e-6) d->rel = r;
    if (!(a <= allowed)) d->bad++; /* NaN fails too */
}
static void report(const char *what, const diff *d) {
    printf("%-44s max abs %.3g  max rel %.3g  %s\n", what, d->abs, d->rel, d->bad ? "FAIL" : "ok");
    if (d->bad) failures++;
}

/* ---- references checked against double precision ------------------------------------------- */

static void check_matmul_ref_quant(int type) {
    const int n = 3, in = 576, out = 33, nb = in / SM_QK;
    float *x = xmalloc(sizeof(float) * n * in), *wf = xmalloc(sizeof(float) * out * in), *y = xmalloc(sizeof(float) * n * out);
    float *wd = xmalloc(sizeof(float) * in), *xd = xmalloc(sizeof(float) * in);
    size_t wrow;
    sm_type_row_bytes(type, in, &wrow);
    unsigned char *w = xmalloc(wrow * out);
    sm_block_q8_0 *xq = xmalloc(sizeof(sm_block_q8_0) * nb);
    fill(x, (size_t)n * in, 2.0f);
    fill(wf, (size_t)out * in, 0.1f);
    for (int o = 0; o < out; o++) sm_quantize_row(type, w + o * wrow, wf + (size_t)o * in, in);
    matmul_forward_ref(y, x, w, type, n, in, out);
    diff exact = {0}, quant = {0};
    for (int t = 0; t < n; t++) {
        sm_quantize_row(SM_TYPE_Q8_0, xq, x + (size_t)t * in, in);
        sm_dequantize_row(SM_TYPE_Q8_0, xd, xq, in);
        for (int o = 0; o < out; o++) {
            sm_dequantize_row(type, wd, w + o * wrow, in);
            double dot_q = 0, dot_x = 0, dot_abs = 0, err = 0;
            for (int i = 0; i < in; i++) {
                dot_q += (double)wd[i] * xd[i];
                dot_x += (double)wd[i] * x[(size_t)t * in + i];
                dot_abs += fabs((double)wd[i] * xd[i]);
            }
            for (int b = 0; b < nb; b++) { /* |w . (x - xq)| <= sum |w| d_x / 2 */
                double sw = 0;
                for (int j = 0; j < SM_QK; j++) sw += fabs(wd[b * SM_QK + j]);
                err += sw * sm_fp16_to_fp32(xq[b].d) * 0.5 * 1.001;
            }
            diff_add(&exact, y[t * out + o], dot_q, 1e-6 * dot_abs + 1e-7);
            diff_add(&quant, y[t * out + o], dot_x, err + 1e-6 * dot_abs + 1e-7);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "matmul_ref %s vs dequantized double", sm_type_name(type));
    report(what, &exact);
    snprintf(what, sizeof what, "matmul_ref %s vs f32 x, quant error bound", sm_type_name(type));
    report(what, &quant);
    free(x); free(wf); free(y); free(wd); free(xd); free(w); free(xq);
}

static void check_rope_example(void) {
    /* head_dim 4, pos 1, base 10000: theta_0 = 1, theta_1 = 1 * 10000^(-2/4) = 0.01 */
    const double c0 = 0.5403023058681398, s0 = 0.8414709848078965, c1 = 0.9999500004166653, s1 = 0.009999833334166664;
    const double norm[4] = {1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1};  /* pairs (0,1) (2,3) */
    const double neox[4] = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 1 * s0 + 3 * c0, 2 * s1 + 4 * c1};  /* pairs (0,2) (1,3) */
    for (int mode = 0; mode < 2; mode++)
        for (int opt = 0; opt < 2; opt++) {
            float x[8] = {1, 2, 3, 4, 1, 2, 3, 4};
            const int pos[2] = {1, 0}; /* the second row at position 0 stays as it is */
            (opt ? rope_forward : rope_forward_ref)(x, pos, 2, 1, 4, 10000.0f, mode);
            diff d = {0};
            for (int i = 0; i < 4; i++) diff_add(&d, x[i], mode ? neox[i] : norm[i], 1e-6);
            for (int i = 0; i < 4; i++) diff_add(&d, x[4 + i], i + 1, 0);
            char what[96];
            snprintf(what, sizeof what, "rope%s %s worked example", opt ? "" : "_ref", mode ? "neox" : "norm");
            report(what, &d);
        }
}

/* ---- the exact activation quantizer of each path ------------------------------------------- */

static void check_prepare_x(const sm_kernel_ops *ops) {
    /* Blocks with ties: amax 127 gives d = 1, so x = k + 0.5 must round away from zero. */
    enum { IN = 96 };
    float x[IN];
    fill(x, IN, 3.0f);
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) + 0.5f;
    x[31] = 127.0f;
    sm_block_q8_0 ref[IN / SM_QK];
    sm_quantize_row(SM_TYPE_Q8_0, ref, x, IN);
    const size_t bytes = ops->xq_bytes(SM_TYPE_Q8_0, 1, IN);
    unsigned char *xq = aligned_alloc(64, (bytes + 63) / 64 * 64);
    ops->prepare_x(xq, x, SM_TYPE_Q8_0, 1, IN, 0, 1);
    int bad = 0;
    if (strcmp(ops->name, "avx512") == 0) { /* pairs of blocks: 64 quants, 16 scales, 16 starts */
        for (int b = 0; b < IN / SM_QK; b++) {
            const unsigned char *pair = xq + (size_t)(b / 2) * 192;
            bad += memcmp(pair + (b % 2) * 32, ref[b].qs, 32) != 0;
            float d;
            memcpy(&d, pair + 64 + (b % 2) * 32, 4);
            bad += d != sm_fp16_to_fp32(ref[b].d);
        }
    } else {
        bad = memcmp(xq, ref, sizeof ref) != 0;
    }
    diff d = {0};
    diff_add(&d, bad, 0, 0);
    char what[96];
    snprintf(what, sizeof what, "[%s] prepare_x == sm_quantize_row", ops->name);
    report(what, &d);
    free(xq);
}

/* ---- optimised against reference ------------------------------------------------------------ */

static const int types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
static const int ns[] = {1, 3, 17, 64, 130};
static const int ins[] = {32, 64, 96, 576, 1536, 1, 13, 37}; /* the last three: float types only */
#define N_INS_QUANT 5
static const int outs[] = {1, 7, 33, 576, 1000};
#define N_ISA 3
static const char *isas[N_ISA] = {"avx512", "avx2", "scalar"};
static int isa_ok[N_ISA];

static void check_matmul(int type) {
    diff d[N_ISA][2] = {{{0}}}, same[N_ISA] = {{0}};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < (type == SM_TYPE_Q8_0 || type == SM_TYPE_Q4_0 ? N_INS_QUANT : sizeof ins / sizeof *ins); b++)
            for (size_t c = 0; c < sizeof outs / sizeof *outs; c++) {
                const int n = ns[a], in = ins[b], out = outs[c];
                if (n > 1 && (double)n * in * out > 6e5) continue; /* keep the reference quick */
                size_t wrow;
                sm_type_row_bytes(type, in, &wrow);
                float *x = xmalloc(sizeof(float) * n * in), *wf = xmalloc(sizeof(float) * out * in);
                float *yr = xmalloc(sizeof(float) * n * out), *y = xmalloc(sizeof(float) * n * out);
                float *y1 = xmalloc(sizeof(float) * n * out);
                unsigned char *w = xmalloc(wrow * out);
                fill(x, (size_t)n * in, 1.0f);
                fill(wf, (size_t)out * in, 1.0f);
                for (int o = 0; o < out; o++) sm_quantize_row(type, w + o * wrow, wf + (size_t)o * in, in);
                matmul_forward_ref(yr, x, w, type, n, in, out);
                for (int i = 0; i < N_ISA; i++) {
                    if (!isa_ok[i]) continue;
                    sm_kernels_force_isa(isas[i]);
                    for (int th = 1; th <= 2; th++) {
                        omp_set_num_threads(th);
                        for (size_t k = 0; k < (size_t)n * out; k++) y[k] = NAN;
                        matmul_forward(y, x, w, type, n, in, out);
                        for (size_t k = 0; k < (size_t)n * out; k++) diff_add(&d[i][th - 1], y[k], yr[k], 2e-6 * in + 1e-5 * fabsf(yr[k]));
                        if (th == 1) memcpy(y1, y, sizeof(float) * n * out);
                        else /* each output is one thread's work: the thread count changes no bit */
                            for (size_t k = 0; k < (size_t)n * out; k++) diff_add(&same[i], y[k], y1[k], 0);
                    }
                }
                free(x); free(wf); free(yr); free(y); free(y1); free(w);
            }
    for (int i = 0; i < N_ISA; i++)
        for (int th = 0; th < 2 && isa_ok[i]; th++) {
            char what[96];
            snprintf(what, sizeof what, "[%s t%d] matmul %s", isas[i], th + 1, sm_type_name(type));
            report(what, &d[i][th]);
            if (th == 1) {
                snprintf(what, sizeof what, "[%s] matmul %s: t2 == t1 bit for bit", isas[i], sm_type_name(type));
                report(what, &same[i]);
            }
        }
}

typedef void (*run_fn)(int isa, int threads, diff *d);

static void for_each_path(const char *name, run_fn run) {
    for (int i = 0; i < N_ISA; i++) {
        if (!isa_ok[i]) continue;
        sm_kernels_force_isa(isas[i]);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            diff d = {0};
            run(i, th, &d);
            char what[96];
            snprintf(what, sizeof what, "[%s t%d] %s", isas[i], th, name);
            report(what, &d);
        }
    }
}

static void run_rmsnorm(int isa, int th, diff *d) {
    (void)isa; (void)th;
    const int shapes[][2] = {{1, 1}, {3, 7}, {17, 64}, {5, 576}, {130, 576}, {2, 1536}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int n = shapes[s][0], dim = shapes[s][1];
        float *x = xmalloc(sizeof(float) * n * dim), *w = xmalloc(sizeof(float) * dim);
        float *y = xmalloc(sizeof(float) * n * dim), *yr = xmalloc(sizeof(float) * n * dim);
        fill(x, (size_t)n * dim, 3.0f);
        fill(w, dim, 1.0f);
        rmsnorm_forward_ref(yr, x, w, n, dim, 1e-5f);
        rmsnorm_forward(y, x, w, n, dim, 1e-5f);
        for (size_t k = 0; k < (size_t)n * dim; k++) diff_add(d, y[k], yr[k], 1e-6 * (fabsf(yr[k]) + 1e-3));
        free(x); free(w); free(y); free(yr);
    }
}

static void run_rope(int isa, int th, diff *d) {
    (void)isa; (void)th;
    const int shapes[][3] = {{1, 9, 64}, {17, 3, 64}, {130, 2, 128}, {3, 4, 2}, {5, 2, 6}}; /* n, n_head, head_dim */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int neox = 0; neox < 2; neox++) {
            const int n = shapes[s][0], nh = shapes[s][1], hd = shapes[s][2];
            const size_t len = (size_t)n * nh * hd;
            float *x = xmalloc(sizeof(float) * len), *xr = xmalloc(sizeof(float) * len);
            int *pos = xmalloc(sizeof(int) * n);
            fill(x, len, 1.0f);
            memcpy(xr, x, sizeof(float) * len);
            for (int t = 0; t < n; t++) pos[t] = (int)((frand() + 1.0f) * 2048);
            rope_forward_ref(xr, pos, n, nh, hd, 10000.0f, neox);
            rope_forward(x, pos, n, nh, hd, 10000.0f, neox);
            for (size_t k = 0; k < len; k++) diff_add(d, x[k], xr[k], 1e-6);
            free(x); free(xr); free(pos);
        }
}

static void run_softmax(int isa, int th, diff *d) {
    (void)isa; (void)th;
    const int sizes[] = {1, 5, 16, 17, 100, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int n = sizes[s];
        float *x = xmalloc(sizeof(float) * n), *xr = xmalloc(sizeof(float) * n);
        fill(x, n, 10.0f);
        memcpy(xr, x, sizeof(float) * n);
        softmax_forward_ref(xr, n);
        softmax_forward(x, n);
        for (int k = 0; k < n; k++) diff_add(d, x[k], xr[k], 2e-6 * xr[k] + 1e-9);
        free(x); free(xr);
    }
}

static void run_swiglu(int isa, int th, diff *d) {
    (void)isa; (void)th;
    const int sizes[] = {1, 7, 16, 33, 1536, 70000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int n = sizes[s];
        float *g = xmalloc(sizeof(float) * n), *u = xmalloc(sizeof(float) * n);
        float *h = xmalloc(sizeof(float) * n), *hr = xmalloc(sizeof(float) * n);
        fill(g, n, 20.0f);
        fill(u, n, 2.0f);
        swiglu_forward_ref(hr, g, u, n);
        swiglu_forward(h, g, u, n);
        for (int k = 0; k < n; k++) diff_add(d, h[k], hr[k], 2e-6 * fabsf(hr[k]) + 1e-30);
        free(g); free(u); free(h); free(hr);
    }
}

static void run_attention(int isa, int th, diff *d) {
    (void)isa;
    const int shapes[][5] = {/* n, pos0, n_head, n_head_kv, head_dim */
                             {1, 0, 9, 3, 64}, {1, 100, 9, 3, 64}, {3, 5, 9, 3, 64}, {17, 0, 9, 3, 64},
                             {17, 40, 4, 4, 20}, {5, 3, 2, 1, 24}, {2, 7, 6, 2, 80}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int n = shapes[s][0], pos0 = shapes[s][1], nh = shapes[s][2], nkv = shapes[s][3], hd = shapes[s][4];
        const int n_ctx = pos0 + n + 3;
        const size_t qlen = (size_t)n * nh * hd, kvlen = (size_t)n_ctx * nkv * hd;
        float *q = xmalloc(sizeof(float) * qlen), *k = xmalloc(sizeof(float) * kvlen), *v = xmalloc(sizeof(float) * kvlen);
        float *o = xmalloc(sizeof(float) * qlen), *orf = xmalloc(sizeof(float) * qlen);
        float *att = xmalloc(sizeof(float) * th * n_ctx);
        fill(q, qlen, 2.0f);
        fill(k, kvlen, 2.0f);
        fill(v, kvlen, 1.0f);
        attention_forward_ref(orf, q, k, v, att, n, pos0, nh, nkv, hd);
        attention_forward(o, q, k, v, att, n, pos0, nh, nkv, hd);
        for (size_t i = 0; i < qlen; i++) diff_add(d, o[i], orf[i], 1e-5 * (fabsf(orf[i]) + 0.1f));
        free(q); free(k); free(v); free(o); free(orf); free(att);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    /* Thousands of small parallel regions: with OpenMP's default busy waiting, a machine shared
     * with other jobs turns each barrier into a long spin. Rerun once with passive waiting. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    printf("kernels: best path on this CPU: %s\n", sm_kernels_isa());
    const sm_kernel_ops *ops[N_ISA] = {NULL, NULL, &sm_kernels_scalar};
#if defined(__x86_64__) || defined(__i386__)
    ops[0] = &sm_kernels_avx512;
    ops[1] = &sm_kernels_avx2;
#endif
    for (int i = 0; i < N_ISA; i++) {
        isa_ok[i] = sm_kernels_force_isa(isas[i]) == 0;
        if (!isa_ok[i]) printf("path %s: not on this CPU, skipped\n", isas[i]);
        else check_prepare_x(ops[i]);
    }
    if (sm_kernels_force_isa("no-such-isa") != -1) { printf("force_isa accepted a bad name: FAIL\n"); failures++; }
    sm_kernels_force_isa(NULL);

    check_matmul_ref_quant(SM_TYPE_Q8_0);
    check_matmul_ref_quant(SM_TYPE_Q4_0);
    check_rope_example();
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) check_matmul(types[t]);
    for_each_path("rmsnorm", run_rmsnorm);
    for_each_path("rope", run_rope);
    for_each_path("softmax", run_softmax);
    for_each_path("swiglu", run_swiglu);
    for_each_path("attention", run_attention);
    sm_kernels_force_isa(NULL);
    if (failures) { printf("kernels: %d check(s) FAILED\n", failures); return 1; }
    printf("kernels: all checks passed\n");
    return 0;
}
