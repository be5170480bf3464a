#!/usr/bin/env bash
# test_interop_llama2c.sh: the GGUF that `snipmeta convert llama2c` writes from stories260K must
# load in llama.cpp (tests/interop/greedy.mjs, node-llama-cpp's prebuilt CPU library) and decode
# greedily the same prompt ids and the same generated ids as `snipmeta generate --temp 0 --ids`.
# This checks the converter's metadata, vocabulary and tensor layout (no q/k permutation) against
# llama.cpp itself.
# usage: test_interop_llama2c.sh SNIPMETA SOURCE_DIR SHARED_DIR    (exit 77: skipped)
set -euo pipefail

snipmeta=$1 src=$2 shared=$3
interop=$src/tests/interop
fx=$shared/fixtures/stories260K
n_gen=60

skip() { echo "test_interop_llama2c: SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed"
[ -d "$interop/node_modules/node-llama-cpp" ] || skip "node-llama-cpp is not installed"
[ -r "$fx/stories260K.bin" ] || skip "$fx/stories260K.bin is missing"
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false NODE_LLAMA_CPP_LOG_LEVEL=error

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sm_interop_l2c_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$snipmeta" convert llama2c "$fx/stories260K.bin" "$fx/tok512.bin" -o "$tmp/s.gguf" -q

status=0
for prompt in "Once upon a time" "The cat said: \"No!\" 42 times."; do
    node "$interop/greedy.mjs" "$tmp/s.gguf" "$prompt" "$n_gen" 2 > "$tmp/ref.txt"
    ref_prompt=$(sed -n 1p "$tmp/ref.txt")
    ref_gen=$(sed -n 2p "$tmp/ref.txt")
    n_prompt=$(echo "$ref_prompt" | wc -w)
    # -n counts positions, the prompt's included; each position predicts one token
    ours=$("$snipmeta" generate -m "$tmp/s.gguf" -p "$prompt" -n $((n_prompt + n_gen - 1)) --temp 0 --ids -t 2)
    want="$ref_prompt $ref_gen"
    if [ "$(echo $ours)" != "$(echo $want)" ]; then
        echo "FAIL: \"$prompt\"" >&2
        echo "  llama.cpp: $want" >&2
        echo "  snipmeta:  $ours" >&2
        status=1
    else
        echo "\"$prompt\": $n_prompt prompt ids and $n_gen generated ids equal to llama.cpp's"
    fi
done
exit $status
