#!/usr/bin/env bash
# test_shard.sh: `snipmeta label --shard K/N` and `snipmeta store merge` (tests/teacher/ as the teacher).
#   - the shards of 1..4 machines partition the snippets: every snippet in exactly one shard;
#   - two shards labelled separately against the fault-injecting teacher, then merged, equal one
#     unsharded run label for label (the exported JSONL sorted, and every stored row's status,
#     reason and fields when the sqlite3 shell is here); a label run over the merged store asks
#     nothing; merging a shard again with the whole is duplicates only;
#   - bad --shard values are usage errors.
# Usage: test_shard.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1; shared=${3:-}
source "$2/tests/teacher/fixture.sh"
n=90
make_input $n

label() { # label STORE [args...]
  local store=$1; shift
  "$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$store" \
    --timeout 2 --backoff 0.05 --retries 4 --concurrency 8 --json -q "$@"
}

# 1. The shards partition the snippets, for 1 to 4 machines (a fault-free teacher).
start_teacher
for N in 1 2 3 4; do
  total=0; : > "$work/ids"
  for K in $(seq 1 $N); do
    rm -f "$work"/p.db*
    out=$(label "$work/p.db" --shard $K/$N -o "$work/p.jsonl") || fail "partition $K/$N: exited $?"
    s=$(echo "$out" | num snippets); o=$(echo "$out" | num other_shards)
    [ $((s + o)) = $n ] || fail "partition $K/$N: $s snippets + $o in other shards != $n"
    [ "$N" = 1 ] || [ "$s" -gt 0 ] || fail "partition $K/$N: an empty shard of $n snippets"
    total=$((total + s))
    grep -o '"id":"[0-9a-f]*"' "$work/p.jsonl" >> "$work/ids"
  done
  echo "$N shards: $total snippets"
  [ $total = $n ] || fail "partition into $N: $total snippets labelled in all, expected $n"
  [ "$(sort "$work/ids" | uniq -d | wc -l)" = 0 ] || fail "partition into $N: a snippet in two shards"
  [ "$(sort -u "$work/ids" | wc -l)" = $n ] || fail "partition into $N: $(sort -u "$work/ids" | wc -l) distinct ids of $n"
done
stop_teacher

# 2. Two shards labelled separately with faults, merged, equal one unsharded run (few retries,
#    so that some jobs end rejected).
faults=(--p-all 0.04 --slow-ms 3000 --seed 11) # slow: past the 2 s timeout, by far
start_teacher "${faults[@]}"
out=$(label "$work/u.db" --retries 1 -o "$work/u.jsonl") || fail "unsharded: exited $?"
echo "unsharded: $out"
stop_teacher
for K in 1 2; do
  start_teacher "${faults[@]}"
  out=$(label "$work/s$K.db" --retries 1 --shard $K/2) || fail "shard $K/2: exited $?"
  echo "shard $K/2: $out"
  stop_teacher
done
out=$("$bin" store merge "$work/s1.db" "$work/s2.db" -o "$work/m.db" --json 2>"$work/err") || fail "merge: exited $? ($(cat "$work/err"))"
echo "merge: $out"
[ "$(echo "$out" | num labels_written)" = $n ] || fail "merge: $(echo "$out" | num labels_written) labels, expected $n"
[ "$(echo "$out" | num conflicts)" = 0 ] || fail "merge: conflicts between disjoint shards"
[ "$(echo "$out" | num duplicates)" = 0 ] || fail "merge: duplicates between disjoint shards"
[ "$(echo "$out" | num snippets)" = $n ] || fail "merge: $(echo "$out" | num snippets) snippets, expected $n"
# the merged store is a finished job: a label run over it asks nothing (the teacher is gone) and exports
out=$(label "$work/m.db" -o "$work/m.jsonl") || fail "label over the merged store: exited $?"
[ "$(echo "$out" | num requests)" = 0 ] || fail "label over the merged store made $(echo "$out" | num requests) requests"
sort "$work/u.jsonl" > "$work/u.sorted"; sort "$work/m.jsonl" > "$work/m.sorted"
if cmp -s "$work/u.sorted" "$work/m.sorted"; then
  echo "merged shards = unsharded: $(wc -l < "$work/u.sorted") labelled snippets, same bytes"
else
  fail "merged shards differ from the unsharded run: $(diff "$work/u.sorted" "$work/m.sorted" | head -c 600)"
fi
if command -v sqlite3 > /dev/null; then
  rows() { sqlite3 "$1" "SELECT model, template, snippet_id, task, status, reason, fields FROM labels ORDER BY snippet_id, task"; }
  rows "$work/u.db" > "$work/u.rows"; rows "$work/m.db" > "$work/m.rows"
  rej=$(grep -c '|rejected|' "$work/u.rows")
  cmp -s "$work/u.rows" "$work/m.rows" && echo "stored rows equal: $(wc -l < "$work/u.rows") ($rej rejected)" ||
    fail "stored rows differ: $(diff "$work/u.rows" "$work/m.rows" | head -c 600)"
else
  echo "note: no sqlite3 shell; rejected rows compared by count only"
fi

# 3. A shard merged again with the whole: duplicates only, nothing lost.
out=$("$bin" store merge "$work/u.db" "$work/s1.db" -o "$work/m2.db" --json 2>/dev/null) || fail "merge again: exited $?"
s1=$(sqlite3 "$work/s1.db" "SELECT count(*) FROM labels" 2>/dev/null || echo "")
[ "$(echo "$out" | num conflicts)" = 0 ] && [ "$(echo "$out" | num labels_written)" = $n ] ||
  fail "merge of the whole and a shard: $out"
[ -z "$s1" ] || [ "$(echo "$out" | num duplicates)" = "$s1" ] || fail "merge of the whole and a shard: $s1 rows in the shard, $out"

# 4. Bad --shard values are usage errors.
for bad in 0/2 3/2 1/0 x/2 1/ /2 1/2x -1/2 1/1000001; do
  "$bin" label "$work/in.jsonl" --teacher http://127.0.0.1:1 --model fake --store "$work/x.db" --shard "$bad" -q 2>"$work/err"
  rc=$?
  [ $rc = 2 ] && grep -q "K/N" "$work/err" || fail "--shard $bad: exit $rc, $(cat "$work/err")"
done

[ $fails = 0 ] || { echo "test_shard: $fails failures"; exit 1; }
echo "test_shard: ok"
