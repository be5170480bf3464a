/* optim.c: AdamW, the warmup + cosine schedule and global-norm clipping (optim.h). */
#include "optim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

sm_adamw *sm_adamw_new(size_t n, const sm_adamw_config *cfg, sm_error *err) {
    if (n == 0 || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps > 0)) {
        sm_err(err, SM_EINVAL, "AdamW: bad settings (n %zu, beta1 %g, beta2 %g, eps %g)", n, cfg->beta1, cfg->beta2, cfg->eps);
        return NULL;
    }
    sm_adamw *o = calloc(1, sizeof *o);
    if (!o || n > SIZE_MAX / 2 / sizeof(float) || !(o->m = calloc(2 * n, sizeof(float)))) {
        free(o);
        sm_err(err, SM_ENOMEM, "AdamW: out of memory for the state of %zu parameters", n);
        return NULL;
    }
    o->v = o->m + n;
    o->cfg = *cfg;
    o->n = n;
    return o;
}

void sm_adamw_free(sm_adamw *o) {
    if (!o) return;
    free(o->m);
    free(o);
}

void sm_adamw_begin_step(sm_adamw *o) { o->t++; }

/* The update of one segment by the threads of the enclosing parallel region (or by one thread),
 * without a barrier at the end: elements are independent. CMakeLists.txt builds this file with
 * -fno-math-errno so that the loop vectorizes (sqrtf of a non-negative value never sets errno;
 * IEEE square root and division are correctly rounded in vector and scalar form alike, so the
 * results are the same bits either way). */
static void update_range(sm_adamw *o, float *params, const float *grads, size_t off, size_t n, float lr, float wd) {
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, (double)o->t)));  /* 1 / (1 - b1^t) */
    const float c2 = (float)(1.0 / (1.0 - pow(b2, (double)o->t)));
    const float decay = 1.0f - lr * wd;
    float *p = params + off, *m = o->m + off, *v = o->v + off;
    const float *g = grads + off;
#pragma omp for schedule(static) nowait
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float mhat = m[i] * c1, vhat = v[i] * c2;
        p[i] = p[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

void sm_adamw_update_segments(sm_adamw *o, float *params, const float *grads, const sm_adamw_segment *segs, int n_segs,
                              float lr) {
    size_t total = 0;
    for (int k = 0; k < n_segs; k++) {
        assert(segs[k].off + segs[k].n <= o->n);
        total += segs[k].n;
    }
#pragma omp parallel if (total > 65536)
    for (int k = 0; k < n_segs; k++) update_range(o, params, grads, segs[k].off, segs[k].n, lr, segs[k].wd);
}

void sm_adamw_update(sm_adamw *o, float *params, const float *grads, size_t off, size_t n, float lr, float wd) {
    sm_adamw_segment s = {off, n, wd};
    sm_adamw_update_segments(o, params, grads, &s, 1, lr);
}

float sm_lr_at(const sm_lr_schedule *s, long step) {
    if (step < s->warmup) return s->lr_max * (float)(step + 1) / (float)s->warmup;
    long span = s->total_steps - 1 - s->warmup;
    double frac = span > 0 ? (double)(step - s->warmup) / (double)span : 1.0;
    if (frac > 1) frac = 1;
    double floor_lr = (double)s->lr_max * s->min_frac;
    return (float)(floor_lr + ((double)s->lr_max - floor_lr) * 0.5 * (1.0 + cos(M_PI * frac)));
}

enum { NORM_PARTS = 256 };

double sm_grad_norm(const float *g, size_t n) {
    double part[NORM_PARTS];
    size_t per = (n + NORM_PARTS - 1) / NORM_PARTS;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int k = 0; k < NORM_PARTS; k++) {
        size_t lo = (size_t)k * per, hi = lo + per < n ? lo + per : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[k] = s;
    }
    double s = 0;
    for (int k = 0; k < NORM_PARTS; k++) s += part[k];
    return sqrt(s);
}

double sm_grad_clip(float *g, size_t n, float max_norm) {
    double norm = sm_grad_norm(g, n);
    if (max_norm > 0 && norm > max_norm) {
        /* as torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6) */
        float c = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    return norm;
}
