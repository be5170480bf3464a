#!/usr/bin/env bash
# test_lora_cli.sh: the adapter commands of the CLI, without llama.cpp: `convert lora --init`,
# `generate --lora A.gguf[:S]` (an adapter changes the ids, scale 0 gives the base's, repeating
# --lora sums adapters), GGUF -> PEFT -> GGUF byte-identical, `convert lora --merge` decoding
# like the unmerged adapter, and the refusals with their exit codes (2: bad input file or usage):
# another base's adapter, a truncated adapter, a model given as an adapter.
#
# usage: test_lora_cli.sh SNIPMETA SOURCE_DIR SHARED_DIR    (exit 77: skipped)
set -uo pipefail

snipmeta=$1 shared=$3
vocab=$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf
[ -f "$vocab" ] || { echo "test_lora_cli: SKIP: $vocab is missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "test_lora_cli: FAIL: $*"; status=1; }
ok() { echo "test_lora_cli: ok: $*"; }

shape=(--n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 256 --ctx 128)
"$snipmeta" init -q --vocab "$vocab" "${shape[@]}" --seed 3 -o "$tmp/base.gguf" || exit 1
"$snipmeta" init -q --vocab "$vocab" "${shape[@]}" --seed 4 -o "$tmp/other.gguf" || exit 1
"$snipmeta" convert lora --init -q -m "$tmp/base.gguf" --rank 4 --targets all --seed 2 --b-std 0.5 -o "$tmp/a.gguf" || exit 1
"$snipmeta" convert lora --init -q -m "$tmp/base.gguf" --rank 8 --rslora --targets q,v --seed 3 --b-std 0.5 -o "$tmp/b.gguf" || exit 1
"$snipmeta" convert lora --init -q -m "$tmp/base.gguf" --rank 4 -o "$tmp/zero.gguf" || exit 1

gen() { "$snipmeta" generate -m "$@" -p 'def add(a, b):' -n 24 --temp 0 --ids -t 2; }
base=$(gen "$tmp/base.gguf") || fail "generate without an adapter"
with_a=$(gen "$tmp/base.gguf" --lora "$tmp/a.gguf") || fail "generate --lora"
a_zero=$(gen "$tmp/base.gguf" --lora "$tmp/a.gguf:0") || fail "generate --lora A:0"
fresh=$(gen "$tmp/base.gguf" --lora "$tmp/zero.gguf") || fail "generate with a fresh adapter"
both=$(gen "$tmp/base.gguf" --lora "$tmp/a.gguf:0.5" --lora "$tmp/b.gguf:2") || fail "generate with two adapters"
[ "$with_a" != "$base" ] && ok "an adapter changes the ids" || fail "the adapter does not change the ids"
[ "$a_zero" == "$base" ] && ok "scale 0 gives the base's ids" || fail "scale 0 differs from the base"
[ "$fresh" == "$base" ] && ok "a fresh adapter (B = 0) gives the base's ids" || fail "a fresh adapter changes the ids"
[ "$both" != "$with_a" ] && [ "$both" != "$base" ] && ok "two adapters with scales" || fail "two adapters give no new ids"

"$snipmeta" convert lora -q "$tmp/a.gguf" --peft -m "$tmp/base.gguf" -o "$tmp/peft" || fail "convert lora --peft"
[ -f "$tmp/peft/adapter_config.json" ] && grep -q '"peft_type": "LORA"' "$tmp/peft/adapter_config.json" || fail "no adapter_config.json"
"$snipmeta" convert peft -q "$tmp/peft" -m "$tmp/base.gguf" -o "$tmp/a2.gguf" || fail "convert peft"
cmp -s "$tmp/a.gguf" "$tmp/a2.gguf" && ok "GGUF -> PEFT -> GGUF is byte-identical" || fail "GGUF -> PEFT -> GGUF differs"

"$snipmeta" convert lora -q "$tmp/a.gguf:0.5" "$tmp/b.gguf:2" --merge -m "$tmp/base.gguf" -o "$tmp/merged.gguf" || fail "convert lora --merge"
merged=$(gen "$tmp/merged.gguf") || fail "generate with the merged model"
[ "$merged" == "$both" ] && ok "the merged model decodes as the unmerged adapters" || fail "merged: $merged, unmerged: $both"

expect_refusal() { # CODE NEEDLE WHAT COMMAND...
    local code=$1 needle=$2 what=$3
    shift 3
    "$@" >/dev/null 2>"$tmp/err.txt"
    local rc=$?
    if [ $rc -eq "$code" ] && grep -q -- "$needle" "$tmp/err.txt"; then ok "$what refused (exit $rc): $(head -c 200 "$tmp/err.txt")"
    else fail "$what: exit $rc, wanted $code and '$needle' in: $(cat "$tmp/err.txt")"; fi
}
expect_refusal 2 "other.gguf" "another base's adapter" gen "$tmp/other.gguf" --lora "$tmp/a.gguf"
head -c 3000 "$tmp/a.gguf" >"$tmp/cut.gguf"
expect_refusal 2 "cut.gguf" "a truncated adapter" gen "$tmp/base.gguf" --lora "$tmp/cut.gguf"
"$snipmeta" convert peft -q "$tmp/peft" -o "$tmp/a3.gguf" || fail "convert peft without -m"
cmp -s "$tmp/a.gguf" "$tmp/a3.gguf" && ok "our PEFT directory converts back without the base" || fail "convert peft without -m differs"
expect_refusal 2 "not an adapter" "a model file as an adapter" gen "$tmp/base.gguf" --lora "$tmp/other.gguf"
exit $status
