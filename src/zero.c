/* zero.c: the AdamW state sharded over a data-parallel group (zero.h). */
#include "zero.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sm_zero {
    sm_dist *dist;
    size_t n, *lo;               /* lo: (size + 1) slice bounds */
    size_t begin, end;           /* this rank's slice */
    sm_adamw *opt;               /* m, v of the slice; NULL for an empty slice */
    sm_adamw_segment *segs;      /* the tensors cut to the slice, offsets from begin */
    int n_segs;
    uint64_t t;                  /* steps (kept here too: an empty slice has no opt) */
    sm_adamw_config cfg;
};

sm_zero *sm_zero_new(sm_dist *d, size_t n, const sm_adamw_config *cfg, const sm_adamw_segment *segs, int n_segs,
                     sm_error *err) {
    int size = sm_dist_size(d), rank = sm_dist_rank(d);
    sm_zero *z = calloc(1, sizeof *z);
    if (!z || !(z->lo = malloc((size_t)(size + 1) * sizeof *z->lo)) ||
        !(z->segs = malloc((size_t)(n_segs > 0 ? n_segs : 1) * sizeof *z->segs))) {
        sm_zero_free(z);
        sm_err(err, SM_ENOMEM, "out of memory");
        return NULL;
    }
    z->dist = d;
    z->n = n;
    z->cfg = *cfg;
    sm_dist_slices(n, size, z->lo);
    z->begin = z->lo[rank];
    z->end = z->lo[rank + 1];
    for (int i = 0; i < n_segs; i++) {
        size_t a = segs[i].off > z->begin ? segs[i].off : z->begin;
        size_t b = segs[i].off + segs[i].n < z->end ? segs[i].off + segs[i].n : z->end;
        if (a < b) z->segs[z->n_segs++] = (sm_adamw_segment){a - z->begin, b - a, segs[i].wd};
    }
    if (z->end > z->begin && !(z->opt = sm_adamw_new(z->end - z->begin, cfg, err))) {
        sm_zero_free(z);
        return NULL;
    }
    return z;
}

void sm_zero_free(sm_zero *z) {
    if (!z) return;
    sm_adamw_free(z->opt);
    free(z->lo);
    free(z->segs);
    free(z);
}

size_t sm_zero_state_bytes(const sm_zero *z) { return 2 * (z->end - z->begin) * sizeof(float); }

int sm_zero_step(sm_zero *z, float *params, float *grads, float lr, float clip, double *norm, sm_error *err) {
    int rc = sm_dist_reduce_scatter_sum(z->dist, grads, z->lo, err);
    if (rc) return rc;
    size_t len = z->end - z->begin;
    float *g = grads + z->begin;
    double part = len ? sm_grad_norm(g, len) : 0.0;
    double sq = part * part;
    if ((rc = sm_dist_allreduce_f64(z->dist, &sq, 1, err))) return rc;
    *norm = sqrt(sq);
    if (clip > 0 && *norm > clip) {
        float c = (float)(clip / (*norm + 1e-6));
        for (size_t i = 0; i < len; i++) g[i] *= c;
    }
    z->t++;
    if (z->opt) {
        sm_adamw_begin_step(z->opt);
        sm_adamw_update_segments(z->opt, params + z->begin, g, z->segs, z->n_segs, lr);
    }
    return sm_dist_allgather(z->dist, params, z->lo, err);
}

int sm_zero_gather(sm_zero *z, int root, sm_adamw **full, sm_error *err) {
    *full = NULL;
    int is_root = sm_dist_rank(z->dist) == root;
    sm_adamw *f = NULL;
    if (is_root && !(f = sm_adamw_new(z->n, &z->cfg, err))) return err ? err->code : SM_ENOMEM;
    static const float none = 0;
    const float *m = z->opt ? z->opt->m : &none, *v = z->opt ? z->opt->v : &none;
    int rc = sm_dist_gather(z->dist, f ? f->m : NULL, m, z->lo, root, err);
    if (!rc) rc = sm_dist_gather(z->dist, f ? f->v : NULL, v, z->lo, root, err);
    if (rc) { sm_adamw_free(f); return rc; }
    if (f) f->t = z->t;
    *full = f;
    return SM_OK;
}

void sm_zero_load(sm_zero *z, const sm_adamw *full) {
    z->t = full->t;
    if (!z->opt) return;
    size_t len = z->end - z->begin;
    memcpy(z->opt->m, full->m + z->begin, len * sizeof(float));
    memcpy(z->opt->v, full->v + z->begin, len * sizeof(float));
    z->opt->t = full->t;
}
