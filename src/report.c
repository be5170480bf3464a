/* report.c: the HTML evaluation report with inline SVG (layout in report.h). The plots are drawn
 * by two small routines, grouped bars and lines, each writing one <svg> element with its axes,
 * ticks and legend; the page's text is HTML-escaped. */
#include "report.h"

#include "jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define COLOR(i) palette[(i) % (int)(sizeof palette / sizeof palette[0])]

static const char *const task_order[] = {"title", "description", "tags", "links"};

const char *sm_report_main_metric(const char *task) {
    return !strcmp(task, "title") || !strcmp(task, "description") ? "rouge_l" : "f1";
}

/* Writes s escaped for XML text; newlines become <br> with br (HTML), spaces otherwise (SVG). */
static void escape(FILE *f, const char *s, int br) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else if (*s == '\n') fputs(br ? "<br>" : " ", f);
        else fputc(*s, f);
    }
}

static void html_escape(FILE *f, const char *s) { escape(f, s, 1); }
static void svg_escape(FILE *f, const char *s) { escape(f, s, 0); }

/* ---- plots ---- */

enum { W = 720, H = 300, ML = 56, MR = 150, MT = 30, MB = 46 };

static void svg_open(FILE *f, const char *title) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n<text x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">",
            W, H, W, H, ML);
    svg_escape(f, title);
    fprintf(f, "</text>\n");
}

static void legend(FILE *f, int i, int color, const char *name, int dashed) {
    int y = MT + 14 * i;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"6\"%s/>"
               "<text x=\"%d\" y=\"%d\">",
            W - MR + 10, y, W - MR + 26, y, COLOR(color), dashed ? " stroke-dasharray=\"3,2\"" : "", W - MR + 30, y + 4);
    svg_escape(f, name);
    fprintf(f, "</text>\n");
}

/* A round step for about 5 ticks over [0, hi]. */
static double tick_step(double hi) {
    double raw = hi / 5, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void y_axis(FILE *f, double lo, double hi) {
    double step = tick_step(hi - lo);
    for (double v = ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
        double y = MT + (H - MT - MB) * (1 - (v - lo) / (hi - lo));
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n",
                ML, y, W - MR, y, ML - 4, y + 4, v);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", ML, H - MB, W - MR, H - MB);
}

/* Grouped bars: values[g * n_series + s] in [0, 1] (negative: missing). */
static void svg_bars(FILE *f, const char *title, const char *const *groups, int n_groups, const char *const *series,
                     int n_series, const double *values) {
    svg_open(f, title);
    y_axis(f, 0, 1);
    double gw = (double)(W - ML - MR) / n_groups, bw = gw * 0.8 / n_series;
    for (int g = 0; g < n_groups; g++) {
        for (int s = 0; s < n_series; s++) {
            double v = values[g * n_series + s];
            if (v < 0) continue;
            double x = ML + g * gw + gw * 0.1 + s * bw, h = (H - MT - MB) * (v > 1 ? 1 : v);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x, H - MB - h, bw * 0.95, h, COLOR(s));
            svg_escape(f, series[s]);
            fprintf(f, " %s: %.4f</title></rect>\n", groups[g], v);
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", ML + (g + 0.5) * gw, H - MB + 14 + (n_groups > 6 && g % 2 ? 13 : 0));
        svg_escape(f, groups[g]);
        fprintf(f, "</text>\n");
    }
    for (int s = 0; s < n_series; s++) legend(f, s, s, series[s], 0);
    fprintf(f, "</svg>\n");
}

typedef struct {
    const char *name;
    int n;
    double *x, *y;
    int color, dashed;
} series_t;

/* Lines of (x, y) points; log_x: log10-scaled x axis. */
static void svg_lines(FILE *f, const char *title, const char *x_label, const series_t *s, int n_series, int log_x) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n_series; i++)
        for (int k = 0; k < s[i].n; k++) {
            double x = log_x ? log10(s[i].x[k]) : s[i].x[k];
            if (!isfinite(x) || !isfinite(s[i].y[k])) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, s[i].y[k]), y1 = fmax(y1, s[i].y[k]);
        }
    if (!(x1 >= x0) || !(y1 >= y0)) return;
    if (x1 == x0) x1 = x0 + 1;
    y0 = y0 > 0 && y0 < y1 * 0.5 ? 0 : y0 - 0.05 * (y1 - y0 + 1e-9);
    if (y1 == y0) y1 = y0 + 1;
    y1 += 0.05 * (y1 - y0);
    svg_open(f, title);
    y_axis(f, y0, y1);
    /* x ticks: the data's own x values when few (data sizes), else round steps */
    double step = tick_step(x1 - x0);
    for (double v = ceil(x0 / step) * step; !log_x && v <= x1 + 1e-9; v += step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", ML + (W - ML - MR) * (v - x0) / (x1 - x0), H - MB + 14, v);
    for (int i = 0; log_x && i < n_series; i++)
        for (int k = 0; k < s[i].n; k++)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                    ML + (W - ML - MR) * (log10(s[i].x[k]) - x0) / (x1 - x0), H - MB + 14, s[i].x[k]);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + W - MR) / 2, H - 8);
    svg_escape(f, x_label);
    fprintf(f, "</text>\n");
    for (int i = 0; i < n_series; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", COLOR(s[i].color),
                s[i].dashed ? " stroke-dasharray=\"5,3\"" : "");
        for (int k = 0; k < s[i].n; k++) {
            double x = log_x ? log10(s[i].x[k]) : s[i].x[k];
            if (!isfinite(x) || !isfinite(s[i].y[k])) continue;
            fprintf(f, "%.1f,%.1f ", ML + (W - ML - MR) * (x - x0) / (x1 - x0), MT + (H - MT - MB) * (1 - (s[i].y[k] - y0) / (y1 - y0)));
        }
        fprintf(f, "\"/>\n");
        for (int k = 0; k < s[i].n && s[i].n <= 40; k++) { /* markers where points are few (data sizes) */
            double x = log_x ? log10(s[i].x[k]) : s[i].x[k];
            if (!isfinite(x) || !isfinite(s[i].y[k])) continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%g: %.4f</title></circle>\n",
                    ML + (W - ML - MR) * (x - x0) / (x1 - x0), MT + (H - MT - MB) * (1 - (s[i].y[k] - y0) / (y1 - y0)), COLOR(s[i].color),
                    s[i].x[k], s[i].y[k]);
        }
        legend(f, i, s[i].color, s[i].name, s[i].dashed);
    }
    fprintf(f, "</svg>\n");
}

/* ---- sections ---- */

static const char *label_of(const json_t *run) {
    const char *l = json_string_value(json_object_get(run, "label"));
    return l ? l : "?";
}

/* The label, with the training-set size when there is one: "lora (300)". */
static void display_name(char *out, size_t cap, const json_t *run) {
    json_int_t size = json_integer_value(json_object_get(run, "train_size"));
    if (size > 0) snprintf(out, cap, "%s (%lld)", label_of(run), (long long)size);
    else snprintf(out, cap, "%s", label_of(run));
}

static json_t *task_of(const json_t *run, const char *task) { return json_object_get(json_object_get(run, "tasks"), task); }

static void task_section(FILE *f, json_t *const *runs, int n_runs, const char *task) {
    /* the metrics: the real-valued keys of the first run that has this task */
    const char *keys[16];
    int n_keys = 0;
    for (int r = 0; r < n_runs && !n_keys; r++) {
        const char *k;
        json_t *v;
        json_object_foreach(task_of(runs[r], task), k, v) if (json_is_real(v) && n_keys < 16) keys[n_keys++] = k;
    }
    if (!n_keys) return;
    fprintf(f, "<h2>%s</h2>\n<table><tr><th>run</th><th>n</th>", task);
    for (int k = 0; k < n_keys; k++) fprintf(f, "<th>%s</th>", keys[k]);
    fprintf(f, "</tr>\n");
    const char *labels[64];
    char names[64][160];
    double values[16 * 64];
    int n_series = 0;
    for (int r = 0; r < n_runs && n_series < 64; r++) {
        json_t *m = task_of(runs[r], task);
        if (!m) continue;
        display_name(names[n_series], sizeof names[0], runs[r]);
        labels[n_series] = names[n_series];
        fprintf(f, "<tr><td>");
        html_escape(f, labels[n_series]);
        fprintf(f, "</td><td>%lld</td>", (long long)json_integer_value(json_object_get(m, "n")));
        for (int k = 0; k < n_keys; k++) {
            json_t *v = json_object_get(m, keys[k]);
            values[k * 64 + n_series] = v ? json_number_value(v) : -1;
            if (v) fprintf(f, "<td>%.4f</td>", json_number_value(v));
            else fprintf(f, "<td></td>");
        }
        fprintf(f, "</tr>\n");
        n_series++;
    }
    fprintf(f, "</table>\n");
    /* bars: the share-valued metrics (n_pred, n_gold are counts and stay in the table) */
    const char *groups[16];
    double bars[16 * 64];
    int n_groups = 0;
    for (int k = 0; k < n_keys; k++) {
        if (!strncmp(keys[k], "n_", 2)) continue;
        groups[n_groups] = keys[k];
        for (int s = 0; s < n_series; s++) bars[n_groups * n_series + s] = values[k * 64 + s];
        n_groups++;
    }
    char title[128];
    snprintf(title, sizeof title, "%s: metrics by run", task);
    svg_bars(f, title, groups, n_groups, labels, n_series, bars);

    /* by language: the main metric */
    const char *main_metric = sm_report_main_metric(task);
    fprintf(f, "<h3>%s by language (%s)</h3>\n<table><tr><th>language</th>", task, main_metric);
    for (int s = 0; s < n_series; s++) { fprintf(f, "<th>"); html_escape(f, labels[s]); fprintf(f, "</th>"); }
    fprintf(f, "</tr>\n");
    const char *lang;
    json_t *v;
    json_t *first = NULL;
    for (int r = 0; r < n_runs && !first; r++) first = task_of(runs[r], task);
    json_object_foreach(json_object_get(first, "by_lang"), lang, v) {
        fprintf(f, "<tr><td>%s (n=%lld)</td>", lang, (long long)json_integer_value(json_object_get(v, "n")));
        for (int r = 0; r < n_runs; r++) {
            json_t *m = task_of(runs[r], task);
            if (!m) continue;
            json_t *x = json_object_get(json_object_get(json_object_get(m, "by_lang"), lang), main_metric);
            if (x) fprintf(f, "<td>%.4f</td>", json_number_value(x));
            else fprintf(f, "<td></td>");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

static int size_cmp(const void *a, const void *b) {
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void data_size_section(FILE *f, json_t *const *runs, int n_runs) {
    const char *labels[64];
    int n_labels = 0;
    for (int r = 0; r < n_runs; r++) {
        if (json_integer_value(json_object_get(runs[r], "train_size")) <= 0) continue;
        int known = 0;
        for (int i = 0; i < n_labels; i++) known |= !strcmp(labels[i], label_of(runs[r]));
        if (!known && n_labels < 64) labels[n_labels++] = label_of(runs[r]);
    }
    int header = 0;
    for (int t = 0; t < 4; t++) {
        series_t s[64];
        double pts[64][2 * 32];
        int n_s = 0;
        for (int i = 0; i < n_labels; i++) {
            double xy[32][2];
            int n = 0;
            for (int r = 0; r < n_runs && n < 32; r++) {
                json_t *m = task_of(runs[r], task_order[t]);
                json_int_t size = json_integer_value(json_object_get(runs[r], "train_size"));
                if (!m || size <= 0 || strcmp(label_of(runs[r]), labels[i])) continue;
                xy[n][0] = (double)size, xy[n][1] = json_number_value(json_object_get(m, sm_report_main_metric(task_order[t])));
                n++;
            }
            if (n < 2) continue;
            qsort(xy, (size_t)n, sizeof xy[0], size_cmp);
            for (int k = 0; k < n; k++) pts[n_s][k] = xy[k][0], pts[n_s][32 + k] = xy[k][1];
            s[n_s] = (series_t){labels[i], n, pts[n_s], pts[n_s] + 32, n_s, 0};
            n_s++;
        }
        if (!n_s) continue;
        if (!header++) fprintf(f, "<h2>Data-size curves</h2>\n");
        char title[128];
        snprintf(title, sizeof title, "%s: %s against training snippets", task_order[t], sm_report_main_metric(task_order[t]));
        svg_lines(f, title, "training snippets (log scale)", s, n_s, 1);
    }
}

typedef struct {
    double *x, *y;
    int n, cap;
} points;

static int push(points *p, double x, double y) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        double *nx = realloc(p->x, (size_t)cap * sizeof *nx);
        if (!nx) return SM_ENOMEM;
        p->x = nx;
        double *ny = realloc(p->y, (size_t)cap * sizeof *ny);
        if (!ny) return SM_ENOMEM;
        p->y = ny, p->cap = cap;
    }
    p->x[p->n] = x, p->y[p->n] = y, p->n++;
    return SM_OK;
}

static int loss_section(FILE *f, const char *const *log_paths, int n_logs, sm_error *err) {
    if (!n_logs) return SM_OK;
    points *train = calloc((size_t)n_logs, sizeof *train), *val = calloc((size_t)n_logs, sizeof *val);
    series_t *s = calloc(2 * (size_t)n_logs, sizeof *s);
    int rc = train && val && s ? SM_OK : sm_err(err, SM_ENOMEM, "out of memory");
    for (int i = 0; i < n_logs && !rc; i++) {
        sm_jsonl *r;
        if ((rc = sm_jsonl_open(&r, log_paths[i], err))) break;
        json_t *o;
        for (int got; !rc && (got = sm_jsonl_next(r, &o, err)) != 0;) {
            if (got < 0) { rc = got; break; }
            const char *ev = json_string_value(json_object_get(o, "event"));
            double step = json_number_value(json_object_get(o, "step"));
            if (ev && !strcmp(ev, "step") && json_is_number(json_object_get(o, "loss")))
                rc = push(&train[i], step, json_number_value(json_object_get(o, "loss")));
            else if (ev && !strcmp(ev, "eval") && json_is_number(json_object_get(o, "val_loss")))
                rc = push(&val[i], step, json_number_value(json_object_get(o, "val_loss")));
            json_decref(o);
            if (rc > 0) rc = 0;
            if (rc == SM_ENOMEM) sm_err(err, rc, "out of memory");
        }
        sm_jsonl_close(r);
    }
    int n_s = 0;
    char names[64][160];
    for (int i = 0; i < n_logs && !rc && n_s < 62; i++) {
        const char *base = strrchr(log_paths[i], '/');
        base = base ? base + 1 : log_paths[i];
        if (train[i].n) {
            snprintf(names[n_s], sizeof names[0], "%s train", base);
            s[n_s] = (series_t){names[n_s], train[i].n, train[i].x, train[i].y, i, 0};
            n_s++;
        }
        if (val[i].n) {
            snprintf(names[n_s], sizeof names[0], "%s validation", base);
            s[n_s] = (series_t){names[n_s], val[i].n, val[i].x, val[i].y, i, 1};
            n_s++;
        }
    }
    if (!rc && n_s) {
        fprintf(f, "<h2>Loss curves</h2>\n");
        svg_lines(f, "loss per target token (nats)", "step", s, n_s, 0);
    }
    for (int i = 0; i < n_logs && train && val; i++) free(train[i].x), free(train[i].y), free(val[i].x), free(val[i].y);
    free(train);
    free(val);
    free(s);
    return rc;
}

static void examples_section(FILE *f, const json_t *run) {
    json_t *ex = json_object_get(run, "examples");
    if (!json_object_size(ex)) return;
    fprintf(f, "<h2>First predictions of ");
    html_escape(f, label_of(run));
    fprintf(f, "</h2>\n");
    for (int t = 0; t < 4; t++) {
        json_t *list = json_object_get(ex, task_order[t]);
        if (!json_array_size(list)) continue;
        fprintf(f, "<h3>%s</h3>\n<table><tr><th>id</th><th>language</th><th>prediction</th><th>reference</th></tr>\n", task_order[t]);
        for (size_t i = 0; i < json_array_size(list) && i < 8; i++) {
            json_t *e = json_array_get(list, i);
            fprintf(f, "<tr><td>");
            html_escape(f, json_string_value(json_object_get(e, "id")));
            fprintf(f, "</td><td>");
            html_escape(f, json_string_value(json_object_get(e, "lang")));
            fprintf(f, "</td><td>");
            html_escape(f, json_string_value(json_object_get(e, "pred")));
            fprintf(f, "</td><td>");
            html_escape(f, json_string_value(json_object_get(e, "gold")));
            fprintf(f, "</td></tr>\n");
        }
        fprintf(f, "</table>\n");
    }
}

int sm_report_write(const char *dir, json_t *const *runs, int n_runs, const char *const *log_paths, int n_logs, sm_error *err) {
    if (mkdir(dir, 0777) && errno != EEXIST) return sm_err(err, SM_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    size_t len = strlen(dir) + 32;
    char *path = malloc(len), *tmp = malloc(len + 8);
    if (!path || !tmp) { free(path); free(tmp); return sm_err(err, SM_ENOMEM, "out of memory"); }
    int rc = SM_OK;
    json_t *all = json_array();
    for (int r = 0; r < n_runs && all; r++) json_array_append(all, runs[r]);
    snprintf(path, len, "%s/results.json", dir);
    if (!all || json_dump_file(all, path, JSON_INDENT(1) | JSON_REAL_PRECISION(8))) rc = sm_err(err, SM_EIO, "%s: cannot write", path);
    json_decref(all);
    snprintf(path, len, "%s/index.html", dir);
    snprintf(tmp, len + 8, "%s.tmp", path);
    FILE *f = rc ? NULL : fopen(tmp, "w");
    if (!rc && !f) rc = sm_err(err, SM_EIO, "%s: %s", tmp, strerror(errno));
    if (f) {
        fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>snipmeta evaluation</title>\n<style>"
                   "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
                   "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;"
                   "vertical-align:top}th{background:#f4f4f4}td:first-child{white-space:nowrap}</style></head><body>\n"
                   "<h1>snipmeta evaluation</h1>\n<p>Runs: ");
        for (int r = 0; r < n_runs; r++) {
            char name[160];
            display_name(name, sizeof name, runs[r]);
            fprintf(f, "%s<b>", r ? ", " : "");
            html_escape(f, name);
            fprintf(f, "</b> (");
            html_escape(f, json_string_value(json_object_get(runs[r], "system")));
            json_int_t size = json_integer_value(json_object_get(runs[r], "train_size"));
            if (size > 0) fprintf(f, ", %lld training snippets", (long long)size);
            fprintf(f, ")");
        }
        fprintf(f, ". Scores are in [0, 1]; definitions in docs/EVALUATION.md.</p>\n");
        for (int t = 0; t < 4; t++) task_section(f, runs, n_runs, task_order[t]);
        data_size_section(f, runs, n_runs);
        rc = loss_section(f, log_paths, n_logs, err);
        if (n_runs) examples_section(f, runs[0]);
        fprintf(f, "</body></html>\n");
        if (fclose(f) && !rc) rc = sm_err(err, SM_EIO, "%s: write failed", tmp);
        if (!rc && rename(tmp, path)) rc = sm_err(err, SM_EIO, "%s: %s", path, strerror(errno));
        if (rc) remove(tmp);
    }
    free(path);
    free(tmp);
    return rc;
}
