/* train_cli.c: the loop's flags, progress display, run log and stop signals (train_cli.h). */
#include "train_cli.h"

#include "cli.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

void train_flags_init(train_flags *f) {
    memset(f, 0, sizeof *f);
    sm_train_config_default(&f->cfg);
}

void train_flags_usage(FILE *out) {
    fprintf(out,
            "loop:\n"
            "  --steps N          optimizer steps (default: from --epochs)\n"
            "  --epochs E         passes over the training examples (default 1)\n"
            "  --batch B          rows per micro-batch (default 8)\n"
            "  --seq T            positions per row; examples are packed into rows (default 256)\n"
            "  --accum K          micro-batches per step (gradient accumulation, default 1)\n"
            "  --lr LR            peak learning rate (AdamW)\n"
            "  --min-lr-frac F    the cosine decays to F * LR (default 0.1)\n"
            "  --warmup W         steps of linear warmup (default 0)\n"
            "  --wd WD            decoupled weight decay on matrices (never norms or biases)\n"
            "  --clip C           clip the global gradient norm to C (0: off; default 1)\n"
            "  --beta1 B1 --beta2 B2 --eps E   AdamW (default 0.9, 0.999, 1e-8)\n"
            "  --eval-every N     validation loss every N steps, at the start and the end (0: off)\n"
            "  --patience P       stop after P evaluations without a better validation loss (0: never)\n"
            "  --ckpt-every N     write a checkpoint every N steps (default 0: only on SIGINT/SIGTERM)\n"
            "  --ckpt PATH        the checkpoint file (default OUT.ckpt)\n"
            "  --resume           continue from the checkpoint bit for bit (same seed and threads)\n"
            "  --keep-ckpt        keep the checkpoint after a finished run (default: removed)\n"
            "  --seed S           seed of the initialisation, data order and dropout (default 1)\n"
            "  -t, --threads N    threads (default: all cores); a resumed run must use the same\n"
            "  --log PATH         the run log, JSON Lines (config, data hash, per-step loss, lr,\n"
            "                     tokens/s, validation losses, timings, summary); appended to\n"
            "  -q                 no progress display\n");
}

int train_flags_parse(train_flags *f, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    sm_train_config *c = &f->cfg;
    if (!strcmp(a, "--resume")) { c->resume = 1; return 1; }
    if (!strcmp(a, "--keep-ckpt")) { f->keep_ckpt = 1; return 1; }
    if (!strcmp(a, "-q")) { f->quiet = 1; return 1; }
    static const char *const with_value[] = {"--steps", "--epochs", "--batch", "--seq", "--accum", "--lr", "--min-lr-frac",
                                             "--warmup", "--wd", "--clip", "--beta1", "--beta2", "--eps", "--eval-every",
                                             "--patience", "--ckpt-every", "--ckpt", "--seed", "-t", "--threads", "--log"};
    int known = 0;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= !strcmp(a, with_value[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) { cli_usage_error(cmd, "%s needs a value", a); return -1; }
    const char *v = argv[++*i];
    long long n = 0;
    double x = 0;
#define INT_FLAG(name, lo, hi, dst) \
    if (!strcmp(a, name)) { \
        if (cli_parse_int(v, lo, hi, &n)) { cli_usage_error(cmd, "%s wants an integer in [%lld, %lld], not '%s'", a, (long long)(lo), (long long)(hi), v); return -1; } \
        dst = n; \
        return 1; \
    }
#define FLOAT_FLAG(name, cond, what, dst) \
    if (!strcmp(a, name)) { \
        if (cli_parse_float(v, &x) || !(cond)) { cli_usage_error(cmd, "%s wants %s, not '%s'", a, what, v); return -1; } \
        dst = x; \
        return 1; \
    }
    if (!strcmp(a, "--steps")) f->steps_set = 1;
    if (!strcmp(a, "--epochs")) f->epochs_set = 1;
    if (!strcmp(a, "--lr")) f->lr_set = 1;
    if (!strcmp(a, "--wd")) f->wd_set = 1;
    if (!strcmp(a, "--eval-every")) f->eval_set = 1;
    INT_FLAG("--steps", 1, 1000000000, c->steps)
    FLOAT_FLAG("--epochs", x > 0, "a number > 0", c->epochs)
    INT_FLAG("--batch", 1, 65536, c->batch)
    INT_FLAG("--seq", 8, 1 << 20, c->seq)
    INT_FLAG("--accum", 1, 65536, c->accum)
    FLOAT_FLAG("--lr", x > 0 && x < 10, "a number in (0, 10)", c->lr)
    FLOAT_FLAG("--min-lr-frac", x >= 0 && x <= 1, "a number in [0, 1]", c->min_lr_frac)
    INT_FLAG("--warmup", 0, 1000000000, c->warmup)
    FLOAT_FLAG("--wd", x >= 0 && x < 10, "a number in [0, 10)", c->weight_decay)
    FLOAT_FLAG("--clip", x >= 0, "a number >= 0", c->clip)
    FLOAT_FLAG("--beta1", x >= 0 && x < 1, "a number in [0, 1)", c->adam.beta1)
    FLOAT_FLAG("--beta2", x >= 0 && x < 1, "a number in [0, 1)", c->adam.beta2)
    FLOAT_FLAG("--eps", x > 0, "a number > 0", c->adam.eps)
    INT_FLAG("--eval-every", 0, 1000000000, c->eval_every)
    INT_FLAG("--patience", 0, 1000000, c->patience)
    INT_FLAG("--ckpt-every", 0, 1000000000, c->ckpt_every)
    INT_FLAG("--seed", 0, INT64_MAX, c->seed)
    INT_FLAG("-t", 1, 4096, f->threads)
    INT_FLAG("--threads", 1, 4096, f->threads)
    if (!strcmp(a, "--ckpt")) { f->ckpt_path = v; return 1; }
    if (!strcmp(a, "--log")) { f->log_path = v; return 1; }
#undef INT_FLAG
#undef FLOAT_FLAG
    return 0;
}

/* ---- progress on stderr ---- */

typedef struct {
    int tty, drawn;
    double last_draw;
    long every;     /* without a terminal: a line every this many steps */
} progress_state;

static progress_state progress;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "--");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void on_progress(void *user, const sm_train_progress *p) {
    (void)user;
    char eta[32], el[32], val[48] = "";
    fmt_time(eta, sizeof eta, p->eta_s);
    fmt_time(el, sizeof el, p->elapsed_s);
    if (!isnan(p->val_loss)) snprintf(val, sizeof val, " val %.4f (best %.4f)", p->val_loss, p->best_val);
    if (progress.tty) {
        double t = mono_s();
        if (!p->is_eval && p->step < p->total_steps && t - progress.last_draw < 0.1) return;
        progress.last_draw = t;
        enum { WIDTH = 24 };
        int fill = p->total_steps > 0 ? (int)(WIDTH * p->step / p->total_steps) : 0;
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr, "\r\033[K[%s] %ld/%ld loss %.4f%s lr %.2e %.0f tok/s %s ETA %s", bar, p->step, p->total_steps,
                p->loss, val, p->lr, p->tokens_per_s, el, eta);
        progress.drawn = 1;
    } else if (p->is_eval || p->step == p->total_steps || p->step % progress.every == 0) {
        if (p->is_eval)
            fprintf(stderr, "step %ld/%ld:%s\n", p->step, p->total_steps, val);
        else
            fprintf(stderr, "step %ld/%ld: loss %.4f lr %.2e %.0f tok/s, %s elapsed, ETA %s\n", p->step, p->total_steps,
                    p->loss, p->lr, p->tokens_per_s, el, eta);
    }
}

int train_cli_start(train_flags *f, const char *cmd) {
    cli_set_threads((int)f->threads);
    if (f->log_path) {
        f->cfg.log = fopen(f->log_path, "a");
        if (!f->cfg.log) {
            fprintf(stderr, "snipmeta %s: %s: cannot open the log for appending\n", cmd, f->log_path);
            return EXIT_FAIL;
        }
    }
    stop_flag = 0;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    f->cfg.stop = &stop_flag;
    if (!f->quiet) {
        progress = (progress_state){.tty = isatty(STDERR_FILENO)};
        long total = f->cfg.steps > 0 ? f->cfg.steps : 100;
        progress.every = total / 20 > 0 ? total / 20 : 1;
        f->cfg.progress = on_progress;
    }
    return 0;
}

void train_cli_finish(train_flags *f) {
    if (progress.tty && progress.drawn) fprintf(stderr, "\n");
    progress.drawn = 0;
    if (f->cfg.log) fclose(f->cfg.log);
    f->cfg.log = NULL;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}
