#!/usr/bin/env bash
# test_label_concurrency.sh: with a teacher that takes 200 ms per answer, 16 requests in flight
# give at least 12x the throughput of one at a time (runs bench/bench_label.sh).
# Usage: test_label_concurrency.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
build=$(dirname "$1"); src=$2
[ -x "$build/fake_teacher" ] || { echo "skip: fake_teacher not built"; exit 77; }
out=$(bash "$src/bench/bench_label.sh" "$build" 200 48 16) || { echo "FAIL: the bench failed"; exit 1; }
echo "$out"
speedup=$(echo "$out" | grep label_speedup | grep -o '"speedup": [0-9.]*' | cut -d' ' -f2)
awk -v s="$speedup" 'BEGIN { exit !(s >= 12) }' || { echo "FAIL: speedup $speedup < 12"; exit 1; }
echo "test_label_concurrency: ok (speedup $speedup)"
