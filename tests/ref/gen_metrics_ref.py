#!/usr/bin/python3
"""Writes tests/ref/metrics_ref.jsonl: expected BLEU-4, ROUGE-L F1 and chrF scores for 60 seeded
random (hypothesis, reference) pairs, and expected micro/macro set scores for 20 random tag
lists, for tests/test_metrics.c (which needs no Python).

The scores come from plain implementations of the published definitions written here
(src/metrics.h states them): sacrebleu's sentence BLEU (smooth_method='exp', effective order) on
rouge-score's tokens, rouge-score's ROUGE-L F1 without stemming, sacrebleu's chrF defaults
(n = 1..6, beta 2, whitespace removed). BLEU is cross-checked against NLTK's sentence_bleu
with SmoothingFunction().method3 (the same mteval smoothing) wherever the two definitions
coincide: at least 4 hypothesis words and at least one unigram match (NLTK returns 0 without a
unigram match, and does not use the effective order). NLTK is Debian's python3-nltk.

Run: /usr/bin/python3 tests/ref/gen_metrics_ref.py > tests/ref/metrics_ref.jsonl
"""
import json
import math
import random
import re
import sys
from collections import Counter

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

MAGIC, VERSION = "snipmeta-metrics-ref", 1


def words(text):
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def ngrams(seq, n):
    return Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))


def bleu4(hyp, ref):
    h, r = words(hyp), words(ref)
    if not h:
        return 0.0
    logs, smooth, order = 0.0, 1.0, 0
    for n in range(1, 5):
        total = max(0, len(h) - n + 1)
        if total == 0:
            break
        correct = sum((ngrams(h, n) & ngrams(r, n)).values())
        if correct == 0:
            smooth *= 2
            p = 1.0 / (smooth * total)
        else:
            p = correct / total
        logs += math.log(p)
        order = n
    bp = math.exp(1 - len(r) / len(h)) if len(h) < len(r) else 1.0
    return bp * math.exp(logs / order)


def rouge_l(hyp, ref):
    h, r = words(hyp), words(ref)
    if not h or not r:
        return 0.0
    table = [[0] * (len(r) + 1) for _ in range(len(h) + 1)]
    for i in range(1, len(h) + 1):
        for j in range(1, len(r) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if h[i - 1] == r[j - 1] else max(table[i - 1][j], table[i][j - 1])
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    return 2 * p * rec / (p + rec)


def chrf(hyp, ref, order=6, beta=2.0):
    h, r = "".join(hyp.split()), "".join(ref.split())
    sum_p = sum_r = 0.0
    orders = 0
    for n in range(1, order + 1):
        hc, rc = ngrams(list(h), n), ngrams(list(r), n)
        nh, nr = sum(hc.values()), sum(rc.values())
        if nh == 0 or nr == 0:
            continue
        m = sum((hc & rc).values())
        sum_p += m / nh
        sum_r += m / nr
        orders += 1
    if orders == 0:
        return 0.0
    p, rec = sum_p / orders, sum_r / orders
    b2 = beta * beta
    return (1 + b2) * p * rec / (b2 * p + rec) if p + rec > 0 else 0.0


def set_scores(examples):
    tp = n_pred = n_gold = 0
    per = {}
    for pred, gold in examples:
        ps, gs = set(pred), set(gold)
        tp += len(ps & gs)
        n_pred += len(ps)
        n_gold += len(gs)
        for x in ps | gs:
            c = per.setdefault(x, [0, 0, 0])
            c[0] += x in ps and x in gs
            c[1] += x in ps and x not in gs
            c[2] += x in gs and x not in ps

    def prf(t, np_, ng):
        p = t / np_ if np_ else 0.0
        r = t / ng if ng else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    micro = prf(tp, n_pred, n_gold)
    macro = [0.0, 0.0, 0.0]
    for t, fp, fn in per.values():
        one = prf(t, t + fp, t + fn)
        for k in range(3):
            macro[k] += one[k] / len(per)
    return micro, tuple(macro)


VOCAB = ("parse read write the a of to and from file buffer string list map key value return returns "
         "request response http json config path error errors handler callback thread lock queue cache "
         "node tree index byte bytes encode decode format time date regex match pattern stream socket "
         "Returns Parses Builds URL ISO-8601 snake_case camelCase v2 3.14 e.g. (optional) naïve café "
         "über — “quoted”").split()
TAGS = "python c go rust java regex json http testing logging cli parsing strings io concurrency caching".split()


def sentence(rng, n):
    s = " ".join(rng.choice(VOCAB) for _ in range(n))
    return s[0].upper() + s[1:] + rng.choice(["", ".", "!", " ."])


def mutate(rng, s):
    w = s.split()
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(3)
        if op == 0 and w:
            w.pop(rng.randrange(len(w)))
        elif op == 1:
            w.insert(rng.randrange(len(w) + 1), rng.choice(VOCAB))
        elif w:
            w[rng.randrange(len(w))] = rng.choice(VOCAB)
    return rng.choice([" ", "  ", " \t"]).join(w)


def main():
    rng = random.Random(20261126)
    out = sys.stdout
    out.write(json.dumps({"magic": MAGIC, "version": VERSION, "pairs": 60, "sets": 20}) + "\n")
    smooth = SmoothingFunction().method3
    checked = 0
    for i in range(60):
        ref = sentence(rng, rng.randint(1, 40))
        kind = i % 6
        if kind == 0:
            hyp = ref
        elif kind == 1:
            hyp = sentence(rng, rng.randint(1, 5))     # short, effective order matters
        elif kind == 5:
            hyp = sentence(rng, rng.randint(1, 30))    # unrelated
        else:
            hyp = mutate(rng, ref)
        if i == 7:
            hyp = ""
        if i == 13:
            hyp = "!!! ... ---"                        # no words at all
        b = bleu4(hyp, ref)
        h, r = words(hyp), words(ref)
        if len(h) >= 4 and sum((Counter(h) & Counter(r)).values()) > 0:
            nb = sentence_bleu([r], h, smoothing_function=smooth)
            assert abs(nb - b) < 1e-12, (hyp, ref, nb, b)
            checked += 1
        out.write(json.dumps({"hyp": hyp, "ref": ref, "bleu4": b, "rouge_l": rouge_l(hyp, ref),
                              "chrf": chrf(hyp, ref)}, ensure_ascii=False) + "\n")
    for i in range(20):
        examples = []
        for _ in range(rng.randint(1, 6)):
            gold = rng.sample(TAGS, rng.randint(0, 5))
            pred = rng.sample(TAGS, rng.randint(0, 5))
            if pred and rng.random() < 0.3:
                pred.append(pred[0])                   # a duplicate counts once
            examples.append((pred, gold))
        micro, macro = set_scores(examples)
        out.write(json.dumps({"examples": [{"pred": p, "gold": g} for p, g in examples],
                              "micro": micro, "macro": macro}) + "\n")
    print(f"gen_metrics_ref: BLEU of {checked} pairs agrees with NLTK's sentence_bleu (method3)", file=sys.stderr)


if __name__ == "__main__":
    main()
