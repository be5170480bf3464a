/* train.c: the training loop (train.h). */
#include "train.h"

#include "checkpoint.h"
#include "zero.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void sm_train_config_default(sm_train_config *cfg) {
    *cfg = (sm_train_config){
        .batch = 8, .seq = 256, .accum = 1, .epochs = 1, .lr = 2e-4f, .min_lr_frac = 0.1f,
        .weight_decay = 0.01f, .clip = 1.0f, .adam = {0.9f, 0.999f, 1e-8f}, .seed = 1,
    };
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long sm_train_steps_for_epochs(const sm_examples *ex, int batch, int seq, int accum, double epochs, uint64_t seed) {
    sm_batcher *b = sm_batcher_new(ex, batch, seq, 1, seed, NULL);
    if (!b) return 0;
    long micro = 0;
    const sm_batch *bt;
    while (sm_batcher_cursor(b).epoch == 0 && sm_batcher_next(b, &bt)) micro++;
    /* the last micro-batch may have run into epoch 1: it still counts as one of this pass */
    sm_batcher_free(b);
    long steps = (long)ceil(epochs * (double)micro / accum);
    return steps > 0 ? steps : 1;
}

/* A JSON number, or null for NaN (which JSON cannot hold). */
static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Appends one event to the log and flushes it; steals obj. */
static void log_event(FILE *log, const char *event, json_t *obj) {
    if (log && obj) {
        json_t *line = json_object();
        json_object_set_new(line, "event", json_string(event));
        json_object_update(line, obj);
        char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (s) {
            fprintf(log, "%s\n", s);
            fflush(log);
            free(s);
        }
        json_decref(line);
    }
    json_decref(obj);
}

/* The run's identity: everything that decides the weights. */
static char *make_identity(const sm_train_model *tm, const sm_train_config *cfg, long total_steps, size_t n_params,
                           sm_error *err) {
    json_t *id = json_object();
    if (cfg->identity) {
        json_error_t je;
        json_t *extra = json_loads(cfg->identity, 0, &je);
        if (!json_is_object(extra)) {
            json_decref(extra);
            json_decref(id);
            sm_err(err, SM_EINVAL, "training identity is not a JSON object: %s", je.text);
            return NULL;
        }
        json_object_update(id, extra);
        json_decref(extra);
    }
    json_object_set_new(id, "mode", json_string(sm_train_model_mode(tm) == SM_TRAIN_FULL ? "full" : "lora"));
    json_object_set_new(id, "n_params", json_integer((json_int_t)n_params));
    json_object_set_new(id, "batch", json_integer(cfg->batch));
    json_object_set_new(id, "seq", json_integer(cfg->seq));
    json_object_set_new(id, "accum", json_integer(cfg->accum));
    json_object_set_new(id, "steps", json_integer(total_steps));
    json_object_set_new(id, "lr", jreal(cfg->lr));
    json_object_set_new(id, "min_lr_frac", jreal(cfg->min_lr_frac));
    json_object_set_new(id, "warmup", json_integer(cfg->warmup));
    json_object_set_new(id, "weight_decay", jreal(cfg->weight_decay));
    json_object_set_new(id, "clip", jreal(cfg->clip));
    json_object_set_new(id, "beta1", jreal(cfg->adam.beta1));
    json_object_set_new(id, "beta2", jreal(cfg->adam.beta2));
    json_object_set_new(id, "eps", jreal(cfg->adam.eps));
    json_object_set_new(id, "eval_every", json_integer(cfg->eval_every));
    json_object_set_new(id, "patience", json_integer(cfg->patience));
    json_object_set_new(id, "data_seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(id, "threads", json_integer(omp_get_max_threads()));
    if (sm_dist_size(cfg->dist) > 1) json_object_set_new(id, "ranks", json_integer(sm_dist_size(cfg->dist)));
    char *s = json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(id);
    if (!s) sm_err(err, SM_ENOMEM, "out of memory");
    return s;
}

/* An activated adapter's mask for rows of a batch (sm_train_config.activated): on from the first
 * position with a target (the marker token, whose target is the completion's first token) to the
 * end of that packed example, off before it. mask holds B * T bytes. */
static int set_activated_mask(sm_train_model *tm, unsigned char *mask, const int *targets, const int *seg, int B,
                              int T, sm_error *err) {
    if (!mask) return SM_OK;
    for (int b = 0; b < B; b++) {
        const int *tg = targets + (size_t)b * T, *sg = seg + (size_t)b * T;
        unsigned char *on = mask + (size_t)b * T;
        for (int p = 0; p < T; p++)
            on[p] = tg[p] >= 0 || (p > 0 && on[p - 1] && sg[p] == sg[p - 1]);
    }
    return sm_train_set_adapter_mask(tm, mask, B, T, err);
}

/* Token-weighted mean loss over the whole validation set. */
static int eval_loss(sm_train_model *tm, sm_batcher *vb, sm_dist *dist, unsigned char *mask, double *loss,
                     uint64_t *n_tok, sm_error *err) {
    sm_batcher_rewind(vb);
    const sm_batch *bt;
    double sum = 0;
    uint64_t n = 0;
    for (long i = 0; sm_batcher_next(vb, &bt); i++) {
        if (i % sm_dist_size(dist) != sm_dist_rank(dist)) continue; /* data parallel: every rank its batches */
        if (bt->n_targets == 0) continue;
        float l = 0;
        int rc = set_activated_mask(tm, mask, bt->targets, bt->seg, bt->B, bt->T, err);
        if (!rc) rc = sm_train_forward_loss(tm, bt->tokens, bt->targets, bt->seg, bt->B, bt->T, &l, err);
        if (rc) return rc;
        sum += (double)l * bt->n_targets;
        n += (uint64_t)bt->n_targets;
    }
    double sums[2] = {sum, (double)n};
    int rc = sm_dist_allreduce_f64(dist, sums, 2, err);
    if (rc) return rc;
    sum = sums[0];
    n = (uint64_t)sums[1];
    *loss = n ? sum / (double)n : NAN;
    *n_tok = n;
    return SM_OK;
}

typedef struct {
    sm_train_model *tm;
    const sm_train_config *cfg;
    sm_batcher *tb, *vb;
    sm_adamw *opt;
    float *params, *grads;
    size_t n_params;
    int n_train;
    const char *identity;
    sm_ckpt_state st;
    sm_lr_schedule sched;
    sm_adamw_segment *segs;    /* the tensors and their weight decay */
    int n_segs;
    sm_zero *zero;             /* ZeRO-1: the AdamW state sharded over the ranks (opt is NULL then) */
    double comm_s;             /* the last step's time in gradient reductions (several ranks) */
    uint64_t comm_bytes;       /* and the bytes this rank reduced */
    float *best;               /* the parameters at the best validation loss (with patience), or NULL */
    unsigned char *mask;       /* an activated adapter's mask (batch x seq), or NULL */
} run;

static int save_ckpt(run *r, sm_error *err) {
    if (!r->cfg->ckpt_path) return SM_OK;
    double t0 = now_s();
    r->st.cursor = sm_batcher_cursor(r->tb);
    r->st.train_rng = sm_train_rng(r->tm);
    sm_adamw *opt = r->opt;
    int rc = r->zero ? sm_zero_gather(r->zero, 0, &opt, err) : SM_OK; /* ZeRO: the whole state, on rank 0 */
    if (!rc && sm_dist_rank(r->cfg->dist) == 0) /* rank 0 alone writes */
        rc = sm_checkpoint_save(r->cfg->ckpt_path, r->identity, &r->st, r->params, opt, r->best, err);
    if (r->zero) sm_adamw_free(opt);
    if (!rc) {
        json_t *o = json_object();
        json_object_set_new(o, "step", json_integer((json_int_t)r->st.step));
        json_object_set_new(o, "ms", jreal(1e3 * (now_s() - t0)));
        log_event(r->cfg->log, "checkpoint", o);
    }
    return rc;
}

/* One optimizer step; writes its mean loss, gradient norm and tokens. */
static int train_step(run *r, float lr, float *loss, double *norm, uint64_t *tokens, double *update_s, sm_error *err) {
    const sm_train_config *cfg = r->cfg;
    sm_train_zero_grads(r->tm);
    double sum = 0;
    *tokens = 0;
    for (int k = 0; k < cfg->accum; k++) {
        const sm_batch *bt;
        sm_batcher_next(r->tb, &bt);
        /* data parallel: this rank's rows, weighted by their share of the micro-batch's targets
           (one process: all rows, weight 1) */
        int row0, rows, mine = 0;
        sm_dist_rows(cfg->dist, bt->B, &row0, &rows);
        size_t at = (size_t)row0 * (size_t)bt->T;
        for (size_t i = at; i < at + (size_t)rows * (size_t)bt->T; i++) mine += bt->targets[i] >= 0;
        float w = bt->n_targets > 0 ? (float)mine / (float)bt->n_targets : 0.0f;
        sm_train_set_grad_scale(r->tm, w / (float)cfg->accum);
        float l = 0;
        int rc = set_activated_mask(r->tm, r->mask, bt->targets + at, bt->seg + at, rows, bt->T, err);
        if (rc) return rc;
        rc = sm_train_forward_backward(r->tm, bt->tokens + at, bt->targets + at, bt->seg + at, rows, bt->T, &l, err);
        if (rc) return rc;
        sum += (double)w * l;
        *tokens += (uint64_t)bt->n_tokens;
    }
    sm_dist_stats before = sm_dist_get_stats(cfg->dist);
    int rc = sm_dist_allreduce_f64(cfg->dist, &sum, 1, err);
    if (rc) return rc;
    *loss = (float)(sum / cfg->accum);
    double t0 = now_s();
    if (r->zero) { /* reduce-scatter, clip, the own slice's update, allgather */
        rc = sm_zero_step(r->zero, r->params, r->grads, lr, cfg->clip, norm, err);
    } else {
        rc = sm_dist_allreduce_sum(cfg->dist, r->grads, r->n_params, err);
        if (rc) return rc;
        *norm = sm_grad_clip(r->grads, r->n_params, cfg->clip);
        sm_adamw_begin_step(r->opt);
        sm_adamw_update_segments(r->opt, r->params, r->grads, r->segs, r->n_segs, lr);
    }
    *update_s = now_s() - t0;
    sm_dist_stats after = sm_dist_get_stats(cfg->dist);
    r->comm_s = after.seconds - before.seconds;
    r->comm_bytes = after.bytes - before.bytes;
    return rc;
}

static int evaluate(run *r, sm_train_result *res, int *stop_now, sm_error *err) {
    const sm_train_config *cfg = r->cfg;
    double t0 = now_s(), vl = NAN;
    uint64_t n = 0;
    int rc = eval_loss(r->tm, r->vb, r->cfg->dist, r->mask, &vl, &n, err);
    if (rc) return rc;
    if (isnan(res->first_val)) res->first_val = vl;
    res->last_val = vl;
    if (isnan(r->st.best_val) || vl < r->st.best_val) {
        r->st.best_val = vl;
        r->st.best_step = r->st.step;
        r->st.bad_evals = 0;
        if (r->best) memcpy(r->best, r->params, r->n_params * sizeof(float));
    } else if (r->st.step > 0) {
        r->st.bad_evals++;
    }
    res->best_val = r->st.best_val;
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer((json_int_t)r->st.step));
    json_object_set_new(o, "val_loss", jreal(vl));
    json_object_set_new(o, "val_tokens", json_integer((json_int_t)n));
    json_object_set_new(o, "eval_ms", jreal(1e3 * (now_s() - t0)));
    log_event(cfg->log, "eval", o);
    if (cfg->patience > 0 && r->st.bad_evals >= cfg->patience) {
        *stop_now = 1;
        res->stopped_early = 1;
        o = json_object();
        json_object_set_new(o, "step", json_integer((json_int_t)r->st.step));
        json_object_set_new(o, "best_val", jreal(r->st.best_val));
        json_object_set_new(o, "patience", json_integer(cfg->patience));
        log_event(cfg->log, "early_stop", o);
    }
    return SM_OK;
}

static void report(run *r, const sm_train_result *res, int is_eval, float loss, float lr, double norm, double tok_s,
                   double elapsed, long steps_here, double t_here) {
    const sm_train_config *cfg = r->cfg;
    if (!cfg->progress) return;
    sm_batch_cursor c = sm_batcher_cursor(r->tb);
    sm_train_progress p = {
        .is_eval = is_eval, .step = (long)r->st.step, .total_steps = r->sched.total_steps,
        .loss = loss, .lr = lr, .grad_norm = norm, .tokens_per_s = tok_s, .elapsed_s = elapsed,
        .val_loss = res->last_val, .best_val = r->st.best_val,
    };
    p.epoch = (double)c.epoch + (double)c.pos / (double)r->n_train;
    p.eta_s = steps_here > 0 ? t_here / (double)steps_here * (double)(r->sched.total_steps - (long)r->st.step) : NAN;
    cfg->progress(cfg->user, &p);
}

int sm_train_run(sm_train_model *tm, const sm_examples *train, const sm_examples *val, const sm_train_config *cfg,
                 sm_train_result *res, sm_error *err) {
    *res = (sm_train_result){.resumed_from = -1, .restored_best = -1, .first_val = NAN, .best_val = NAN, .last_val = NAN, .final_loss = NAN};
    if (cfg->batch < 1 || cfg->seq < 2 || cfg->accum < 1 || cfg->steps < 0 || !(cfg->lr > 0) || cfg->warmup < 0 ||
        !(cfg->min_lr_frac >= 0 && cfg->min_lr_frac <= 1) || cfg->weight_decay < 0 || cfg->eval_every < 0 ||
        cfg->patience < 0 || cfg->ckpt_every < 0 || (cfg->steps == 0 && !(cfg->epochs > 0)))
        return sm_err(err, SM_EINVAL, "training: bad settings (batch %d, seq %d, accum %d, steps %ld, epochs %g, lr %g, warmup %ld)",
                      cfg->batch, cfg->seq, cfg->accum, cfg->steps, cfg->epochs, cfg->lr, cfg->warmup);
    if (sm_dist_size(cfg->dist) > cfg->batch)
        return sm_err(err, SM_EINVAL, "training: %d ranks for micro-batches of %d rows (every rank needs a row: --batch >= ranks)",
                      sm_dist_size(cfg->dist), cfg->batch);
    sm_train_config local = *cfg; /* data parallel: rank 0 alone logs and reports */
    if (sm_dist_rank(cfg->dist) != 0) local.log = NULL, local.progress = NULL;
    cfg = &local;
    run r = {.tm = tm, .cfg = cfg, .n_train = train->n};
    r.params = sm_train_params(tm, &r.n_params);
    r.grads = sm_train_grads(tm, &r.n_params);
    long total = cfg->steps ? cfg->steps : sm_train_steps_for_epochs(train, cfg->batch, cfg->seq, cfg->accum, cfg->epochs, cfg->seed);
    r.sched = (sm_lr_schedule){.lr_max = cfg->lr, .min_frac = cfg->min_lr_frac, .warmup = cfg->warmup, .total_steps = total};
    r.st = (sm_ckpt_state){.best_val = NAN};
    int rc = SM_OK;
    char *identity = NULL;
    if (!(r.tb = sm_batcher_new(train, cfg->batch, cfg->seq, 1, cfg->seed, err))) { rc = err ? err->code : SM_EINVAL; goto done; }
    if (val && val->n > 0 && !(r.vb = sm_batcher_new(val, cfg->batch, cfg->seq, 0, 0, err))) { rc = err ? err->code : SM_EINVAL; goto done; }
    if (cfg->activated && !(r.mask = malloc((size_t)cfg->batch * (size_t)cfg->seq))) {
        rc = sm_err(err, SM_ENOMEM, "out of memory");
        goto done;
    }
    int use_zero = sm_dist_size(cfg->dist) > 1 && sm_train_model_mode(tm) == SM_TRAIN_FULL && cfg->zero >= 0;
    if (!use_zero && !(r.opt = sm_adamw_new(r.n_params, &cfg->adam, err))) { rc = err ? err->code : SM_ENOMEM; goto done; }
    /* weight decay on matrices only (every LoRA A and B is one); never on norms and biases */
    int n_t = sm_train_n_tensors(tm);
    r.segs = malloc((size_t)(n_t > 0 ? n_t : 1) * sizeof *r.segs);
    if (!r.segs) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < n_t; i++) {
        const sm_train_tensor *t = sm_train_tensor_at(tm, i);
        r.segs[i] = (sm_adamw_segment){t->offset, t->n, t->n_dims == 2 ? cfg->weight_decay : 0.0f};
    }
    r.n_segs = n_t;
    if (n_t == 0) r.segs[r.n_segs++] = (sm_adamw_segment){0, r.n_params, cfg->weight_decay};
    if (use_zero && !(r.zero = sm_zero_new(cfg->dist, r.n_params, &cfg->adam, r.segs, r.n_segs, err))) {
        rc = err ? err->code : SM_ENOMEM;
        goto done;
    }
    if (r.vb && cfg->eval_every > 0 && cfg->patience > 0 && !(r.best = malloc(r.n_params * sizeof(float)))) {
        rc = sm_err(err, SM_ENOMEM, "out of memory for a copy of the best parameters");
        goto done;
    }
    if (!(identity = make_identity(tm, cfg, total, r.n_params, err))) { rc = SM_EINVAL; goto done; }
    r.identity = identity;

    json_t *o = json_loads(identity, 0, NULL);
    json_object_set_new(o, "train_examples", json_integer(train->n));
    json_object_set_new(o, "train_targets", json_integer((json_int_t)train->n_targets));
    json_object_set_new(o, "train_cut", json_integer(train->n_cut));
    json_object_set_new(o, "val_examples", json_integer(val ? val->n : 0));
    json_object_set_new(o, "ckpt_every", json_integer(cfg->ckpt_every));
    log_event(cfg->log, "config", o);

    if (cfg->resume && cfg->ckpt_path && sm_dist_any(cfg->dist, access(cfg->ckpt_path, F_OK) == 0, err) > 0) {
        /* every rank reads the checkpoint (a shared file system); ZeRO keeps its slice of the state */
        sm_adamw *opt = r.zero ? sm_adamw_new(r.n_params, &cfg->adam, err) : r.opt;
        rc = opt ? sm_checkpoint_load(cfg->ckpt_path, identity, &r.st, r.params, opt, r.best, err) : SM_ENOMEM;
        if (r.zero && opt && !rc) sm_zero_load(r.zero, opt);
        if (r.zero) sm_adamw_free(opt);
        if (!rc) rc = sm_batcher_seek(r.tb, r.st.cursor, err);
        if (rc) goto done;
        sm_train_set_rng(tm, r.st.train_rng);
        res->resumed_from = (long)r.st.step;
        res->best_val = r.st.best_val;
        o = json_object();
        json_object_set_new(o, "step", json_integer((json_int_t)r.st.step));
        log_event(cfg->log, "resume", o);
    }

    double t_start = now_s(), elapsed0 = r.st.elapsed_s;
    uint64_t tokens_here = 0;
    long steps_here = 0;
    int stop_now = 0;
    if (r.vb && cfg->eval_every > 0 && r.st.step == 0) {
        rc = evaluate(&r, res, &stop_now, err);
        if (rc) goto done;
        report(&r, res, 1, NAN, 0, 0, 0, 0, 0, 0);
    }
    float loss = NAN, lr = 0;
    while ((long)r.st.step < total && !stop_now) {
        if (sm_dist_any(cfg->dist, cfg->stop && *cfg->stop, err) > 0) { /* every rank stops at the same step */
            res->interrupted = 1;
            break;
        }
        double t0 = now_s();
        lr = sm_lr_at(&r.sched, (long)r.st.step);
        double norm = 0, update_s = 0;
        uint64_t tok = 0;
        rc = train_step(&r, lr, &loss, &norm, &tok, &update_s, err);
        if (rc) goto done;
        r.st.step++;
        r.st.tokens_seen += tok;
        tokens_here += tok;
        steps_here++;
        double t1 = now_s(), here = t1 - t_start;
        r.st.elapsed_s = elapsed0 + here;
        double tok_s = here > 0 ? (double)tokens_here / here : 0;
        sm_batch_cursor c = sm_batcher_cursor(r.tb);
        double epoch = (double)c.epoch + (double)c.pos / (double)train->n;
        o = json_object();
        json_object_set_new(o, "step", json_integer((json_int_t)r.st.step));
        json_object_set_new(o, "loss", jreal(loss));
        json_object_set_new(o, "lr", jreal(lr));
        json_object_set_new(o, "grad_norm", jreal(norm));
        json_object_set_new(o, "tokens", json_integer((json_int_t)tok));
        json_object_set_new(o, "tokens_per_s", jreal(tok_s));
        json_object_set_new(o, "step_ms", jreal(1e3 * (t1 - t0)));
        json_object_set_new(o, "update_ms", jreal(1e3 * update_s));
        if (sm_dist_size(cfg->dist) > 1) {
            json_object_set_new(o, "comm_ms", jreal(1e3 * r.comm_s));
            json_object_set_new(o, "comm_bytes", json_integer((json_int_t)r.comm_bytes));
        }
        json_object_set_new(o, "epoch", jreal(epoch));
        log_event(cfg->log, "step", o);
        report(&r, res, 0, loss, lr, norm, tok_s, r.st.elapsed_s, steps_here, here);
        if (r.vb && cfg->eval_every > 0 && ((long)r.st.step % cfg->eval_every == 0 || (long)r.st.step == total)) {
            rc = evaluate(&r, res, &stop_now, err);
            if (rc) goto done;
            report(&r, res, 1, loss, lr, norm, tok_s, r.st.elapsed_s, steps_here, here);
        }
        if (cfg->ckpt_every > 0 && (long)r.st.step % cfg->ckpt_every == 0 && (long)r.st.step < total && !stop_now) {
            rc = save_ckpt(&r, err);
            if (rc) goto done;
        }
    }
    if (res->interrupted) {
        rc = save_ckpt(&r, err);
        if (rc) goto done;
    } else if (r.best && r.st.best_val < res->last_val) {
        /* with early stopping, the run ends with its best weights */
        memcpy(r.params, r.best, r.n_params * sizeof(float));
        res->restored_best = (long)r.st.best_step;
        o = json_object();
        json_object_set_new(o, "step", json_integer((json_int_t)r.st.best_step));
        json_object_set_new(o, "val_loss", jreal(r.st.best_val));
        log_event(cfg->log, "restore_best", o);
    }
    if (sm_dist_size(cfg->dist) > 1 && sm_dist_same(cfg->dist, r.params, r.n_params * sizeof(float), err) != 1) {
        rc = err && err->code ? err->code : sm_err(err, SM_EIO, "data parallel: the ranks' weights differ at the end");
        goto done;
    }
    res->steps = (long)r.st.step;
    res->final_loss = loss;
    res->tokens = r.st.tokens_seen;
    res->elapsed_s = r.st.elapsed_s;
    res->best_val = r.st.best_val;
    o = json_object();
    json_object_set_new(o, "steps", json_integer(res->steps));
    json_object_set_new(o, "final_loss", jreal(loss));
    json_object_set_new(o, "first_val", jreal(res->first_val));
    json_object_set_new(o, "best_val", jreal(res->best_val));
    json_object_set_new(o, "last_val", jreal(res->last_val));
    json_object_set_new(o, "tokens", json_integer((json_int_t)res->tokens));
    json_object_set_new(o, "tokens_per_s", jreal(now_s() > t_start ? (double)tokens_here / (now_s() - t_start) : 0));
    json_object_set_new(o, "elapsed_s", jreal(res->elapsed_s));
    json_object_set_new(o, "stopped", json_string(res->interrupted ? "interrupted" : res->stopped_early ? "early" : "steps"));
    log_event(cfg->log, "summary", o);
done:
    free(identity);
    free(r.segs);
    free(r.best);
    sm_adamw_free(r.opt);
    sm_zero_free(r.zero);
    sm_batcher_free(r.tb);
    sm_batcher_free(r.vb);
    free(r.mask);
    return rc;
}
