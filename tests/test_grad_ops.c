/* test_grad_ops.c: every backward kernel (kernels_backward.h) against central differences of a
 * double-precision forward, and every optimised kernel against its plain reference.
 *
 * For an op y = f(x, w...) the test draws float inputs and a float projection R of y's shape, and
 * takes loss = sum(R .* f) computed in double. The analytic gradient is the float backward kernel
 * run with dy = R; the numeric one is (loss(x + h) - loss(x - h)) / 2h in double with h = 1e-6,
 * so its own error (~1e-10) is far below the float kernel's rounding. Each tensor's max abs error
 * and its error relative to the tensor's largest gradient are printed against a per-tensor
 * tolerance. The optimised kernels run at 1 and 2 threads and must match their reference (and
 * each other bit for bit across thread counts). Exits 1 on any failure.
 */
#include "kernels.h"
#include "kernels_backward.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * 0x1p-24) * 2.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) { for (size_t i = 0; i < n; i++) x[i] = frand() * scale; }
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}
static float *fzeros(size_t n) { return xcalloc(n, sizeof(float)); }
static double *to_double(const float *x, size_t n) {
    double *d = xcalloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ---- the numeric side ------------------------------------------------------------------------ */

typedef double (*loss_fn)(void *ctx);

/* Compares the analytic gradient g (n) of the loss with respect to the double tensor x (n) that
 * f reads, against central differences. tol: allowed error relative to max |numeric|. */
static void check_grad(const char *op, const char *tensor, double *x, size_t n, const float *g, loss_fn f, void *ctx,
                       double tol) {
    const double h = 1e-6;
    double max_abs = 0.0, scale = 0.0;
    double *num = xcalloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = f(ctx);
        x[i] = x0 - h;
        const double lm = f(ctx);
        x[i] = x0;
        num[i] = (lp - lm) / (2 * h);
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(g[i] - num[i]);
        if (e > max_abs || e != e) max_abs = e;
        if (!(e <= tol * (scale > 1e-3 ? scale : 1e-3))) bad++;
    }
    const double rel = max_abs / (scale > 1e-30 ? scale : 1e-30);
    printf("grad %-22s %-10s n %6zu  max|g| %9.3g  max abs err %9.3g  rel %9.3g  tol %7.1g  %s\n", op, tensor, n, scale,
           max_abs, rel, tol, bad ? "FAIL" : "ok");
    if (bad) failures++;
    free(num);
}

/* Optimised against reference (float vs float). */
static void check_same(const char *what, const float *got, const float *want, size_t n, double tol) {
    double max_abs = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        const double e = fabs((double)got[i] - want[i]);
        if (e > max_abs || e != e) max_abs = e;
    }
    const int bad = !(max_abs <= tol * (scale > 1e-3 ? scale : 1e-3));
    printf("opt  %-33s n %6zu  max|ref| %9.3g  max abs diff %9.3g  tol %7.1g  %s\n", what, n, scale, max_abs, tol,
           bad ? "FAIL" : "ok");
    if (bad) failures++;
}

static void check_bitwise(const char *what, const float *a, const float *b, size_t n) {
    const int bad = memcmp(a, b, n * sizeof(float)) != 0;
    printf("det  %-33s 1 vs 2 threads bit-identical: %s\n", what, bad ? "NO (FAIL)" : "yes");
    if (bad) failures++;
}

/* ---- matmul: y = x W^T + b, through W of any stored type ------------------------------------- */

typedef struct {
    double *x, *w, *b;
    const float *r;
    int n, in, out;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    double s = 0.0;
    for (int t = 0; t < c->n; t++)
        for (int o = 0; o < c->out; o++) {
            double y = c->b ? c->b[o] : 0.0;
            for (int i = 0; i < c->in; i++) y += c->x[(size_t)t * c->in + i] * c->w[(size_t)o * c->in + i];
            s += y * c->r[(size_t)t * c->out + o];
        }
    return s;
}

static void test_matmul(int type) {
    const int n = 5, in = 64, out = 7;
    char name[64];
    snprintf(name, sizeof name, "matmul(%s)", sm_type_name(type));
    float *x = fzeros((size_t)n * in), *wf = fzeros((size_t)out * in), *b = fzeros(out), *r = fzeros((size_t)n * out);
    fill(x, (size_t)n * in, 1.0f);
    fill(wf, (size_t)out * in, 0.5f);
    fill(b, out, 0.5f);
    fill(r, (size_t)n * out, 1.0f);
    size_t row_bytes;
    sm_type_row_bytes(type, in, &row_bytes);
    unsigned char *w = xcalloc(out, row_bytes);
    float *wq = fzeros((size_t)out * in); /* the weights as the kernel sees them */
    for (int o = 0; o < out; o++) {
        sm_quantize_row(type, w + o * row_bytes, wf + (size_t)o * in, in);
        sm_dequantize_row(type, wq + (size_t)o * in, w + o * row_bytes, in);
    }
    float *dx = fzeros((size_t)n * in), *dw = fzeros((size_t)out * in), *db = fzeros(out);
    matmul_backward_dx(dx, r, w, type, n, in, out);
    matmul_backward_dw(dw, db, r, x, n, in, out);
    mm_ctx c = {to_double(x, (size_t)n * in), to_double(wq, (size_t)out * in), to_double(b, out), r, n, in, out};
    check_grad(name, "dx", c.x, (size_t)n * in, dx, mm_loss, &c, 1e-5);
    if (type == SM_TYPE_F32) {
        check_grad(name, "dW", c.w, (size_t)out * in, dw, mm_loss, &c, 1e-5);
        check_grad(name, "db", c.b, out, db, mm_loss, &c, 1e-5);
    }
    free(c.x); free(c.w); free(c.b);
    free(x); free(wf); free(b); free(r); free(w); free(wq); free(dx); free(dw); free(db);
}

/* Optimised matmul kernels against their references on sizes with tails and several K panels,
 * for each weight type; 1 and 2 threads bit-identical. */
static void test_matmul_opt(int type, int n, int in, int out) {
    char what[96];
    float *x = fzeros((size_t)n * in), *wf = fzeros((size_t)out * in), *dy = fzeros((size_t)n * out);
    fill(x, (size_t)n * in, 1.0f);
    fill(wf, (size_t)out * in, 0.5f);
    fill(dy, (size_t)n * out, 1.0f);
    size_t row_bytes;
    sm_type_row_bytes(type, in, &row_bytes);
    unsigned char *w = xcalloc(out, row_bytes);
    for (int o = 0; o < out; o++) sm_quantize_row(type, w + o * row_bytes, wf + (size_t)o * in, in);
    float *a = fzeros((size_t)n * in), *b = fzeros((size_t)n * in), *c = fzeros((size_t)n * in);
    fill(a, (size_t)n * in, 1.0f); /* accumulate onto nonzero values */
    memcpy(b, a, sizeof(float) * n * in);
    memcpy(c, a, sizeof(float) * n * in);
    matmul_backward_dx_ref(a, dy, w, type, n, in, out);
    omp_set_num_threads(1);
    matmul_backward_dx(b, dy, w, type, n, in, out);
    omp_set_num_threads(2);
    matmul_backward_dx(c, dy, w, type, n, in, out);
    snprintf(what, sizeof what, "matmul_backward_dx %s %dx%dx%d", sm_type_name(type), n, in, out);
    check_same(what, b, a, (size_t)n * in, 1e-5);
    check_bitwise(what, b, c, (size_t)n * in);
    free(a); free(b); free(c);
    if (type == SM_TYPE_F32) {
        float *wa = fzeros((size_t)out * in), *wb = fzeros((size_t)out * in), *wc = fzeros((size_t)out * in);
        float *ba = fzeros(out), *bb = fzeros(out), *bc = fzeros(out);
        fill(wa, (size_t)out * in, 1.0f);
        memcpy(wb, wa, sizeof(float) * out * in);
        memcpy(wc, wa, sizeof(float) * out * in);
        matmul_backward_dw_ref(wa, ba, dy, x, n, in, out);
        omp_set_num_threads(1);
        matmul_backward_dw(wb, bb, dy, x, n, in, out);
        omp_set_num_threads(2);
        matmul_backward_dw(wc, bc, dy, x, n, in, out);
        snprintf(what, sizeof what, "matmul_backward_dw %dx%dx%d", n, in, out);
        check_same(what, wb, wa, (size_t)out * in, 1e-5);
        check_same("matmul_backward_dw bias", bb, ba, out, 1e-5);
        check_bitwise(what, wb, wc, (size_t)out * in);
        float *ya = fzeros((size_t)n * out), *yb = fzeros((size_t)n * out);
        matmul_forward_ref(ya, x, wf, SM_TYPE_F32, n, in, out);
        matmul_forward_f32(yb, x, wf, n, in, out);
        snprintf(what, sizeof what, "matmul_forward_f32 %dx%dx%d", n, in, out);
        check_same(what, yb, ya, (size_t)n * out, 1e-5);
        free(wa); free(wb); free(wc); free(ba); free(bb); free(bc); free(ya); free(yb);
    }
    free(x); free(wf); free(dy); free(w);
}

/* ---- LoRA: y = s B (A x), with the kernel sequence train_model.c runs ------------------------ */

typedef struct {
    double *x, *a, *bm;
    const float *r;
    int n, in, out, rank;
    double s;
} lora_ctx;

static double lora_loss(void *p) {
    lora_ctx *c = p;
    double sum = 0.0, *u = xcalloc(c->rank, sizeof(double));
    for (int t = 0; t < c->n; t++) {
        for (int j = 0; j < c->rank; j++) {
            u[j] = 0.0;
            for (int i = 0; i < c->in; i++) u[j] += c->a[(size_t)j * c->in + i] * c->x[(size_t)t * c->in + i];
        }
        for (int o = 0; o < c->out; o++) {
            double y = 0.0;
            for (int j = 0; j < c->rank; j++) y += c->bm[(size_t)o * c->rank + j] * u[j];
            sum += c->s * y * c->r[(size_t)t * c->out + o];
        }
    }
    free(u);
    return sum;
}

static void test_lora(void) {
    const int n = 6, in = 40, out = 24, rank = 4;
    const float s = 8.0f / rank;
    float *x = fzeros((size_t)n * in), *a = fzeros((size_t)rank * in), *b = fzeros((size_t)out * rank);
    float *r = fzeros((size_t)n * out);
    fill(x, (size_t)n * in, 1.0f);
    fill(a, (size_t)rank * in, 0.5f);
    fill(b, (size_t)out * rank, 0.5f);
    fill(r, (size_t)n * out, 1.0f);
    float *u = fzeros((size_t)n * rank), *du = fzeros((size_t)n * rank), *da = fzeros((size_t)rank * in);
    float *dbm = fzeros((size_t)out * rank), *dx = fzeros((size_t)n * in);
    matmul_forward_narrow(u, x, a, n, in, rank);
    for (int i = 0; i < n * rank; i++) u[i] *= s;
    matmul_backward_dw_narrow(dbm, r, u, n, rank, out);
    matmul_backward_dx_narrow(du, r, b, n, rank, out);
    for (int i = 0; i < n * rank; i++) du[i] *= s;
    matmul_backward_dw(da, NULL, du, x, n, in, rank);
    matmul_backward_dx(dx, du, a, SM_TYPE_F32, n, in, rank);
    lora_ctx c = {to_double(x, (size_t)n * in), to_double(a, (size_t)rank * in), to_double(b, (size_t)out * rank), r,
                  n, in, out, rank, s};
    check_grad("lora", "dA", c.a, (size_t)rank * in, da, lora_loss, &c, 1e-5);
    check_grad("lora", "dB", c.bm, (size_t)out * rank, dbm, lora_loss, &c, 1e-5);
    check_grad("lora", "dx", c.x, (size_t)n * in, dx, lora_loss, &c, 1e-5);
    free(c.x); free(c.a); free(c.bm);
    free(x); free(a); free(b); free(r); free(u); free(du); free(da); free(dbm); free(dx);
}

/* The narrow (LoRA-rank) products against the references, at training sizes. */
static void test_narrow(int n, int wide, int r) {
    char what[96];
    float *x = fzeros((size_t)n * wide), *a = fzeros((size_t)r * wide), *dy = fzeros((size_t)n * wide);
    float *u = fzeros((size_t)n * r), *u2 = fzeros((size_t)n * r), *b = fzeros((size_t)wide * r);
    fill(x, (size_t)n * wide, 1.0f); fill(a, (size_t)r * wide, 0.5f); fill(dy, (size_t)n * wide, 1.0f);
    fill(b, (size_t)wide * r, 0.5f);
    matmul_forward_narrow(u, x, a, n, wide, r);
    matmul_forward_ref(u2, x, a, SM_TYPE_F32, n, wide, r);
    snprintf(what, sizeof what, "matmul_forward_narrow %dx%dx%d", n, wide, r);
    check_same(what, u, u2, (size_t)n * r, 1e-5);
    float *du = fzeros((size_t)n * r), *du2 = fzeros((size_t)n * r);
    fill(du, (size_t)n * r, 1.0f);
    memcpy(du2, du, sizeof(float) * n * r);
    matmul_backward_dx_narrow(du, dy, b, n, r, wide);
    matmul_backward_dx_ref(du2, dy, b, SM_TYPE_F32, n, r, wide);
    snprintf(what, sizeof what, "matmul_backward_dx_narrow %dx%dx%d", n, r, wide);
    check_same(what, du, du2, (size_t)n * r, 1e-5);
    float *db = fzeros((size_t)wide * r), *db2 = fzeros((size_t)wide * r);
    fill(db, (size_t)wide * r, 1.0f);
    memcpy(db2, db, sizeof(float) * wide * r);
    matmul_backward_dw_narrow(db, dy, u, n, r, wide);
    matmul_backward_dw_ref(db2, NULL, dy, u, n, r, wide);
    snprintf(what, sizeof what, "matmul_backward_dw_narrow %dx%dx%d", n, r, wide);
    check_same(what, db, db2, (size_t)wide * r, 1e-5);
    free(x); free(a); free(dy); free(u); free(u2); free(b); free(du); free(du2); free(db); free(db2);
}

/* ---- embedding ------------------------------------------------------------------------------- */

typedef struct {
    double *wte;
    const int *tokens;
    const float *r;
    int n, d;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    double s = 0.0;
    for (int t = 0; t < c->n; t++)
        for (int i = 0; i < c->d; i++) s += c->wte[(size_t)c->tokens[t] * c->d + i] * c->r[(size_t)t * c->d + i];
    return s;
}

static void test_embedding(void) {
    const int V = 11, d = 70, n = 9;
    const int tokens[9] = {3, 0, 3, 10, 7, 3, 1, 0, 9};
    float *wte = fzeros((size_t)V * d), *r = fzeros((size_t)n * d), *g = fzeros((size_t)V * d), *g2 = fzeros((size_t)V * d);
    fill(wte, (size_t)V * d, 1.0f);
    fill(r, (size_t)n * d, 1.0f);
    embedding_backward(g, r, tokens, n, d);
    embedding_backward_ref(g2, r, tokens, n, d);
    emb_ctx c = {to_double(wte, (size_t)V * d), tokens, r, n, d};
    check_grad("embedding", "dwte", c.wte, (size_t)V * d, g, emb_loss, &c, 1e-6);
    check_same("embedding_backward", g, g2, (size_t)V * d, 1e-6);
    free(c.wte); free(wte); free(r); free(g); free(g2);
}

/* ---- RMSNorm --------------------------------------------------------------------------------- */

typedef struct {
    double *x, *w;
    const float *r;
    int n, d;
    double eps;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    double s = 0.0;
    for (int t = 0; t < c->n; t++) {
        const double *x = c->x + (size_t)t * c->d;
        double ss = 0.0;
        for (int i = 0; i < c->d; i++) ss += x[i] * x[i];
        const double k = 1.0 / sqrt(ss / c->d + c->eps);
        for (int i = 0; i < c->d; i++) s += x[i] * k * c->w[i] * c->r[(size_t)t * c->d + i];
    }
    return s;
}

static void test_rmsnorm(void) {
    const int n = 5, d = 48;
    const float eps = 1e-5f;
    float *x = fzeros((size_t)n * d), *w = fzeros(d), *r = fzeros((size_t)n * d), *y = fzeros((size_t)n * d);
    float *rstd = fzeros(n), *y2 = fzeros((size_t)n * d);
    fill(x, (size_t)n * d, 2.0f);
    fill(w, d, 1.0f);
    fill(r, (size_t)n * d, 1.0f);
    rmsnorm_forward_train(y, rstd, x, w, n, d, eps);
    rmsnorm_forward(y2, x, w, n, d, eps);
    check_same("rmsnorm_forward_train = forward", y, y2, (size_t)n * d, 0.0);
    float *dx = fzeros((size_t)n * d), *dw = fzeros(d), *dx2 = fzeros((size_t)n * d), *dw2 = fzeros(d);
    rmsnorm_backward(dx, dw, r, x, w, rstd, n, d);
    rmsnorm_backward_ref(dx2, dw2, r, x, w, rstd, n, d);
    rms_ctx c = {to_double(x, (size_t)n * d), to_double(w, d), r, n, d, eps};
    check_grad("rmsnorm", "dx", c.x, (size_t)n * d, dx, rms_loss, &c, 1e-5);
    check_grad("rmsnorm", "dw", c.w, d, dw, rms_loss, &c, 1e-5);
    check_same("rmsnorm_backward dx", dx, dx2, (size_t)n * d, 1e-6);
    check_same("rmsnorm_backward dw", dw, dw2, d, 1e-6);
    free(c.x); free(c.w);
    free(x); free(w); free(r); free(y); free(y2); free(rstd); free(dx); free(dw); free(dx2); free(dw2);
}

/* ---- RoPE ------------------------------------------------------------------------------------ */

typedef struct {
    double *x;
    const float *r;
    const int *pos;
    int n, n_head, head_dim, neox;
    float base;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    const float theta_scale = powf(c->base, -2.0f / (float)c->head_dim);
    const int half = c->head_dim / 2;
    double s = 0.0;
    for (int t = 0; t < c->n; t++)
        for (int h = 0; h < c->n_head; h++) {
            const size_t o = ((size_t)t * c->n_head + h) * c->head_dim;
            float theta = (float)c->pos[t]; /* the angles rope_forward uses */
            for (int i = 0; i < half; i++, theta *= theta_scale) {
                const double cs = cos((double)theta), sn = sin((double)theta);
                const int i0 = c->neox ? i : 2 * i, i1 = c->neox ? i + half : 2 * i + 1;
                const double x0 = c->x[o + i0], x1 = c->x[o + i1];
                s += (x0 * cs - x1 * sn) * c->r[o + i0] + (x0 * sn + x1 * cs) * c->r[o + i1];
            }
        }
    return s;
}

static void test_rope(int neox) {
    const int n = 6, n_head = 3, head_dim = 16;
    const int pos[6] = {0, 1, 2, 0, 1, 37};
    const size_t sz = (size_t)n * n_head * head_dim;
    float *x = fzeros(sz), *r = fzeros(sz), *g = fzeros(sz), *g2 = fzeros(sz);
    fill(x, sz, 1.0f);
    fill(r, sz, 1.0f);
    memcpy(g, r, sizeof(float) * sz);
    memcpy(g2, r, sizeof(float) * sz);
    rope_backward(g, pos, n, n_head, head_dim, 10000.0f, neox);
    rope_backward_ref(g2, pos, n, n_head, head_dim, 10000.0f, neox);
    rope_ctx c = {to_double(x, sz), r, pos, n, n_head, head_dim, neox, 10000.0f};
    check_grad(neox ? "rope(neox)" : "rope(norm)", "dx", c.x, sz, g, rope_loss, &c, 1e-5);
    check_same(neox ? "rope_backward neox" : "rope_backward norm", g, g2, sz, 1e-6);
    free(c.x); free(x); free(r); free(g); free(g2);
}

/* ---- SwiGLU ---------------------------------------------------------------------------------- */

typedef struct {
    double *gate, *up;
    const float *r;
    int n;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    double s = 0.0;
    for (int i = 0; i < c->n; i++) s += c->gate[i] / (1.0 + exp(-c->gate[i])) * c->up[i] * c->r[i];
    return s;
}

static void test_swiglu(void) {
    const int n = 200;
    float *gate = fzeros(n), *up = fzeros(n), *r = fzeros(n);
    float *dg = fzeros(n), *du = fzeros(n), *dg2 = fzeros(n), *du2 = fzeros(n);
    fill(gate, n, 4.0f);
    fill(up, n, 2.0f);
    fill(r, n, 1.0f);
    swiglu_backward(dg, du, r, gate, up, n);
    swiglu_backward_ref(dg2, du2, r, gate, up, n);
    swiglu_ctx c = {to_double(gate, n), to_double(up, n), r, n};
    check_grad("swiglu", "dgate", c.gate, n, dg, swiglu_loss, &c, 1e-5);
    check_grad("swiglu", "dup", c.up, n, du, swiglu_loss, &c, 1e-5);
    check_same("swiglu_backward dgate", dg, dg2, n, 1e-6);
    check_same("swiglu_backward dup", du, du2, n, 1e-6);
    free(c.gate); free(c.up); free(gate); free(up); free(r); free(dg); free(du); free(dg2); free(du2);
}

/* ---- attention (GQA, causal, packed segments) ------------------------------------------------ */

typedef struct {
    double *q, *k, *v;
    const float *r;
    const int *start;
    int B, T, n_head, n_head_kv, head_dim;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    const int group = c->n_head / c->n_head_kv, qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    const double scale = 1.0 / sqrt((double)c->head_dim);
    double s = 0.0, *a = xcalloc(c->T, sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->n_head; h++)
            for (int t = 0; t < c->T; t++) {
                const size_t row = (size_t)b * c->T + t, kvo = (size_t)(h / group) * c->head_dim;
                const double *qt = c->q + row * qd + (size_t)h * c->head_dim;
                const int j0 = c->start[row];
                double max = -1e300, sum = 0.0;
                for (int j = j0; j <= t; j++) {
                    const double *kj = c->k + ((size_t)b * c->T + j) * kvd + kvo;
                    a[j] = 0.0;
                    for (int i = 0; i < c->head_dim; i++) a[j] += qt[i] * kj[i];
                    a[j] *= scale;
                    if (a[j] > max) max = a[j];
                }
                for (int j = j0; j <= t; j++) { a[j] = exp(a[j] - max); sum += a[j]; }
                for (int i = 0; i < c->head_dim; i++) {
                    double o = 0.0;
                    for (int j = j0; j <= t; j++) o += a[j] / sum * c->v[((size_t)b * c->T + j) * kvd + kvo + i];
                    s += o * c->r[row * qd + (size_t)h * c->head_dim + i];
                }
            }
    free(a);
    return s;
}

static void test_attention(void) {
    const int B = 2, T = 7, n_head = 4, n_head_kv = 2, head_dim = 8;
    /* row 0: one sequence; row 1: segments of 3 and 4 tokens */
    const int start[14] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3};
    const size_t qs = (size_t)B * T * n_head * head_dim, ks = (size_t)B * T * n_head_kv * head_dim;
    float *q = fzeros(qs), *k = fzeros(ks), *v = fzeros(ks), *r = fzeros(qs), *out = fzeros(qs), *out2 = fzeros(qs);
    float *att = fzeros((size_t)B * n_head * T * T), *att2 = fzeros((size_t)B * n_head * T * T);
    fill(q, qs, 1.0f);
    fill(k, ks, 1.0f);
    fill(v, ks, 1.0f);
    fill(r, qs, 1.0f);
    attention_forward_train(out, att, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    attention_forward_train_ref(out2, att2, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    check_same("attention_forward_train out", out, out2, qs, 1e-6);
    check_same("attention_forward_train att", att, att2, (size_t)B * n_head * T * T, 1e-6);
    /* the inference kernel agrees on the unpacked row */
    float *kv_out = fzeros((size_t)T * n_head * head_dim), *scratch = fzeros((size_t)64 * T);
    attention_forward(kv_out, q, k, v, scratch, T, 0, n_head, n_head_kv, head_dim);
    check_same("attention_forward_train = inference", out, kv_out, (size_t)T * n_head * head_dim, 1e-5);
    float *dq = fzeros(qs), *dk = fzeros(ks), *dv = fzeros(ks), *dq2 = fzeros(qs), *dk2 = fzeros(ks), *dv2 = fzeros(ks);
    attention_backward(dq, dk, dv, r, att, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    attention_backward_ref(dq2, dk2, dv2, r, att2, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    att_ctx c = {to_double(q, qs), to_double(k, ks), to_double(v, ks), r, start, B, T, n_head, n_head_kv, head_dim};
    check_grad("attention(gqa,packed)", "dq", c.q, qs, dq, att_loss, &c, 1e-5);
    check_grad("attention(gqa,packed)", "dk", c.k, ks, dk, att_loss, &c, 1e-5);
    check_grad("attention(gqa,packed)", "dv", c.v, ks, dv, att_loss, &c, 1e-5);
    check_same("attention_backward dq", dq, dq2, qs, 1e-5);
    check_same("attention_backward dk", dk, dk2, ks, 1e-5);
    check_same("attention_backward dv", dv, dv2, ks, 1e-5);
    free(c.q); free(c.k); free(c.v);
    free(q); free(k); free(v); free(r); free(out); free(out2); free(att); free(att2); free(kv_out); free(scratch);
    free(dq); free(dk); free(dv); free(dq2); free(dk2); free(dv2);
}

/* The optimised attention against its reference on a long packed row (products over more than
 * one panel of positions) and head_dim 64. */
static void test_attention_long(void) {
    const int B = 1, T = 600, n_head = 2, n_head_kv = 1, head_dim = 64;
    int *start = malloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) start[t] = t < 380 ? 0 : 380;
    const size_t qs = (size_t)T * n_head * head_dim, ks = (size_t)T * n_head_kv * head_dim, as = (size_t)n_head * T * T;
    float *q = fzeros(qs), *k = fzeros(ks), *v = fzeros(ks), *r = fzeros(qs), *o1 = fzeros(qs), *o2 = fzeros(qs);
    float *a1 = fzeros(as), *a2 = fzeros(as);
    float *dq1 = fzeros(qs), *dk1 = fzeros(ks), *dv1 = fzeros(ks), *dq2 = fzeros(qs), *dk2 = fzeros(ks), *dv2 = fzeros(ks);
    fill(q, qs, 1.0f); fill(k, ks, 1.0f); fill(v, ks, 1.0f); fill(r, qs, 1.0f);
    attention_forward_train(o1, a1, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    attention_forward_train_ref(o2, a2, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    check_same("attention_forward_train T=600 out", o1, o2, qs, 1e-5);
    check_same("attention_forward_train T=600 att", a1, a2, as, 1e-5);
    attention_backward(dq1, dk1, dv1, r, a1, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    attention_backward_ref(dq2, dk2, dv2, r, a2, q, k, v, start, B, T, n_head, n_head_kv, head_dim);
    check_same("attention_backward T=600 dq", dq1, dq2, qs, 1e-5);
    check_same("attention_backward T=600 dk", dk1, dk2, ks, 1e-5);
    check_same("attention_backward T=600 dv", dv1, dv2, ks, 1e-5);
    free(start); free(q); free(k); free(v); free(r); free(o1); free(o2); free(a1); free(a2);
    free(dq1); free(dk1); free(dv1); free(dq2); free(dk2); free(dv2);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct {
    double *z;
    const int *targets;
    int n, V;
    double dloss;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    double s = 0.0;
    for (int t = 0; t < c->n; t++) {
        if (c->targets[t] < 0) continue;
        const double *z = c->z + (size_t)t * c->V;
        double max = -1e300, sum = 0.0;
        for (int i = 0; i < c->V; i++) if (z[i] > max) max = z[i];
        for (int i = 0; i < c->V; i++) sum += exp(z[i] - max);
        s += log(sum) + max - z[c->targets[t]];
    }
    return s * c->dloss;
}

static void test_cross_entropy(void) {
    const int n = 5, V = 300;
    const int targets[5] = {3, -1, 299, 0, -1};
    const float dloss = 1.0f / 3;
    float *z = fzeros((size_t)n * V), *g = fzeros((size_t)n * V), *g2 = fzeros((size_t)n * V);
    fill(z, (size_t)n * V, 5.0f);
    memcpy(g, z, sizeof(float) * n * V);
    memcpy(g2, z, sizeof(float) * n * V);
    const double l_fwd = cross_entropy_forward(z, targets, n, V);
    const double l1 = cross_entropy_backward(g, targets, n, V, dloss);
    const double l2 = cross_entropy_backward_ref(g2, targets, n, V, dloss);
    ce_ctx c = {to_double(z, (size_t)n * V), targets, n, V, dloss};
    const double want = ce_loss(&c) / dloss;
    const double e = fmax(fabs(l1 - want), fmax(fabs(l2 - want), fabs(l_fwd - want)));
    printf("loss cross_entropy (fwd, bwd, ref vs double)       %.9g  max abs err %.3g  tol 1e-5  %s\n", want, e,
           e <= 1e-5 * fabs(want) ? "ok" : "FAIL");
    if (!(e <= 1e-5 * fabs(want))) failures++;
    check_grad("cross_entropy(masked)", "dlogits", c.z, (size_t)n * V, g, ce_loss, &c, 1e-5);
    check_same("cross_entropy_backward", g, g2, (size_t)n * V, 1e-6);
    free(c.z); free(z); free(g); free(g2);
}

int main(void) {
    printf("SIMD: %s\n", sm_kernels_isa());
    const int types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16, SM_TYPE_Q8_0, SM_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) test_matmul(types[i]);
    const char *isas[] = {"avx512", "avx2", "scalar"};
    for (size_t p = 0; p < sizeof isas / sizeof isas[0]; p++) {
        if (sm_kernels_force_isa(isas[p]) != 0) { printf("SIMD path %s: not on this CPU, skipped\n", isas[p]); continue; }
        printf("SIMD path %s:\n", isas[p]);
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            test_matmul_opt(types[i], 13, 96, 70);
            test_matmul_opt(types[i], 101, 160, 300); /* two K panels of dx, row tails */
        }
        test_matmul_opt(SM_TYPE_F32, 300, 37, 9); /* dW with K = 300 tokens, narrow tails */
    }
    sm_kernels_force_isa(NULL);
    test_lora();
    test_narrow(7, 40, 3);
    test_narrow(300, 200, 16);
    test_embedding();
    test_rmsnorm();
    test_rope(0);
    test_rope(1);
    test_swiglu();
    test_attention();
    test_attention_long();
    test_cross_entropy();
    if (failures) {
        printf("%d check(s) FAILED\n", failures);
        return 1;
    }
    printf("all gradient and kernel checks passed\n");
    return 0;
}
