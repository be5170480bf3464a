#!/usr/bin/env bash
# run_model_bench.sh: snipmeta against llama.cpp on the same files: a random model of SmolLM2-135M's
# shape (tied embeddings, StarCoder vocabulary) in F32, Q8_0 and Q4_0, written by `snipmeta init`
# and `snipmeta quantize`. For each file it runs bench_model and, when it is found, llama.cpp's
# llama-bench with the same tests (pp128, pp512: prefill; tg128: decode from an empty cache), then
# prints the JSON lines of both and a markdown table with the ratio snipmeta / llama.cpp.
#
# usage: bench/run_model_bench.sh [BUILD_DIR]          (default build/)
# environment:
#   THREADS=2 REPS=3              threads and repetitions of each test, for both programs
#   SHARED=../shared              where fixtures/tokenizers/ggml-vocab-starcoder.gguf is
#   WORK=/tmp/snipmeta-model-bench   where the model files go (about 0.9 GB)
#   LLAMA_BENCH=PATH              llama-bench (default /tmp/llamacpp/build/bin/llama-bench if there);
#                                 build it from node-llama-cpp's bundled llama.cpp source with
#                                   git clone tests/interop/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llamacpp
#                                   cmake -S /tmp/llamacpp -B /tmp/llamacpp/build -DCMAKE_BUILD_TYPE=Release \
#                                     -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
#                                   cmake --build /tmp/llamacpp/build --target llama-bench -j
#   LLAMA_BENCH_ARGS=...          extra llama-bench flags (e.g. "-ctk f32 -ctv f32 -fa 0" for
#                                 snipmeta's f32 cache and plain attention; default: its defaults)
#   TYPES="f32 q8_0 q4_0" PROMPTS=128,512 NGEN=128   what to run
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
threads=${THREADS:-2}
reps=${REPS:-3}
shared=${SHARED:-$root/../shared}
work=${WORK:-/tmp/snipmeta-model-bench}
types=${TYPES:-f32 q8_0 q4_0}
prompts=${PROMPTS:-128,512}
n_gen=${NGEN:-128}
llama_bench=${LLAMA_BENCH:-/tmp/llamacpp/build/bin/llama-bench}
vocab=$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf

for f in "$build/snipmeta" "$build/bench_model" "$vocab"; do
    [ -e "$f" ] || { echo "run_model_bench: $f is missing" >&2; exit 2; }
done
[ -x "$llama_bench" ] || { echo "run_model_bench: no llama-bench at $llama_bench; snipmeta only" >&2; llama_bench=; }
mkdir -p "$work"
results=$work/results.jsonl
: >"$results"

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+dirty" || true)
echo "run_model_bench: snipmeta $commit$dirty, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), threads $threads, reps $reps" >&2

# The files: F32 from the seed, the others quantized from it.
if [ ! -f "$work/f32.gguf" ]; then
    "$build/snipmeta" init -q --vocab "$vocab" --shape smollm2-135m --tied --seed 1 -o "$work/f32.gguf"
fi
for type in $types; do
    [ "$type" = f32 ] || [ -f "$work/$type.gguf" ] || "$build/snipmeta" quantize "$work/f32.gguf" "$work/$type.gguf" "$type" >&2
done

# llama-bench's JSON line to ours: {"bench":"model","impl":"llama.cpp","type":...,"test":"pp512",...}
from_llama_bench() {
    local type=$1 line n_prompt n_gen avg sd commit
    while IFS= read -r line; do
        n_prompt=$(sed -n 's/.*"n_prompt": \([0-9]*\).*/\1/p' <<<"$line")
        n_gen=$(sed -n 's/.*"n_gen": \([0-9]*\).*/\1/p' <<<"$line")
        avg=$(sed -n 's/.*"avg_ts": \([0-9.e+-]*\).*/\1/p' <<<"$line")
        sd=$(sed -n 's/.*"stddev_ts": \([0-9.e+-]*\).*/\1/p' <<<"$line")
        commit=$(sed -n 's/.*"build_commit": "\([^"]*\)".*/\1/p' <<<"$line")
        [ -n "$avg" ] || continue
        local test="pp$n_prompt"; [ "$n_gen" -gt 0 ] && test="tg$n_gen"
        printf '{"bench":"model","impl":"llama.cpp","type":"%s","test":"%s","threads":%d,"tok_s":%.2f,"tok_s_sd":%.2f,"reps":%d,"build_commit":"%s"}\n' \
            "$type" "$test" "$threads" "$avg" "$sd" "$reps" "$commit"
    done
}

for type in $types; do
    model=$work/$type.gguf
    "$build/bench_model" -m "$model" -t "$threads" -p "$prompts" -n "$n_gen" -r "$reps" | tee -a "$results"
    if [ -n "$llama_bench" ]; then
        rss_file=$work/llama-bench.rss
        # shellcheck disable=SC2086
        /usr/bin/time -f "%M" -o "$rss_file" "$llama_bench" -m "$model" -t "$threads" -p "$prompts" -n "$n_gen" \
            -r "$reps" -o jsonl ${LLAMA_BENCH_ARGS:-} 2>/dev/null | from_llama_bench "$type" | tee -a "$results"
        file_mib=$(awk -v b="$(stat -c %s "$model")" 'BEGIN{printf "%.1f", b/1048576}')
        printf '{"bench":"model","impl":"llama.cpp","type":"%s","test":"mem","threads":%d,"peak_rss_mib":%.1f,"file_mib":%s}\n' \
            "$type" "$threads" "$(awk '{print $1/1024}' "$rss_file")" "$file_mib" | tee -a "$results"
    fi
done

# The table: one row per (type, test), tokens/s of both and their ratio; then memory.
echo
echo "snipmeta $commit$dirty against llama.cpp, $threads threads, mean of $reps runs (tokens/s)"
echo
echo "| type | test | snipmeta | llama.cpp | snipmeta / llama.cpp |"
echo "|------|------|---------:|----------:|---------------------:|"
awk '
    function val(name,   s) {
        if (!match($0, "\"" name "\":[^,}]*")) return ""
        s = substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
        gsub(/"/, "", s)
        return s
    }
    val("test") != "mem" {
        key = val("type") " " val("test")
        if (!(key in seen)) { seen[key] = 1; order[n++] = key }
        tok[key, val("impl")] = val("tok_s")
    }
    val("test") == "mem" {
        t = val("type")
        if (!(t in file)) types[n_types++] = t
        mem[t, val("impl")] = val("peak_rss_mib"); file[t] = val("file_mib")
        if (val("impl") == "snipmeta") kv[t] = val("kv_cache_mib")
    }
    END {
        for (i = 0; i < n; i++) {
            split(order[i], k, " "); s = tok[order[i], "snipmeta"]; l = tok[order[i], "llama.cpp"]
            printf "| %s | %s | %s | %s | %s |\n", k[1], k[2], s, (l == "" ? "-" : l), (l == "" || l == 0 ? "-" : sprintf("%.2f", s / l))
        }
        print ""
        print "| type | file MiB | snipmeta KV cache MiB | snipmeta peak RSS MiB | llama.cpp peak RSS MiB |"
        print "|------|---------:|----------------------:|----------------------:|-----------------------:|"
        for (i = 0; i < n_types; i++) {
            t = types[i]
            printf "| %s | %s | %s | %s | %s |\n", t, file[t], kv[t], mem[t, "snipmeta"], ((t, "llama.cpp") in mem ? mem[t, "llama.cpp"] : "-")
        }
    }' "$results"
