#!/usr/bin/env bash
# bench_collect.sh: times `snipmeta collect` on a real source tree and prints one JSON line:
#   {"bench": "collect", "tree": ..., "runs": N, "seconds_min": ..., "seconds_median": ..., "files_seen": ...,
#    "snippets": ..., "stats": {the --stats object of the last run}}
# The first run warms the page cache and is not counted.
# Usage: bench/bench_collect.sh [SNIPMETA_BINARY] [TREE] [RUNS]
#   defaults: build/snipmeta, /usr/lib/python3.11 (Debian's Python standard library), 5
set -eu
bin=${1:-build/snipmeta}
tree=${2:-/usr/lib/python3.11}
runs=${3:-5}
[ -x "$bin" ] || { echo "bench_collect: no binary at $bin" >&2; exit 1; }
[ -d "$tree" ] || { echo "bench_collect: no tree at $tree" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" collect "$tree" -o "$tmp/out.jsonl" -q
times=()
for _ in $(seq "$runs"); do
    "$bin" collect "$tree" -o "$tmp/out.jsonl" --stats "$tmp/stats.json" -q
    times+=("$(grep -o '"seconds": [0-9.]*' "$tmp/stats.json" | grep -o '[0-9.]*$')")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -g)
min=$(echo "$sorted" | head -1)
median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
num() { grep -o "\"$1\": [0-9]*" "$tmp/stats.json" | head -1 | grep -o '[0-9]*$'; }
printf '{"bench": "collect", "tree": "%s", "runs": %d, "seconds_min": %s, "seconds_median": %s, "files_seen": %s, "snippets": %s, "stats": %s}\n' \
    "$tree" "$runs" "$min" "$median" "$(num files_seen)" "$(num snippets)" "$(cat "$tmp/stats.json")"
