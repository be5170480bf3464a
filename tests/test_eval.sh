#!/usr/bin/env bash
# test_eval.sh: `snipmeta eval` end to end.
#   - the baseline on ../shared/data's test split (built with `snipmeta dataset`): every task,
#     every metric in [0, 1], every baseline answer passes the task checks, every link is in the
#     index, the same numbers twice, per-language counts adding up to the total;
#   - the model path on a tiny random model (StarCoder's vocabulary): --lora for one task, the base
#     alone (zero adapter) for tags and links, whose predictions must come from the vocabulary and
#     the index (constrained decoding), and the same title as `snipmeta title` for the same snippet;
#   - the report: bar charts, data-size curves from results at two training sizes, loss curves
#     from a run log, the predictions table;
#   - bad usage (2) and a malformed data line (2, naming the file and line).
# Usage: test_eval.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
snipmeta=$1
shared=$3
labels="$shared/data/labels.jsonl"
vocab="$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf"
command -v jq >/dev/null || { echo "test_eval: skipped (jq is not installed)"; exit 77; }
[ -r "$labels" ] || { echo "test_eval: skipped (no $labels)"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "test_eval: FAIL: $*"; status=1; }

"$snipmeta" dataset "$labels" --task all -o "$tmp/data" >/dev/null 2>&1 || { echo "test_eval: FAIL: dataset"; exit 1; }

# ---- the baseline ----
"$snipmeta" eval --baseline --task all --data "$tmp/data" --json >"$tmp/b1.json" || fail "baseline eval exited $?"
"$snipmeta" eval --baseline --task all --data "$tmp/data" --json >"$tmp/b2.json" || fail "baseline eval (again)"
cmp -s "$tmp/b1.json" "$tmp/b2.json" || fail "the baseline's numbers differ between two runs"
n_test=$(wc -l <"$tmp/data/title/test.jsonl")
for t in title description tags links; do
    [ "$(jq ".tasks.$t.n" "$tmp/b1.json")" = "$n_test" ] || fail "$t: n is not $n_test"
    [ "$(jq "[.tasks.$t.by_lang[].n] | add" "$tmp/b1.json")" = "$n_test" ] || fail "$t: per-language counts do not add up"
    jq -e ".tasks.$t | [.. | numbers] | length > 3" "$tmp/b1.json" >/dev/null || fail "$t: no metrics"
    jq -e ".tasks.$t | [to_entries[] | select(.key != \"n\" and .key != \"n_pred\" and .key != \"n_gold\") | .value | numbers | select(. < 0 or . > 1)] | length == 0" \
        "$tmp/b1.json" >/dev/null || fail "$t: a metric outside [0, 1]"
    [ "$(jq ".tasks.$t.check_pass" "$tmp/b1.json")" = "1" ] || fail "$t: a baseline answer fails the task check"
done
for k in bleu4 rouge_l chrf; do
    jq -e ".tasks.title.$k > 0.05" "$tmp/b1.json" >/dev/null || fail "title $k is implausibly low"
done
jq -e '.tasks.tags.f1 > 0.3 and .tasks.tags.precision > .tasks.tags.f1_without_lang' "$tmp/b1.json" >/dev/null || fail "tags scores implausible"
[ "$(jq '.tasks.links.validity' "$tmp/b1.json")" = "1" ] || fail "a baseline link is not in the index"
"$snipmeta" eval --baseline --task title --data "$tmp/data/title/test.jsonl" --json >"$tmp/b3.json" || fail "one task file"
[ "$(jq '.tasks.title' "$tmp/b3.json")" = "$(jq '.tasks.title' "$tmp/b1.json")" ] || fail "one task file scores differently"

# ---- the model path ----
if [ -r "$vocab" ]; then
    "$snipmeta" init -q --vocab "$vocab" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 --ctx 2048 --tied --seed 3 -o "$tmp/base.gguf" || exit 1
    mkdir -p "$tmp/ad"
    "$snipmeta" convert lora --init -q -m "$tmp/base.gguf" --rank 4 --alpha 8 --seed 5 --b-std 0.05 --task title -o "$tmp/ad/title.gguf" || exit 1
    cp "$tmp/data/tags.txt" "$tmp/data/links.txt" "$tmp/ad/"
    "$snipmeta" eval -m "$tmp/base.gguf" --lora "$tmp/ad/title.gguf" --task title --data "$tmp/data/title/test.jsonl" --limit 4 -t 2 -q \
        -o "$tmp/m_title.json" --json >"$tmp/m1.json" || fail "model eval (--lora) exited $?"
    [ "$(jq '.tasks.title.n' "$tmp/m1.json")" = 4 ] || fail "--limit 4 did not give 4 snippets"
    jq -e '.tasks.title.rouge_l >= 0 and .tasks.title.chrf >= 0' "$tmp/m1.json" >/dev/null || fail "model title metrics missing"
    # the same answer as `snipmeta title` for the first snippet
    head -1 "$tmp/data/title/test.jsonl" | jq -j '.prompt | sub("^Language: [^\n]*\nCode:\n"; "") | sub("\n### Title:\n$"; "")' >"$tmp/snip.txt"
    lang=$(jq -r '.lang' <(head -1 "$tmp/data/title/test.jsonl"))
    want=$("$snipmeta" title "$tmp/snip.txt" -m "$tmp/base.gguf" --adapters "$tmp/ad" --lang "$lang" --max-code 1000000 -t 2)
    got=$(jq -r '.examples.title[0].pred' "$tmp/m_title.json")
    [ "$want" = "$got" ] || fail "eval's title '$got' differs from snipmeta title's '$want'"
    # the base alone (a zero adapter) for tags and links: constrained to the vocabulary and index
    "$snipmeta" eval -m "$tmp/base.gguf" --task tags,links --data "$tmp/data" --limit 3 -t 2 -q -o "$tmp/m_base.json" >/dev/null ||
        fail "model eval (base alone) exited $?"
    jq -r '.examples.tags[].pred | split(", ")[]' "$tmp/m_base.json" | while read -r tag; do
        grep -qxF -- "$tag" "$tmp/data/tags.txt" || jq -r '.examples.tags[].lang' "$tmp/m_base.json" | grep -qxF -- "$tag" ||
            echo "$tag" >>"$tmp/bad_tags"
    done
    [ ! -s "$tmp/bad_tags" ] || fail "tags outside the vocabulary: $(tr '\n' ' ' <"$tmp/bad_tags")"
    [ "$(jq '.tasks.links.validity' "$tmp/m_base.json")" = "1" ] || fail "a decoded link is not in the index"
    [ "$(jq -r '.system' "$tmp/m_base.json")" = base ] || fail "system is not 'base'"
else
    echo "test_eval: model path skipped (no $vocab)"
fi

# ---- the report ----
"$snipmeta" eval --baseline --task all --data "$tmp/data" --limit 60 --label small --train-size 100 -o "$tmp/r100.json" -q >/dev/null || fail "r100"
"$snipmeta" eval --baseline --task all --data "$tmp/data" --limit 120 --label small --train-size 300 -o "$tmp/r300.json" -q >/dev/null || fail "r300"
printf '%s\n' '{"event":"config","steps":3}' '{"event":"step","step":1,"loss":3.5}' '{"event":"step","step":2,"loss":2.9}' \
    '{"event":"eval","step":2,"val_loss":3.1}' '{"event":"step","step":3,"loss":2.4}' '{"event":"eval","step":3,"val_loss":2.8}' >"$tmp/run.log"
"$snipmeta" eval --baseline --task all --data "$tmp/data" -q --report "$tmp/rep" --with "$tmp/r100.json" --with "$tmp/r300.json" \
    --train-log "$tmp/run.log" >/dev/null || fail "report exited $?"
html="$tmp/rep/index.html"
[ -s "$html" ] || fail "no index.html"
[ "$(grep -c '<svg' "$html")" -ge 9 ] || fail "expected 4 bar charts, 4 data-size curves and a loss curve, got $(grep -c '<svg' "$html") plots"
grep -q 'Data-size curves' "$html" || fail "no data-size curves"
grep -q 'Loss curves' "$html" || fail "no loss curves"
grep -q 'run.log validation' "$html" || fail "no validation loss series"
grep -q 'First predictions' "$html" || fail "no predictions table"
[ "$(jq 'length' "$tmp/rep/results.json")" = 3 ] || fail "results.json does not hold the 3 runs"
if command -v xmllint >/dev/null; then
    sed -n '/<svg/,/<\/svg>/p' "$html" | awk '/<svg/{n++; f="'"$tmp"'/svg" n ".svg"} {print > f}'
    for f in "$tmp"/svg*.svg; do xmllint --noout "$f" 2>/dev/null || fail "$(basename "$f") is not well-formed XML"; done
fi

# ---- errors ----
"$snipmeta" eval --task title --data "$tmp/data" >/dev/null 2>&1; [ $? = 2 ] || fail "no -m or --baseline: want exit 2"
"$snipmeta" eval --baseline --data "$tmp/data" >/dev/null 2>&1; [ $? = 2 ] || fail "no --task: want exit 2"
"$snipmeta" eval --baseline -m x.gguf --task title --data "$tmp/data" >/dev/null 2>&1; [ $? = 2 ] || fail "both -m and --baseline: want exit 2"
"$snipmeta" eval -m x.gguf --lora a.gguf --task all --data "$tmp/data" >/dev/null 2>&1; [ $? = 2 ] || fail "--lora with all tasks: want exit 2"
"$snipmeta" eval --baseline --task all --data "$tmp/data/title/test.jsonl" >/dev/null 2>&1; [ $? = 2 ] || fail "all tasks on one file: want exit 2"
{ head -2 "$tmp/data/title/test.jsonl"; echo '{"prompt": "no marker", "completion": "x y"}'; } >"$tmp/bad.jsonl"
"$snipmeta" eval --baseline --task title --data "$tmp/bad.jsonl" 2>"$tmp/err" >/dev/null; rc=$?
[ $rc = 2 ] || fail "malformed line: want exit 2, got $rc"
grep -q 'bad.jsonl:3' "$tmp/err" || fail "the error does not name the file and line: $(cat "$tmp/err")"
printf '%s\n' '{"event":"step","step":1,"loss":3.5}' '{"event":"step",' >"$tmp/bad.log"
"$snipmeta" eval --baseline --task title --data "$tmp/data" --limit 5 -q --report "$tmp/rep2" --train-log "$tmp/bad.log" 2>"$tmp/err" >/dev/null; rc=$?
[ $rc = 2 ] || fail "truncated training log: want exit 2, got $rc"
grep -q 'bad.log:2' "$tmp/err" || fail "the log error does not name the file and line: $(cat "$tmp/err")"
"$snipmeta" eval --baseline --task title --data "$tmp/data" --limit 5 -q --report "$tmp/rep3" --with "$tmp/bad.log" 2>/dev/null >/dev/null
[ $? = 2 ] || fail "--with a file that is not eval results: want exit 2"

[ $status = 0 ] && echo "test_eval: ok"
exit $status
