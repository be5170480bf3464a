#!/bin/bash
# test_golden_stories.sh: llama2.c's stories260K, converted with `snipmeta convert llama2c`, must
# generate exactly what llama2.c's own `run` prints greedily (expected-greedy-200.txt, newline
# included): with no prompt, and with the prompt "Once upon a time" (the words the model starts
# with anyway, so the prompt path, batched prefill included, must give the same bytes).
# Then the converter's error handling on a truncated checkpoint and a mismatched tokenizer.
# Args: $1 snipmeta binary, $2 source dir, $3 shared dir. Exit 77: fixtures missing.
set -u
bin=$1 shared=$3
fx=$shared/fixtures/stories260K
[ -r "$fx/stories260K.bin" ] && [ -r "$fx/tok512.bin" ] && [ -r "$fx/expected-greedy-200.txt" ] || { echo "skip: no fixtures"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sm_golden_XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin" convert llama2c "$fx/stories260K.bin" "$fx/tok512.bin" -o "$tmp/s.gguf" -q || fail "convert exited $?"

"$bin" generate -m "$tmp/s.gguf" -n 200 --temp 0 > "$tmp/out.txt" || fail "generate exited $?"
if ! cmp -s "$tmp/out.txt" "$fx/expected-greedy-200.txt"; then
    diff "$fx/expected-greedy-200.txt" "$tmp/out.txt" | head -20 >&2
    fail "greedy output differs from llama2.c's (expected-greedy-200.txt)"
fi
echo "no prompt: $(wc -c < "$tmp/out.txt") bytes, identical to llama2.c"

"$bin" generate -m "$tmp/s.gguf" -p "Once upon a time" -n 200 --temp 0 -t 1 > "$tmp/prompt.txt" || fail "generate -p exited $?"
if ! cmp -s "$tmp/prompt.txt" "$fx/expected-greedy-200.txt"; then
    diff "$fx/expected-greedy-200.txt" "$tmp/prompt.txt" | head -20 >&2
    fail "greedy output with the prompt 'Once upon a time' differs"
fi
echo "prompt 'Once upon a time': identical"

# --ids: BOS, the prompt's ids, then -n positions' predictions; the same tokens as the text run
ids=$("$bin" generate -m "$tmp/s.gguf" -p "Once upon a time" -n 8 --temp 0 --ids) || fail "--ids exited $?"
[ "$(echo "$ids" | wc -w)" -eq 9 ] || fail "--ids printed '$ids', expected 9 ids"
[ "${ids%% *}" = "1" ] || fail "--ids should start with BOS 1: '$ids'"

# a fixed seed repeats itself
a=$("$bin" generate -m "$tmp/s.gguf" -p "Lily" -n 40 --temp 1 --seed 11) || fail "sampling exited $?"
b=$("$bin" generate -m "$tmp/s.gguf" -p "Lily" -n 40 --temp 1 --seed 11) || fail "sampling exited $?"
[ "$a" = "$b" ] || fail "the same seed gave different text"

# bad inputs: exit 2 with a message naming the file
head -c 100000 "$fx/stories260K.bin" > "$tmp/trunc.bin"
"$bin" convert llama2c "$tmp/trunc.bin" "$fx/tok512.bin" -o "$tmp/x.gguf" 2> "$tmp/err.txt"
[ $? -eq 2 ] || fail "a truncated checkpoint should exit 2"
grep -q "trunc.bin" "$tmp/err.txt" && grep -q "truncated" "$tmp/err.txt" || fail "unhelpful message: $(cat "$tmp/err.txt")"
head -c 3000 "$fx/tok512.bin" > "$tmp/tok.bin"
"$bin" convert llama2c "$fx/stories260K.bin" "$tmp/tok.bin" -o "$tmp/x.gguf" 2> "$tmp/err.txt"
[ $? -eq 2 ] || fail "a truncated tokenizer should exit 2"
grep -q "tok.bin" "$tmp/err.txt" || fail "unhelpful message: $(cat "$tmp/err.txt")"
[ ! -e "$tmp/x.gguf" ] || fail "a failed conversion left $tmp/x.gguf"
"$bin" convert peft "$tmp/no-such-peft-dir" -o "$tmp/x.gguf" 2>"$tmp/err"; [ $? -ne 0 ] && grep -q "no-such-peft-dir" "$tmp/err" || fail "convert peft of a missing directory should fail naming it"
"$bin" generate -m "$tmp/s.gguf" --lora "$tmp/missing-adapter.gguf" 2>"$tmp/err"; [ $? -ne 0 ] && grep -q "missing-adapter" "$tmp/err" || fail "a missing --lora file should fail with a message naming it"
"$bin" generate -m "$tmp/missing.gguf" 2>/dev/null; rc=$?; [ $rc -ne 0 ] || fail "a missing model should fail"
echo "test_golden_stories: ok"
