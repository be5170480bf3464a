/* metrics.h: the evaluation metrics of the four tasks, and the accumulator that `snipmeta eval`
 * feeds one (prediction, reference) pair at a time.
 *
 * Every score is in [0, 1] (sacrebleu prints BLEU and chrF times 100). Definitions:
 *
 *   words     lowercase ASCII, then the maximal runs of [a-z0-9]; everything else separates
 *             (rouge-score's default tokenizer without stemming). BLEU and ROUGE-L use them.
 *   BLEU-4    sentence BLEU over words, up to 4-grams, clipped counts, brevity penalty
 *             exp(1 - r/c) when c < r, with sacrebleu's sentence defaults: smooth_method 'exp'
 *             (the n-th order with no match gets 1 / (2^k * total_n), k counting such orders:
 *             mteval-v13a's smoothing, Chen & Cherry 2014 method 3) and effective order (orders
 *             with no hypothesis n-gram, c < n, are left out of the geometric mean). An empty
 *             hypothesis scores 0. That is sacrebleu.sentence_bleu(h, [r], tokenize='none',
 *             smooth_method='exp', use_effective_order=True) on the words joined by spaces.
 *   ROUGE-L   F1 of the longest common subsequence of words: P = lcs/|h|, R = lcs/|r|,
 *             F = 2PR/(P+R); 0 when either side has no words.
 *   chrF      sacrebleu's CHRF() defaults: character n-grams for n = 1..6 over Unicode code
 *             points with whitespace removed, case-sensitive, beta 2; precision and recall are
 *             averaged over the orders where both sides have n-grams, then
 *             F = (1+b^2) P R / (b^2 P + R).
 *   sets      tags and links are sets (duplicates in one answer count once), compared by exact
 *             string. Micro: pooled true positives over pooled predictions (precision) and
 *             pooled references (recall). Macro: per item (each tag or URL seen in a prediction
 *             or a reference), P, R and F1, with 0 for 0/0, averaged over the items (sklearn's
 *             average='macro', zero_division=0). F1 = 2PR/(P+R), 0 when P+R is 0.
 *   validity  links only: predicted URLs found in the links index over predicted URLs
 *             (1 when nothing was predicted).
 *
 * The accumulator (sm_eval) pools these over a test set, overall and per language, and also
 * counts how often a prediction passes the task check (tasks.h).
 */
#ifndef SM_METRICS_H
#define SM_METRICS_H

#include "snipmeta.h"
#include "tasks.h"

#include <jansson.h>

/* The words of text (see above): writes a new array of n new strings to *words (free with
 * sm_words_free). Returns SM_OK or SM_ENOMEM. */
int sm_words(const char *text, char ***words, int *n);
void sm_words_free(char **words, int n);

/* Sentence scores of hypothesis hyp against reference ref, written to *score. Return SM_OK or
 * SM_ENOMEM. */
int sm_bleu4(const char *hyp, const char *ref, double *score);
int sm_rouge_l(const char *hyp, const char *ref, double *score);
int sm_chrf(const char *hyp, const char *ref, double *score);

typedef struct {
    double precision, recall, f1;
} sm_prf;

/* Pooled set counts (micro) and per-item counts (macro) over many examples. Zero-initialise. */
typedef struct {
    long tp, n_pred, n_gold;        /* micro, over all examples */
    long n_valid;                   /* predictions found in the index (sm_set_scores_add's index) */
    struct sm_item_counts *items;   /* sorted by name */
    int n_items, cap_items;
} sm_set_scores;

/* Adds one example: the predicted items and the reference items (duplicates within one list
 * count once). index: a sorted array of n_index strings (the links index) against which each
 * predicted item's validity is counted; NULL counts every prediction as valid. Returns SM_OK or
 * SM_ENOMEM. */
int sm_set_scores_add(sm_set_scores *s, const char *const *pred, int n_pred, const char *const *gold, int n_gold,
                      const char *const *index, int n_index);
sm_prf sm_set_scores_micro(const sm_set_scores *s);
sm_prf sm_set_scores_macro(const sm_set_scores *s);
void sm_set_scores_free(sm_set_scores *s); /* frees what s holds; NULL-safe */

/* Splits a completion of the tags task ("a, b, c") or the links task (one URL per line) into a
 * new array of new strings (free with sm_words_free), items trimmed, empty ones dropped. */
int sm_completion_items(sm_task t, const char *completion, char ***items, int *n);

/* The evaluation of one task over a test set. */
typedef struct sm_eval sm_eval;

/* A new accumulator for task t. links_index: the links index (any order; copied), or NULL. Returns
 * NULL when out of memory; the caller frees it with sm_eval_free. */
sm_eval *sm_eval_new(sm_task t, const char *const *links_index, int n_index);
void sm_eval_free(sm_eval *e); /* NULL-safe */

/* Scores one prediction (a completion in the student format, tasks.h) against the reference
 * completion of a snippet in language lang. Returns SM_OK or SM_ENOMEM. */
int sm_eval_add(sm_eval *e, const char *lang, const char *pred, const char *gold);

/* The results as JSON: {"task", "n", "check_pass", the task's metrics, "by_lang": {lang: {...}}}
 * where the metrics are bleu4, rouge_l, chrf (title, description); precision, recall, f1,
 * macro_precision, macro_recall, macro_f1, f1_without_lang (tags: the first tag, the language,
 * left out of both sides); validity, precision, recall, f1, n_pred, n_gold, empty_agreement (links:
 * the share of snippets where both sides are empty). Means are over snippets. Returns a new
 * reference, or NULL when out of memory. */
json_t *sm_eval_json(const sm_eval *e);

#endif
