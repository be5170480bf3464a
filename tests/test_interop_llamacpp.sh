#!/usr/bin/env bash
# test_interop_llamacpp.sh: snipmeta and llama.cpp must decode the same tokens from the same file.
#
# Writes a random model of SmolLM2-135M's shape with the StarCoder vocabulary (`snipmeta init`,
# F32) and its Q8_0 quantization (`snipmeta quantize`); for each, greedy-decodes a fixed code
# prompt with llama.cpp (tests/interop/greedy.mjs, node-llama-cpp's prebuilt CPU library) and with
# `snipmeta generate --temp 0 --ids`, and requires the same prompt ids and the same generated ids.
# On a mismatch it prints the first divergence and llama.cpp's top-1/top-2 logit gaps.
#
# usage: test_interop_llamacpp.sh SNIPMETA SOURCE_DIR SHARED_DIR    (exit 77: skipped)
set -euo pipefail

snipmeta=$1 src=$2 shared=$3
interop=$src/tests/interop
vocab=$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf
n_gen=32
threads=2
# Threads that spin while they wait for each other make a busy machine (a parallel ctest) ten
# times slower: snipmeta's OpenMP threads sleep instead, and llama.cpp (whose thread pool spins)
# runs one thread. The ids do not depend on either thread count.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
llama_threads=${SM_INTEROP_LLAMA_THREADS:-1}

skip() { echo "test_interop_llamacpp: SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed"
[ -d "$interop/node_modules/node-llama-cpp" ] || skip "node-llama-cpp is not installed (run scripts/setup-interop.sh)"
[ -f "$vocab" ] || skip "$vocab is missing"

# Use only the prebuilt binaries that are installed; never build or download anything.
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false NODE_LLAMA_CPP_LOG_LEVEL=error

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prompt=$'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n'

"$snipmeta" init -q --vocab "$vocab" --shape smollm2-135m --ctx 2048 --type f32 --seed 7 -t "$threads" -o "$tmp/f32.gguf"
"$snipmeta" quantize "$tmp/f32.gguf" "$tmp/q8_0.gguf" q8_0 >/dev/null 2>&1 ||
    "$snipmeta" quantize "$tmp/f32.gguf" "$tmp/q8_0.gguf" q8_0

status=0
for type in f32 q8_0; do
    model=$tmp/$type.gguf
    start=$(date +%s.%N)
    node "$interop/greedy.mjs" "$model" "$prompt" "$n_gen" "$llama_threads" >"$tmp/ref.txt"
    mid=$(date +%s.%N)
    ref_prompt=($(sed -n 1p "$tmp/ref.txt"))
    ref=($(cat "$tmp/ref.txt"))
    n_pos=$((${#ref_prompt[@]} + n_gen))
    "$snipmeta" generate -m "$model" -p "$prompt" -n "$n_pos" --ctx 256 --temp 0 --ids -t "$threads" >"$tmp/out.txt"
    end=$(date +%s.%N)
    out=($(cat "$tmp/out.txt"))
    out=("${out[@]:0:n_pos}") # compare the prompt and n_gen generated ids, however -n counts positions
    printf 'test_interop_llamacpp: %s: llama.cpp %.1fs, snipmeta %.1fs; %d prompt + %d generated ids\n' \
        "$type" "$(awk "BEGIN{print $mid - $start}")" "$(awk "BEGIN{print $end - $mid}")" "${#ref_prompt[@]}" \
        "$((${#ref[@]} - ${#ref_prompt[@]}))"

    if [ "${ref[*]}" == "${out[*]}" ]; then
        echo "test_interop_llamacpp: $type: identical ids: ${ref[*]}"
        continue
    fi
    status=1
    n=${#ref[@]}; [ ${#out[@]} -gt "$n" ] && n=${#out[@]}
    for ((i = 0; i < n; i++)); do
        [ "${ref[i]:-none}" == "${out[i]:-none}" ] && continue
        where="generated step $((i - ${#ref_prompt[@]}))"
        [ "$i" -lt "${#ref_prompt[@]}" ] && where="prompt position $i (tokenizer)"
        echo "test_interop_llamacpp: $type: FAIL: first divergence at id $i, $where:" \
             "llama.cpp ${ref[i]:-(none)}, snipmeta ${out[i]:-(none)}"
        break
    done
    echo "  llama.cpp: ${ref[*]}"
    echo "  snipmeta:  ${out[*]}"
    echo "  llama.cpp's logit gaps between its top two tokens (a gap near 0 is a near-tie):"
    node "$interop/greedy.mjs" "$model" "$prompt" "$n_gen" "$llama_threads" --gaps 2>&1 >/dev/null | sed 's/^/    /'
done
exit $status
