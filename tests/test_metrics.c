/* test_metrics.c: BLEU-4, ROUGE-L, chrF and the set scores on hand-computed examples, then on
 * the 60 pairs and 20 tag-list sets of tests/ref/metrics_ref.jsonl (written by
 * tests/ref/gen_metrics_ref.py from the published definitions, its BLEU cross-checked with NLTK),
 * printing the largest difference of each metric; then the per-task accumulator's JSON. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static const double TOL = 1e-9; /* double arithmetic in both; only summation order differs */

static double score(int (*f)(const char *, const char *, double *), const char *h, const char *r) {
    double s = -1;
    int rc = f(h, r, &s);
    CHECK(rc == SM_OK, "metric failed (%d)", rc);
    return s;
}

static void hand_computed(void) {
    char **w;
    int n;
    CHECK(sm_words("parseISO8601_duration-v2, naïve!", &w, &n) == SM_OK && n == 5, "words: %d", n);
    const char *want[] = {"parseiso8601", "duration", "v2", "na", "ve"};
    for (int i = 0; i < n && i < 5; i++) CHECK(!strcmp(w[i], want[i]), "word %d: %s", i, w[i]);
    sm_words_free(w, n);

    /* ROUGE-L: lcs 3, P 1, R 1/2 */
    CHECK(fabs(score(sm_rouge_l, "The cat sat", "the cat sat on the mat") - 2.0 / 3) < TOL, "rouge 2/3");
    CHECK(score(sm_rouge_l, "", "the cat") == 0, "rouge empty");
    CHECK(fabs(score(sm_rouge_l, "b a", "a b") - 0.5) < TOL, "rouge order");

    /* BLEU: identical; effective order 2 with brevity penalty exp(1 - 3/2); smoothed orders 3, 4:
     * p = 3/4, 1/3, 1/(2*2), 1/(4*1) -> (1/64)^(1/4) */
    CHECK(fabs(score(sm_bleu4, "a b c d", "A, b; c d") - 1) < TOL, "bleu identical");
    CHECK(fabs(score(sm_bleu4, "the cat", "the cat sat") - exp(-0.5)) < TOL, "bleu short: %g", score(sm_bleu4, "the cat", "the cat sat"));
    CHECK(fabs(score(sm_bleu4, "a b c x", "a b d c") - pow(1.0 / 64, 0.25)) < TOL, "bleu smoothed: %g", score(sm_bleu4, "a b c x", "a b d c"));
    CHECK(score(sm_bleu4, "", "a b") == 0 && score(sm_bleu4, "...", "a b") == 0, "bleu no words");

    /* chrF: n=1 P 1 R 2/3, n=2 P 1 R 1/2, no higher orders in the hypothesis: F2 = 7/11 */
    CHECK(fabs(score(sm_chrf, "ab", "abc") - 7.0 / 11) < TOL, "chrf 7/11: %g", score(sm_chrf, "ab", "abc"));
    CHECK(fabs(score(sm_chrf, "a b\t", "ab") - 1) < TOL, "chrf whitespace");
    CHECK(score(sm_chrf, "AB", "ab") == 0, "chrf is case-sensitive");
    CHECK(fabs(score(sm_chrf, "café", "cafe") - score(sm_chrf, "cafx", "cafe")) < TOL, "chrf counts code points");

    /* sets: python hit, json predicted twice (once), http missed */
    sm_set_scores s = {0};
    const char *pred[] = {"python", "json", "json"}, *gold[] = {"python", "http"};
    CHECK(sm_set_scores_add(&s, pred, 3, gold, 2, NULL, 0) == SM_OK, "add");
    sm_prf mi = sm_set_scores_micro(&s), ma = sm_set_scores_macro(&s);
    CHECK(fabs(mi.precision - 0.5) < TOL && fabs(mi.recall - 0.5) < TOL && fabs(mi.f1 - 0.5) < TOL, "micro");
    CHECK(fabs(ma.precision - 1.0 / 3) < TOL && fabs(ma.recall - 1.0 / 3) < TOL && fabs(ma.f1 - 1.0 / 3) < TOL, "macro");
    sm_set_scores_free(&s);

    char **items;
    CHECK(sm_completion_items(SM_TASK_TAGS, " python,  regex , ,json", &items, &n) == SM_OK && n == 3 && !strcmp(items[1], "regex"), "tags split");
    sm_words_free(items, n);
    CHECK(sm_completion_items(SM_TASK_LINKS, "", &items, &n) == SM_OK && n == 0, "no links");
    sm_words_free(items, n);
}

static void against_reference(const char *src_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%stests/ref/metrics_ref.jsonl", src_dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    json_error_t jerr;
    json_t *head = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
    const char *magic = json_string_value(json_object_get(head, "magic"));
    CHECK(magic && !strcmp(magic, "snipmeta-metrics-ref") && json_integer_value(json_object_get(head, "version")) == 1,
          "%s: bad magic or version", path);
    int n_pairs = (int)json_integer_value(json_object_get(head, "pairs")), n_sets = (int)json_integer_value(json_object_get(head, "sets"));
    json_decref(head);
    double max_diff[3] = {0, 0, 0}, max_set = 0;
    const char *names[3] = {"bleu4", "rouge_l", "chrf"};
    int (*fns[3])(const char *, const char *, double *) = {sm_bleu4, sm_rouge_l, sm_chrf};
    int got_pairs = 0, got_sets = 0;
    for (json_t *o; (o = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr));) {
        if (json_object_get(o, "hyp")) {
            const char *h = json_string_value(json_object_get(o, "hyp")), *r = json_string_value(json_object_get(o, "ref"));
            for (int k = 0; k < 3; k++) {
                double want = json_real_value(json_object_get(o, names[k])), got = score(fns[k], h, r);
                double d = fabs(want - got);
                if (d > max_diff[k]) max_diff[k] = d;
                CHECK(d < TOL, "%s of '%s' vs '%s': %.12g, reference %.12g", names[k], h, r, got, want);
            }
            got_pairs++;
        } else {
            sm_set_scores s = {0};
            size_t i;
            json_t *ex;
            json_array_foreach(json_object_get(o, "examples"), i, ex) {
                const char *p[16], *g[16];
                int np = 0, ng = 0;
                size_t j;
                json_t *x;
                json_array_foreach(json_object_get(ex, "pred"), j, x) if (np < 16) p[np++] = json_string_value(x);
                json_array_foreach(json_object_get(ex, "gold"), j, x) if (ng < 16) g[ng++] = json_string_value(x);
                CHECK(sm_set_scores_add(&s, p, np, g, ng, NULL, 0) == SM_OK, "set add");
            }
            sm_prf got[2] = {sm_set_scores_micro(&s), sm_set_scores_macro(&s)};
            const char *kind[2] = {"micro", "macro"};
            for (int k = 0; k < 2; k++) {
                double want[3], have[3] = {got[k].precision, got[k].recall, got[k].f1};
                for (int m = 0; m < 3; m++) {
                    want[m] = json_real_value(json_array_get(json_object_get(o, kind[k]), (size_t)m));
                    double d = fabs(want[m] - have[m]);
                    if (d > max_set) max_set = d;
                    CHECK(d < TOL, "set %d %s[%d]: %.12g, reference %.12g", got_sets, kind[k], m, have[m], want[m]);
                }
            }
            sm_set_scores_free(&s);
            got_sets++;
        }
        json_decref(o);
    }
    fclose(f);
    CHECK(got_pairs == n_pairs && got_sets == n_sets && n_pairs > 0, "read %d pairs, %d sets", got_pairs, got_sets);
    printf("reference (%d pairs, %d sets): max |diff| bleu4 %.3g, rouge_l %.3g, chrf %.3g, sets %.3g (tolerance %.0e)\n",
           got_pairs, got_sets, max_diff[0], max_diff[1], max_diff[2], max_set, TOL);
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void accumulator(void) {
    const char *index[] = {"https://b.example/", "https://a.example/"};
    sm_eval *e = sm_eval_new(SM_TASK_LINKS, index, 2);
    CHECK(e != NULL, "eval new");
    CHECK(sm_eval_add(e, "python", "https://a.example/\nhttps://made.up/", "https://a.example/") == SM_OK, "add");
    CHECK(sm_eval_add(e, "c", "", "") == SM_OK, "add empty");
    json_t *j = sm_eval_json(e);
    CHECK(fabs(num(j, "validity") - 0.5) < TOL && fabs(num(j, "precision") - 0.5) < TOL && fabs(num(j, "recall") - 1) < TOL,
          "links: validity %g precision %g recall %g", num(j, "validity"), num(j, "precision"), num(j, "recall"));
    CHECK(fabs(num(j, "empty_agreement") - 0.5) < TOL && json_integer_value(json_object_get(j, "n")) == 2, "empty agreement");
    CHECK(json_object_size(json_object_get(j, "by_lang")) == 2, "two languages");
    json_decref(j);
    sm_eval_free(e);

    e = sm_eval_new(SM_TASK_TAGS, NULL, 0);
    CHECK(sm_eval_add(e, "python", "python, json", "python, http, json") == SM_OK, "add tags");
    j = sm_eval_json(e);
    CHECK(fabs(num(j, "precision") - 1) < TOL && fabs(num(j, "recall") - 2.0 / 3) < TOL, "tags micro");
    CHECK(fabs(num(j, "f1_without_lang") - 2.0 / 3) < TOL, "tags without the language: %g", num(j, "f1_without_lang"));
    CHECK(fabs(num(j, "check_pass") - 1) < TOL, "tags pass the check");
    json_decref(j);
    sm_eval_free(e);

    e = sm_eval_new(SM_TASK_TITLE, NULL, 0);
    CHECK(sm_eval_add(e, "go", "Parse a duration.", "Parse a duration") == SM_OK, "add title");
    j = sm_eval_json(e);
    CHECK(fabs(num(j, "rouge_l") - 1) < TOL && fabs(num(j, "bleu4") - 1) < TOL && num(j, "check_pass") == 0, "title");
    json_decref(j);
    sm_eval_free(e);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    /* the reference file lives in the source tree: found from this file's path as compiled */
    char src[4096];
    snprintf(src, sizeof src, "%s", __FILE__);
    char *cut = strstr(src, "tests/test_metrics.c");
    if (cut) *cut = 0;
    if (!cut) snprintf(src, sizeof src, "./");
    hand_computed();
    against_reference(src);
    accumulator();
    if (failures) { fprintf(stderr, "test_metrics: %d failures\n", failures); return 1; }
    printf("test_metrics: ok\n");
    return 0;
}
