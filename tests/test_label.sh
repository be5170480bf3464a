#!/usr/bin/env bash
# test_label.sh: `snipmeta label` against the local fault-injecting teacher (tests/teacher/).
#   - with 20% of requests failing in each way (429 + Retry-After, 500, slower than the timeout,
#     truncated body, invalid JSON, an answer that fails the checks), and all ways at once:
#     every snippet ends labelled or rejected with a reason, none labelled twice, and a rerun of
#     the finished job makes zero requests;
#   - SIGKILL in the middle, then a rerun: no stored label is asked again (requests counted);
#   - per-task mode, the token budget, the API key (sent, never stored or printed);
#   - a teacher URL that refuses connections fails fast and clearly; a malformed JSONL line is an
#     error naming its line.
# Usage: test_label.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1; shared=${3:-}
source "$2/tests/teacher/fixture.sh"
# The input: 60 snippets (real ones when ../shared/data is here).
n=60
make_input $n

requests() { wc -l < "$work/log" | tr -d ' '; }
label() { "$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$work/l.db" \
          --timeout 1 --backoff 0.05 --retries 5 --concurrency 8 --json -q "$@"; }

# 1. Faults, one way at a time at 20%, then all at once (10% each: 60% of requests fail).
for fault in 429 500 slow truncated invalid bad all; do
  rm -f "$work"/l.db*
  start_teacher --p-$fault $( [ $fault = all ] && echo 0.1 || echo 0.2 ) --slow-ms 1500 --seed 7
  out=$(label -o "$work/out.jsonl" 2>"$work/err") || fail "$fault: label exited $? ($(cat "$work/err"))"
  done_=$(echo "$out" | num done); ok=$(echo "$out" | num ok); rej=$(echo "$out" | num rejected)
  echo "fault $fault: $out"
  [ "$done_" = $n ] || fail "$fault: $done_ of $n jobs finished"
  [ $((ok + rej)) = $n ] || fail "$fault: ok $ok + rejected $rej != $n"
  [ "$(wc -l < "$work/out.jsonl")" = "$ok" ] || fail "$fault: export has $(wc -l < "$work/out.jsonl") lines, $ok ok"
  dup=$(grep -o '"id":"[0-9a-f]*"' "$work/out.jsonl" | sort | uniq -d | wc -l)
  [ "$dup" = 0 ] || fail "$fault: $dup ids exported twice"
  # none labelled twice: no snippet got a clean answer after one had been accepted
  twice=$(awk '$5 == "none" {c[$2]++} END {for (k in c) if (c[k] > 1) print k}' "$work/log" | wc -l)
  [ "$twice" = 0 ] || fail "$fault: $twice snippets answered cleanly twice"
  if [ "$fault" != all ] && [ "$rej" != 0 ]; then
    echo "$out" | grep -q '"rejects":{"' || fail "$fault: rejections without reasons"
  fi
  [ "$(grep -vc " none\$" "$work/log")" -gt 0 ] || fail "$fault: no fault injected"
  before=$(requests)
  out=$(label 2>&1) || fail "$fault: rerun exited $?"
  [ "$(requests)" = "$before" ] || fail "$fault: the rerun of a finished job made $(( $(requests) - before )) requests"
  [ "$(echo "$out" | num skipped)" = $n ] || fail "$fault: rerun skipped $(echo "$out" | num skipped) of $n"
  stop_teacher
done

# 2. SIGKILL in the middle, then a rerun: only the missing labels are asked for.
rm -f "$work"/l.db*
start_teacher --latency-ms 100
label_bg() { # the binary itself in the background (not a subshell), so that signals reach it
  "$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$work/l.db" --concurrency 4 --json -q "$@" &
  pid=$!
}
label_bg > /dev/null 2>&1
sleep 0.8
kill -9 $pid; wait $pid 2>/dev/null
first=$(requests)
out=$(label --concurrency 4) || fail "kill: rerun exited $?"
echo "after SIGKILL ($first requests before): $out"
stored=$(echo "$out" | num skipped); asked=$(echo "$out" | num requests)
[ "$stored" -gt 0 ] && [ "$stored" -lt $n ] || fail "kill: $stored labels stored before the kill (expected some, not all)"
[ "$asked" = $((n - stored)) ] || fail "kill: the rerun asked $asked times for $((n - stored)) missing labels"
[ "$first" -le $((stored + 4)) ] || fail "kill: $first requests before the kill for $stored stored labels (more than 4 lost in flight)"
[ "$(echo "$out" | num ok)" = $((n - stored)) ] || fail "kill: the rerun did not finish the job"
out=$(label) && [ "$(echo "$out" | num requests)" = 0 ] || fail "kill: a third run made requests"
stop_teacher

# 2b. SIGINT: in-flight requests finish and are stored, nothing new starts; a rerun completes.
rm -f "$work"/l.db*
start_teacher --latency-ms 100
label_bg > "$work/out" 2>&1
sleep 0.6
kill -INT $pid; wait $pid
rc=$?
first=$(requests)
out=$(label --concurrency 4) || fail "sigint: rerun exited $?"
stored=$(echo "$out" | num skipped)
echo "after SIGINT (exit $rc, $first requests before): $out"
[ $rc = 1 ] && grep -q interrupted "$work/out" || fail "sigint: exit $rc, $(cat "$work/out")"
[ "$stored" = "$first" ] || fail "sigint: $first requests before, $stored stored (in-flight answers lost)"
[ "$(echo "$out" | num requests)" = $((n - stored)) ] || fail "sigint: the rerun asked again for stored labels"
stop_teacher

# 2c. Retry-After in seconds and as an HTTP-date are both waited for (1 s, then 1-2 s).
rm -f "$work"/l.db*
start_teacher --p-429 1
head -n 1 "$work/in.jsonl" > "$work/one.jsonl"
out=$("$bin" label "$work/one.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$work/l.db" --retries 2 --backoff 0.01 --json -q)
secs=$(echo "$out" | num elapsed_s)
echo "three 429s: $secs s"
awk -v s="$secs" 'BEGIN { exit !(s >= 2.0) }' || fail "retry-after: the 429s were retried after $secs s in all"
echo "$out" | grep -q '"rejects":{"http-429":1}' || fail "retry-after: not rejected as http-429: $out"
stop_teacher

# 3. Per-task mode: four jobs per snippet, all fields exported.
rm -f "$work"/l.db*
start_teacher --p-all 0.03
out=$(label --mode per-task -o "$work/out.jsonl") || fail "per-task: exited $?"
[ "$(echo "$out" | num jobs)" = $((4 * n)) ] || fail "per-task: $(echo "$out" | num jobs) jobs"
[ "$(echo "$out" | num done)" = $((4 * n)) ] || fail "per-task: $(echo "$out" | num done) done"
head -1 "$work/out.jsonl" | grep -q '"title".*"description".*"tags".*"links"' || fail "per-task: export lacks fields"
stop_teacher

# 3a. Joint mode with some tasks keeps those fields; asking later for all fields asks again.
rm -f "$work"/l.db*
start_teacher
out=$(label --tasks title,tags -o "$work/some.jsonl") || fail "some tasks: exited $?"
grep -q '"description"' "$work/some.jsonl" && fail "some tasks: description exported"
grep -q '"title".*"tags"' "$work/some.jsonl" || fail "some tasks: title and tags not exported"
out=$(label --tasks title,tags) && [ "$(echo "$out" | num requests)" = 0 ] || fail "some tasks: the rerun asked again"
out=$(label) && [ "$(echo "$out" | num requests)" = $n ] || fail "all tasks after some: $(echo "$out" | num requests) requests"
stop_teacher
rm -f "$work"/l.db*
start_teacher --p-all 0.03
out=$(label --mode per-task) || fail "per-task: exited $?"
stop_teacher

# 3b. The store feeds `snipmeta dataset`: every snippet, in one split.
"$bin" dataset "$work/l.db" --task all -o "$work/ds" -q || fail "dataset from the store exited $?"
m=$(cat "$work/ds/title/"*.jsonl | wc -l)
[ "$m" = $n ] || fail "dataset from the store: $m title examples for $n snippets"

# 4. The token budget stops cleanly; a rerun finishes the job.
rm -f "$work"/l.db*
start_teacher
out=$(label --concurrency 1 --budget 5000) || fail "budget: exited $?"
echo "budget 5000: $out"
echo "$out" | grep -q '"budget_reached":true' || fail "budget: not reached"
d=$(echo "$out" | num done)
[ "$d" -gt 0 ] && [ "$d" -lt $n ] || fail "budget: $d jobs done"
out=$(label) && [ "$(echo "$out" | num done)" = $((n - d)) ] || fail "budget: the rerun did not finish"
stop_teacher

# 5. The API key: sent from the named variable, never printed or stored; a wrong one is a clear error.
rm -f "$work"/l.db*
start_teacher --api-key s3cr3t-k3y
SM_TEST_KEY=s3cr3t-k3y label --api-key-env SM_TEST_KEY > "$work/out" 2>&1 || fail "key: exited $?"
grep -q '"ok":60' "$work/out" || fail "key: not all labelled with the right key"
rm -f "$work"/l.db*
SM_TEST_KEY=wrong label --api-key-env SM_TEST_KEY > "$work/out" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "HTTP 401" "$work/out" || fail "key: a wrong key gave exit $rc: $(cat "$work/out")"
SM_TEST_KEY=s3cr3t-k3y label --api-key-env SM_TEST_KEY > "$work/out" 2>&1
if grep -q s3cr3t "$work/out" "$work"/l.db*; then fail "key: the key appears in the output or the store"; fi
stop_teacher

# 6. A teacher that refuses connections: a clear error, quickly.
start_teacher; stop_teacher # a port that was just free
t0=$(date +%s%N)
"$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$port/v1" --model fake --store "$work/r.db" --timeout 30 -q > /dev/null 2> "$work/err"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "refused: exit $rc in $ms ms: $(cat "$work/err")"
[ $rc = 1 ] || fail "refused: exit $rc"
grep -q "cannot reach the teacher" "$work/err" || fail "refused: unclear error"
[ $ms -lt 5000 ] || fail "refused: took $ms ms"

# 7. A malformed JSONL line is an error naming its line (and nothing is asked).
{ head -n 2 "$work/in.jsonl"; echo '{"lang": "c", "code": '; head -n 1 "$work/in.jsonl"; } > "$work/bad.jsonl"
"$bin" label "$work/bad.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$work/b.db" -q 2> "$work/err"
rc=$?
[ $rc = 2 ] || fail "malformed: exit $rc"
grep -q "bad.jsonl:3:" "$work/err" || fail "malformed: no line number: $(cat "$work/err")"
echo '{"code": "x"}' > "$work/nolang.jsonl"
"$bin" label "$work/nolang.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$work/b.db" -q 2> "$work/err"
[ $? = 2 ] && grep -q "nolang.jsonl:1:" "$work/err" || fail "no lang: $(cat "$work/err")"

[ $fails = 0 ] || { echo "test_label: $fails failures"; exit 1; }
echo "test_label: ok"
