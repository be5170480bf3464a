#!/usr/bin/env bash
# bench_label.sh: labelling throughput against the local teacher (tests/teacher/fake_teacher)
# answering every request after a fixed latency, one request at a time against N at once.
# Prints one JSON line per run and one with the speedup.
# Usage: bench/bench_label.sh [BUILD_DIR=build] [LATENCY_MS=200] [SNIPPETS=48] [CONCURRENCY=16]
set -euo pipefail
build=${1:-build}; latency=${2:-200}; n=${3:-48}; conc=${4:-16}
bin=$build/snipmeta; teacher=$build/fake_teacher
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 1 "$n"); do printf '{"lang": "c", "code": "int bench_%d(void) { return %d; }"}\n' "$i" "$i"; done > "$work/in.jsonl"
"$teacher" --latency-ms "$latency" --port-file "$work/port" 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
run() { # run CONCURRENCY: prints the JSON line, sets rate
  rm -f "$work"/l.db*
  local out secs
  out=$("$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$(cat "$work/port")" --model bench \
        --store "$work/l.db" --concurrency "$1" --json -q)
  secs=$(echo "$out" | grep -o '"elapsed_s":[0-9.]*' | cut -d: -f2)
  rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')
  echo "{\"bench\": \"label\", \"teacher_latency_ms\": $latency, \"snippets\": $n, \"concurrency\": $1, \"seconds\": $secs, \"snippets_per_s\": $rate}"
}
run 1; r1=$rate
run "$conc"; rn=$rate
echo "{\"bench\": \"label_speedup\", \"concurrency\": $conc, \"speedup\": $(awk -v a="$rn" -v b="$r1" 'BEGIN { printf "%.2f", a / b }')}"
