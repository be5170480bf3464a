#!/usr/bin/env bash
# test_experiments.sh: scripts/experiments.sh end to end in its --quick mode (3 training steps per
# run, 8 test snippets per task) on a tiny random model with StarCoder's vocabulary and the first
# 300 labels of ../shared/data:
#   - every run of parts a, c, d, e, f leaves a result and a run log; the tables hold numbers for
#     the baseline and the models, the commit and the seed;
#   - (c) really changes the adapter: rank 4 < rank 8 < rank 16 trainable parameters, and
#     attention-only < attention + MLP; activated adapters say so in their file, standard ones not;
#   - the HTML report is written; a second run trains nothing (every result is kept).
# Usage: test_experiments.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
snipmeta=$1
src=$2
shared=$3
labels="$shared/data/labels.jsonl"
vocab="$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf"
command -v jq >/dev/null || { echo "test_experiments: skipped (jq is not installed)"; exit 77; }
command -v python3 >/dev/null || { echo "test_experiments: skipped (python3 is not installed)"; exit 77; }
[ -r "$labels" ] && [ -r "$vocab" ] || { echo "test_experiments: skipped (no $labels or $vocab)"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "test_experiments: FAIL: $*"; status=1; }

head -n 300 "$labels" >"$tmp/labels.jsonl"
"$snipmeta" init --vocab "$vocab" --n-embd 64 --n-layer 2 --n-head 2 --n-ff 128 --init gpt2 --tied -q \
    -o "$tmp/base.gguf" || { echo "test_experiments: FAIL: init"; exit 1; }

run() { SNIPMETA="$snipmeta" "$src/scripts/experiments.sh" "$tmp/out" --base "$tmp/base.gguf" \
        --data "$tmp/labels.jsonl" --quick --parts a,c,d,e,f --jobs 2 --threads 1 2>"$tmp/err"; }
run || { cat "$tmp/err"; echo "test_experiments: FAIL: experiments.sh exited non-zero"; exit 1; }

out="$tmp/out"
for name in baseline base lora-{title,description,tags,links} lora-std-{title,description,tags,links} \
    full-{title,description,tags,links} lora-title-r4 lora-title-r16 lora-title-attn; do
    [ -s "$out/results/$name.json" ] || fail "no result for $name"
done
for name in lora-title lora-std-tags full-links lora-title-r16; do
    jq -e 'select(.event == "summary") | .steps == 3' "$out/logs/$name.jsonl" >/dev/null || fail "$name: no 3-step summary in its log"
done
params() { jq -r 'select(.event == "config") | .n_params' "$out/logs/$1.jsonl"; }
r4=$(params lora-title-r4) r8=$(params lora-title) r16=$(params lora-title-r16) attn=$(params lora-title-attn)
[ "$r4" -lt "$r8" ] && [ "$r8" -lt "$r16" ] || fail "ranks 4, 8, 16 do not grow the adapter ($r4, $r8, $r16)"
[ "$attn" -lt "$r8" ] || fail "attention-only is not smaller than attention + MLP ($attn vs $r8)"
[ $((r16)) -eq $((2 * r8)) ] || fail "rank 16 is not twice rank 8 ($r16 vs $r8)"
"$snipmeta" info "$out/runs/lora-tags.gguf" | grep -q 'snipmeta.activated.*true' || fail "lora-tags is not activated"
"$snipmeta" info "$out/runs/lora-std-tags.gguf" | grep -q 'snipmeta.activated.*false' || fail "lora-std-tags is activated"

tables="$out/tables.md"
[ -s "$tables" ] || fail "no tables.md"
commit=$(git -C "$src" rev-parse HEAD 2>/dev/null | cut -c1-12)
[ -z "$commit" ] || grep -q "$commit" "$tables" || fail "the tables do not name the commit $commit"
grep -q 'seed 1' "$tables" || fail "the tables do not name the seed"
grep -q 'QUICK' "$tables" || fail "a quick run is not marked as one"
grep -Eq '^\| heuristic baseline \(e\) \| [0-9]' "$tables" || fail "no baseline numbers"
grep -Eq '^\| LoRA, activated \(shipped\) \| [0-9]' "$tables" || fail "no LoRA numbers"
grep -Eq '^\| full fine-tune \| [0-9]' "$tables" || fail "no full fine-tune numbers"
grep -Eq '^\| title \| full \| [0-9]+ \| [0-9]' "$tables" || fail "no cost row for the full fine-tune"
[ -s "$out/report/index.html" ] && grep -q '<svg' "$out/report/index.html" || fail "no report with plots"
# the baseline in the tables is the one `snipmeta eval --baseline` gives for the same data
want=$(jq -r '.tasks.title.rouge_l' "$out/results/baseline.json")
[ "$(printf '%.3f' "$want")" != "" ] && grep -q "| heuristic baseline (e) | $(printf '%.3f' "$want") |" "$tables" ||
    fail "the baseline's title ROUGE-L $want is not in the tables"

# resumable: a second run finds every result and trains nothing
run || fail "the second run exited non-zero"
grep -q 'done in' "$tmp/err" && fail "the second run trained again: $(grep 'done in' "$tmp/err" | head -n 2)"

[ $status -eq 0 ] && echo "test_experiments: all checks passed"
exit $status
