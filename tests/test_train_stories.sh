#!/bin/bash
# test_train_stories.sh SNIPMETA SRC SHARED: issue 3's second showing. On stories260K, a rank-8
# LoRA adapter trained a few hundred steps on a small task (story openings whose completion is
# always one phrase: tests/train_phrase_data.sh) drives the task's validation loss far down,
# makes the model write the phrase after a held-out opening, and leaves the base as it was: its
# greedy output without the adapter is the same bytes before and after training.
set -u
bin=$1 src=$2 shared=$3
[ -f "$shared/fixtures/stories260K/stories260K.bin" ] || { echo "skip: no $shared/fixtures/stories260K"; exit 77; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # see test_resume.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$bin" convert llama2c "$shared/fixtures/stories260K/stories260K.bin" "$shared/fixtures/stories260K/tok512.bin" \
    -o "$tmp/base.gguf" 2>/dev/null >&2 || { echo "FAIL convert"; exit 1; }
bash "$src/tests/train_phrase_data.sh" "$tmp/data"
phrase=" The moon said hello to the frog."
prompt="Once upon a time, there was a brave bear named Zoe."   # Zoe is held out: validation only
other="Lily went to the park with her mom."                     # not the task's kind of prompt
sha_before=$(sha256sum < "$tmp/base.gguf")
"$bin" generate -m "$tmp/base.gguf" -p "$prompt" --temp 0 -n 60 -t 2 > "$tmp/before1.txt"
"$bin" generate -m "$tmp/base.gguf" -p "$other" --temp 0 -n 60 -t 2 > "$tmp/before2.txt"
grep -qF "$phrase" "$tmp/before1.txt" && bad "the base already writes the phrase"

start=$(date +%s.%N)
"$bin" train -m "$tmp/base.gguf" --task phrase --data "$tmp/data" -o "$tmp/phrase.gguf" --peft "$tmp/peft" \
    --rank 8 --steps 300 --batch 8 --seq 64 --lr 3e-3 --warmup 10 --eval-every 50 -t 2 -q --log "$tmp/run.jsonl" \
    || { echo "FAIL train"; exit 1; }
secs=$(echo "$(date +%s.%N) - $start" | bc)
summary=$(grep '"event":"summary"' "$tmp/run.jsonl")
first=$(grep -o '"first_val":[0-9.e+-]*' <<<"$summary" | cut -d: -f2)
last=$(grep -o '"last_val":[0-9.e+-]*' <<<"$summary" | cut -d: -f2)
tps=$(grep -o '"tokens_per_s":[0-9.e+-]*' <<<"$summary" | cut -d: -f2)
echo "stories260K phrase task: rank 8, 300 steps, batch 8 x 64: validation loss $first -> $last, ${secs}s, $tps tokens/s"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 3 && b < 0.5 && b < a / 8) }' \
    && ok "validation loss far down ($first -> $last)" || bad "validation loss $first -> $last"

"$bin" generate -m "$tmp/base.gguf" --lora "$tmp/phrase.gguf" -p "$prompt" --temp 0 -n 60 -t 2 > "$tmp/with.txt"
grep -qF "$prompt$phrase" "$tmp/with.txt" && ok "with the adapter: $(head -c 120 "$tmp/with.txt")" \
    || bad "with the adapter the phrase does not follow: $(cat "$tmp/with.txt")"
[ "$(sha256sum < "$tmp/base.gguf")" = "$sha_before" ] && ok "the base file is unchanged" || bad "the base file changed"
"$bin" generate -m "$tmp/base.gguf" -p "$prompt" --temp 0 -n 60 -t 2 > "$tmp/after1.txt"
"$bin" generate -m "$tmp/base.gguf" -p "$other" --temp 0 -n 60 -t 2 > "$tmp/after2.txt"
cmp -s "$tmp/before1.txt" "$tmp/after1.txt" && cmp -s "$tmp/before2.txt" "$tmp/after2.txt" \
    && ok "without the adapter: the same greedy output as before training" || bad "the base's greedy output changed"
[ -s "$tmp/peft/adapter_config.json" ] && [ -s "$tmp/peft/adapter_model.safetensors" ] && ok "PEFT copy written" || bad "no PEFT copy"
"$bin" info "$tmp/phrase.gguf" 2>&1 | grep -q 'snipmeta.task.*phrase' && ok "adapter names its task" || bad "adapter metadata"

[ $fail = 0 ] && echo "test_train_stories: all ok" || echo "test_train_stories: FAILED"
exit $fail
