#!/usr/bin/env bash
# test_dataset.sh: `snipmeta dataset` over ../shared/data/labels.jsonl: the four task datasets,
# split sizes near 80/10/10, the same bytes on a second run, no id in two splits, the stats
# report, tags.txt and links.txt; a malformed line is an error naming it.
# Usage: test_dataset.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1; shared=${3:-}
labels=$shared/data/labels.jsonl
[ -f "$labels" ] || { echo "skip: $labels absent"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
total=$(grep -c . "$labels")

"$bin" dataset "$labels" --task all -o "$work/a" 2> "$work/report" || fail "dataset exited $?"
cat "$work/report"
"$bin" dataset "$labels" --task all -o "$work/b" -q || fail "second run exited $?"
diff -r "$work/a" "$work/b" > /dev/null || fail "two runs differ"

for task in title description tags links; do
  for s in train validation test; do
    [ -s "$work/a/$task/$s.jsonl" ] || fail "$task/$s.jsonl missing or empty"
  done
  tr=$(wc -l < "$work/a/$task/train.jsonl"); va=$(wc -l < "$work/a/$task/validation.jsonl"); te=$(wc -l < "$work/a/$task/test.jsonl")
  echo "$task: train $tr, validation $va, test $te"
  [ $((tr + va + te)) = "$total" ] || fail "$task: $((tr + va + te)) examples, $total labels"
  [ $((tr * 100 / total)) -ge 75 ] && [ $((tr * 100 / total)) -le 85 ] || fail "$task: train is $((tr * 100 / total))%"
  [ $((va * 100 / total)) -ge 7 ] && [ $((te * 100 / total)) -ge 7 ] || fail "$task: validation $va or test $te too small"
  both=$(cat "$work/a/$task/"*.jsonl | grep -o '^{"id":"[0-9a-f]*"' | sort | uniq -d | wc -l)
  [ "$both" = 0 ] || fail "$task: $both ids in two splits"
done
# the same snippet is in the same split for every task
for s in train validation test; do
  for task in description tags links; do
    cmp -s <(grep -o '^{"id":"[0-9a-f]*"' "$work/a/title/$s.jsonl") <(grep -o '^{"id":"[0-9a-f]*"' "$work/a/$task/$s.jsonl") ||
      fail "$s: title and $task hold different ids"
  done
done
head -1 "$work/a/title/train.jsonl" | grep -q '"prompt":"Language: [a-z]*\\nCode:\\n.*\\n### Title:\\n","completion":"' || fail "title prompt format"
head -1 "$work/a/tags/train.jsonl" | grep -q '### Tags:\\n","completion":"[a-z]*, ' || fail "tags completion format"
grep -qx python "$work/a/tags.txt" && grep -qx go "$work/a/tags.txt" || fail "tags.txt lacks languages"
grep -q '^https://docs.python.org/' "$work/a/links.txt" || fail "links.txt lacks python docs"
[ "$(sort -u "$work/a/tags.txt" | wc -l)" = "$(wc -l < "$work/a/tags.txt")" ] || fail "tags.txt has duplicates"
grep -q '"languages"' "$work/a/stats.json" && grep -q '"rejects"' "$work/a/stats.json" || fail "stats.json incomplete"
grep -q "per language" "$work/report" || fail "no report on stderr"

# one task only, and a cut budget
"$bin" dataset "$labels" --task tags -o "$work/c" --max-code-bytes 300 -q || fail "tags only exited $?"
[ -d "$work/c/tags" ] && [ ! -d "$work/c/title" ] || fail "--task tags wrote other tasks"
grep -q 'more lines cut \.\.\.\]\\n### Tags:' "$work/c/tags/train.jsonl" || fail "no cut marker with --max-code-bytes 300"

# a malformed line
{ head -n 4 "$labels"; echo '{"id": "x", "code": '; } > "$work/bad.jsonl"
"$bin" dataset "$work/bad.jsonl" --task all -o "$work/d" 2> "$work/err"
rc=$?
[ $rc = 2 ] && grep -q "bad.jsonl:5:" "$work/err" || fail "malformed: exit $rc, $(cat "$work/err")"

[ $fails = 0 ] || { echo "test_dataset: $fails failures"; exit 1; }
echo "test_dataset: ok"
