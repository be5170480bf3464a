#!/usr/bin/env bash
# test_interop_lora.sh: llama.cpp and snipmeta must decode the same tokens with the same LoRA
# adapters on the same base.
#
# Writes a small random base of SmolLM2's kind (StarCoder vocabulary, GQA; untied, so that the
# "decode" init scheme gives heavy-tailed logits and few near-ties; `snipmeta init`) in F32 and Q8_0, and adapters with non-zero random B (`snipmeta convert lora --init
# --b-std`), one of them rsLoRA (whose scale llama.cpp learns through adapter.lora.alpha), one
# passed through PEFT and back (`convert lora --peft`, `convert peft`). For each case it greedy-
# decodes a code prompt with llama.cpp (tests/interop/greedy.mjs: node-llama-cpp's
# createContext({lora: {adapters: [{filePath, scale}]}})) and with `snipmeta generate --lora
# A.gguf:SCALE --temp 0 --ids`, and requires the same ids, and that the adapters change them.
#
# usage: test_interop_lora.sh SNIPMETA SOURCE_DIR SHARED_DIR    (exit 77: skipped)
set -euo pipefail

snipmeta=$1 src=$2 shared=$3
interop=$src/tests/interop
vocab=$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf
n_gen=24
threads=2

skip() { echo "test_interop_lora: SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed"
[ -d "$interop/node_modules/node-llama-cpp" ] || skip "node-llama-cpp is not installed (run scripts/setup-interop.sh)"
[ -f "$vocab" ] || skip "$vocab is missing"
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false NODE_LLAMA_CPP_LOG_LEVEL=error

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prompt=$'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n'
shape=(--n-embd 256 --n-layer 4 --n-head 4 --n-head-kv 2 --n-ff 512 --ctx 512 --seed 11)
"$snipmeta" init -q --vocab "$vocab" "${shape[@]}" --type f32 -o "$tmp/f32.gguf"
"$snipmeta" quantize "$tmp/f32.gguf" "$tmp/q8_0.gguf" q8_0 >/dev/null 2>&1

status=0
# check NAME MODEL ADAPTER[:SCALE]...
check() {
    local name=$1 model=$2
    shift 2
    local loras=() a
    for a in "$@"; do loras+=(--lora "$a"); done
    local start mid end
    start=$(date +%s.%N)
    node "$interop/greedy.mjs" "$model" "$prompt" "$n_gen" "$threads" "${loras[@]}" >"$tmp/ref.txt"
    mid=$(date +%s.%N)
    local ref_prompt=($(sed -n 1p "$tmp/ref.txt")) ref=($(cat "$tmp/ref.txt"))
    local n_pos=$((${#ref_prompt[@]} + n_gen))
    "$snipmeta" generate -m "$model" "${loras[@]}" -p "$prompt" -n "$n_pos" --temp 0 --ids -t "$threads" >"$tmp/out.txt"
    "$snipmeta" generate -m "$model" -p "$prompt" -n "$n_pos" --temp 0 --ids -t "$threads" >"$tmp/base.txt"
    end=$(date +%s.%N)
    local out=($(cat "$tmp/out.txt")) base=($(cat "$tmp/base.txt"))
    out=("${out[@]:0:n_pos}") base=("${base[@]:0:n_pos}")
    printf 'test_interop_lora: %s: llama.cpp %.1fs, snipmeta %.1fs; %d prompt + %d generated ids\n' "$name" \
        "$(awk "BEGIN{print $mid - $start}")" "$(awk "BEGIN{print $end - $mid}")" "${#ref_prompt[@]}" "$((${#ref[@]} - ${#ref_prompt[@]}))"
    if [ "${ref[*]}" != "${out[*]}" ]; then
        status=1
        echo "test_interop_lora: $name: FAIL: the ids differ"
        echo "  llama.cpp: ${ref[*]}"
        echo "  snipmeta:  ${out[*]}"
    elif [ "${base[*]}" == "${out[*]}" ]; then
        status=1
        echo "test_interop_lora: $name: FAIL: the adapters do not change the ids, so the test proves nothing"
    else
        echo "test_interop_lora: $name: identical ids (and different from the base's): ${out[*]}"
    fi
}

"$snipmeta" convert lora --init -q -m "$tmp/f32.gguf" --rank 8 --alpha 16 --targets all --seed 3 --b-std 0.5 -o "$tmp/all.gguf"
check "f32 base, rank 8 on q,k,v,o,gate,up,down" "$tmp/f32.gguf" "$tmp/all.gguf"

# PEFT and back must give the same adapter (q/k rows permuted out and in again)
"$snipmeta" convert lora -q "$tmp/all.gguf" --peft -m "$tmp/f32.gguf" -o "$tmp/peft"
"$snipmeta" convert peft -q "$tmp/peft" -m "$tmp/f32.gguf" -o "$tmp/all-again.gguf"
if cmp -s "$tmp/all.gguf" "$tmp/all-again.gguf"; then echo "test_interop_lora: GGUF -> PEFT -> GGUF is byte-identical"
else status=1; echo "test_interop_lora: FAIL: GGUF -> PEFT -> GGUF changed the file"; fi

"$snipmeta" convert lora --init -q -m "$tmp/q8_0.gguf" --rank 4 --alpha 8 --targets q,k,v,o --seed 5 --b-std 0.5 -o "$tmp/attn.gguf"
"$snipmeta" convert lora --init -q -m "$tmp/q8_0.gguf" --rank 16 --alpha 4 --rslora --targets v,down --seed 6 --b-std 0.5 -o "$tmp/rs.gguf"
check "q8_0 base, two adapters (rank 4 attn at 0.8, rank 16 rsLoRA v,down at -1.5)" "$tmp/q8_0.gguf" "$tmp/attn.gguf:0.8" "$tmp/rs.gguf:-1.5"

# a fingerprint mismatch is refused, naming both files
if "$snipmeta" generate -m "$tmp/f32.gguf" --lora "$tmp/attn.gguf" -p x -n 4 --temp 0 2>"$tmp/err.txt" >/dev/null; then
    status=1; echo "test_interop_lora: FAIL: an adapter of the Q8_0 base was accepted on the F32 base"
elif grep -q "attn.gguf" "$tmp/err.txt" && grep -q "f32.gguf" "$tmp/err.txt"; then
    echo "test_interop_lora: refused on another base: $(cat "$tmp/err.txt")"
else
    status=1; echo "test_interop_lora: FAIL: the refusal does not name both files: $(cat "$tmp/err.txt")"
fi
exit $status
