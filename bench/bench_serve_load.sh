#!/usr/bin/env bash
# bench_serve_load.sh: `snipmeta serve` under wrk: POST /v1/metadata with mixed tasks (all four;
# title; tags and links) from many connections; prints JSON lines: latency percentiles and request
# rate from wrk, errors (non-2xx, socket errors), and the server's resident memory sampled every
# 2 s (after a warm-up of a sixth of the run: min, max, growth).
#
#   bench/bench_serve_load.sh SNIPMETA [-d SECONDS] [-c CONNECTIONS] [--workers N] [-t THREADS]
#                             [--model BASE.gguf --adapters DIR | --smollm2]
#
# Defaults: 60 s, 32 connections, 2 workers of 1 thread, and the tiny random model of the tests
# (tests/web/fixture.sh), which measures the server rather than the model; --smollm2 writes a
# random SmolLM2-135M-shaped Q8_0 base with random rank-8 adapters instead. The vocabulary comes
# from $SNIPMETA_SHARED (default: ../shared beside the source tree).
set -euo pipefail
snipmeta=$1
shift
src=$(cd "$(dirname "$0")/.." && pwd)
duration=60 connections=32 workers=2 threads=1 model= adapters= smollm2=0
while [ $# -gt 0 ]; do
    case $1 in
    -d) duration=$2; shift 2 ;;
    -c) connections=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --adapters) adapters=$2; shift 2 ;;
    --smollm2) smollm2=1; shift ;;
    *) echo "bench_serve_load: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "bench_serve_load: wrk is not installed (scripts/setup.sh --with-test-tools)" >&2; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
source "$src/tests/web/fixture.sh"
vocab="${SNIPMETA_SHARED:-$src/../shared}/fixtures/tokenizers/ggml-vocab-starcoder.gguf"
make_fixture "$tmp" "$snipmeta" "$vocab"
if [ "$smollm2" = 1 ]; then
    "$snipmeta" init -q --vocab "$vocab" --shape smollm2-135m --tied --type q8_0 --seed 1 -o "$tmp/base.gguf"
    seed=40
    for t in title description tags links; do
        "$snipmeta" convert lora --init -q -m "$tmp/base.gguf" --rank 8 --alpha 16 --seed $((seed++)) --b-std 0.01 --task $t -o "$tmp/ad/$t.gguf"
    done
fi
if [ -n "$model" ]; then cp "$model" "$tmp/base.gguf"; rm -rf "$tmp/ad"; cp -r "$adapters" "$tmp/ad"; fi
start_server "$tmp" "$snipmeta" --workers "$workers" -t "$threads" --queue 4096
echo "bench_serve_load: server pid $pid on port $port; $duration s, $connections connections" >&2

jq -n --rawfile c "$tmp/snip.py" '{code: $c, lang: "python"}' >"$tmp/all.json"
jq -n --rawfile c "$tmp/snip.py" '{code: $c, lang: "python", tasks: ["title"]}' >"$tmp/title.json"
jq -n --rawfile c "$tmp/snip.py" '{code: $c, lang: "python", tasks: ["tags", "links"]}' >"$tmp/tl.json"
cat >"$tmp/mixed.lua" <<EOF
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s end
local bodies = { slurp("$tmp/all.json"), slurp("$tmp/title.json"), slurp("$tmp/tl.json") }
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/v1/metadata", nil, bodies[(i % 3) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"bench":"serve_load","requests":%d,"seconds":%.1f,"rps":%.1f,"p50_ms":%.1f,"p90_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
(while kill -0 $pid 2>/dev/null; do echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null)"; sleep 2; done) >"$tmp/rss.txt" &
sampler=$!
wrk -t 4 -c "$connections" -d "${duration}s" --timeout 60s -s "$tmp/mixed.lua" "http://127.0.0.1:$port" >"$tmp/wrk.txt"
kill $sampler 2>/dev/null || true
grep '^{' "$tmp/wrk.txt"
warm=$((duration / 6))
awk -v warm="$warm" 'NR == 1 { t0 = $1 } $2 != "" && $1 - t0 >= warm { if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2; if (first == "") first = $2; last = $2 }
    END { printf "{\"bench\":\"serve_rss\",\"after_warmup_s\":%d,\"min_kb\":%d,\"max_kb\":%d,\"first_kb\":%d,\"last_kb\":%d,\"growth_kb\":%d}\n", warm, min, max, first, last, last - first }' "$tmp/rss.txt"
curl -s "http://127.0.0.1:$port/health" >/dev/null || { echo '{"bench":"serve_load","error":"the server is down"}'; exit 1; }
