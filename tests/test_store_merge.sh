#!/usr/bin/env bash
# test_store_merge.sh: `snipmeta store merge`: which label wins a conflict, and how it is reported.
#   - ok over rejected, whichever store is named first (rule "status");
#   - two different ok answers: the earlier created_at (rule "time"), then the store named first
#     (rule "order"); two different rejections the same way;
#   - the same answer twice is a duplicate, not a conflict; a snippet recorded differently is counted;
#   - the conflicts as JSONL (--conflicts) and on stderr; the kept rows whole;
#   - atomic output: an existing output is refused and untouched; a bad input (not a store,
#     missing) fails with no output and no temporary file left.
# The rows edited by hand need the sqlite3 shell; without it those parts are skipped.
# Usage: test_store_merge.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1; shared=${3:-}
source "$2/tests/teacher/fixture.sh"
have_sqlite=0; command -v sqlite3 > /dev/null && have_sqlite=1
n=30
make_input $n
label() { # label STORE [args...]
  local store=$1; shift
  "$bin" label "$work/in.jsonl" --teacher "http://127.0.0.1:$port" --model fake --store "$store" \
    --backoff 0.01 --retries 0 --concurrency 8 --json -q "$@" > /dev/null || fail "label $store: exited $?"
}
merge() { "$bin" store merge "$@" --json 2>"$work/err"; }

start_teacher;              label "$work/ok.db" -o "$work/ok.jsonl"; stop_teacher  # every job ok
start_teacher --p-bad 1;    label "$work/bad.db"; stop_teacher                    # rejected: fails the checks
start_teacher --p-500 1;    label "$work/e500.db"; stop_teacher                   # rejected: HTTP 500

# 1. ok over rejected, in either order.
for order in "ok bad" "bad ok"; do
  set -- $order
  out=$(merge "$work/$1.db" "$work/$2.db" -o "$work/m-$1-$2.db" --conflicts "$work/c.jsonl") || fail "merge $order: $(cat "$work/err")"
  echo "merge $order: $out"
  [ "$(echo "$out" | num conflicts)" = $n ] || fail "merge $order: $(echo "$out" | num conflicts) conflicts, expected $n"
  [ "$(echo "$out" | num labels_written)" = $n ] || fail "merge $order: $(echo "$out" | num labels_written) labels written"
  [ "$(wc -l < "$work/c.jsonl")" = $n ] || fail "merge $order: $(wc -l < "$work/c.jsonl") conflict lines"
  [ "$(grep -c "\"kept\":{\"store\":\"$work/ok.db\",\"status\":\"ok\"" "$work/c.jsonl")" = $n ] ||
    fail "merge $order: not every conflict kept the ok label: $(head -1 "$work/c.jsonl")"
  [ "$(grep -c '"rule":"status"' "$work/c.jsonl")" = $n ] || fail "merge $order: rule is not status"
  grep -q '"dropped":{"store":"[^"]*bad.db","status":"rejected","answer":"[a-z-]*:' "$work/c.jsonl" ||
    fail "merge $order: the dropped side lacks its reason: $(head -1 "$work/c.jsonl")"
  grep -q "conflict fake .* kept $work/ok.db (ok), dropped $work/bad.db (rejected), by status" "$work/err" ||
    fail "merge $order: no conflict line on stderr: $(head -3 "$work/err")"
  grep -q "and $((n - 10)) more conflicts" "$work/err" || fail "merge $order: no count of the conflicts not shown"
done
# the merged store's labels are the ok store's, label for label
start_teacher
label "$work/m-bad-ok.db" -o "$work/m.jsonl"
stop_teacher
cmp -s <(sort "$work/ok.jsonl") <(sort "$work/m.jsonl") || fail "ok over rejected: the merged labels differ from the ok store's"

# 2. The same answers twice: duplicates, no conflict.
cp "$work/ok.db" "$work/ok2.db"
out=$(merge "$work/ok.db" "$work/ok2.db" -o "$work/m-dup.db") || fail "duplicates: $(cat "$work/err")"
[ "$(echo "$out" | num duplicates)" = $n ] && [ "$(echo "$out" | num conflicts)" = 0 ] || fail "duplicates: $out"

# 3. Two rejections with different reasons: a conflict, decided by time (the earlier answer).
out=$(merge "$work/e500.db" "$work/bad.db" -o "$work/m-rej.db" --conflicts "$work/c.jsonl") || fail "rejections: $(cat "$work/err")"
[ "$(echo "$out" | num conflicts)" = $n ] || fail "rejections: $out"
[ "$(grep -c '"kept":{"store":"[^"]*bad.db"' "$work/c.jsonl")" = $n ] || fail "rejections: the earlier (bad.db) did not win"
[ "$(grep -c '"rule":"time"' "$work/c.jsonl")" = $n ] || fail "rejections: not decided by time"

if [ $have_sqlite = 1 ]; then
  # 4. Two different ok answers: earlier created_at wins; the same time: the store named first.
  ids=$(sqlite3 "$work/ok.db" "SELECT snippet_id FROM labels ORDER BY snippet_id LIMIT 5" | sed "s/.*/'&'/" | paste -sd,)
  cp "$work/ok.db" "$work/early.db"; cp "$work/ok.db" "$work/late.db"; cp "$work/ok.db" "$work/same.db"
  edit="UPDATE labels SET fields = json_set(fields, '\$.title', 'Another title for this one')"
  sqlite3 "$work/early.db" "$edit, created_at = '2000-01-01T00:00:00.000Z' WHERE snippet_id IN ($ids)"
  sqlite3 "$work/late.db" "$edit, created_at = '2999-01-01T00:00:00.000Z' WHERE snippet_id IN ($ids)"
  sqlite3 "$work/same.db" "$edit WHERE snippet_id IN ($ids)"
  sqlite3 "$work/same.db" "UPDATE snippets SET path = 'moved/elsewhere.c' WHERE id IN ($ids)"
  for case in "early.db ok.db early time" "ok.db early.db early time" "ok.db late.db ok time" \
              "late.db ok.db ok time" "same.db ok.db same order" "ok.db same.db ok order"; do
    set -- $case
    rm -f "$work/m.db"
    out=$(merge "$work/$1" "$work/$2" -o "$work/m.db" --conflicts "$work/c.jsonl") || fail "ok vs ok $1 $2: $(cat "$work/err")"
    [ "$(echo "$out" | num conflicts)" = 5 ] && [ "$(echo "$out" | num duplicates)" = $((n - 5)) ] ||
      fail "ok vs ok $1 $2: $out"
    [ "$(grep -c "\"kept\":{\"store\":\"$work/$3.db\"" "$work/c.jsonl")" = 5 ] || fail "ok vs ok $1 $2: $3.db did not win: $(head -1 "$work/c.jsonl")"
    [ "$(grep -c "\"rule\":\"$4\"" "$work/c.jsonl")" = 5 ] || fail "ok vs ok $1 $2: not decided by $4"
    kept_title=$(sqlite3 "$work/m.db" "SELECT count(*) FROM labels WHERE fields LIKE '%Another title for this one%'")
    [ "$3" = ok ] && want=0 || want=5
    [ "$kept_title" = $want ] || fail "ok vs ok $1 $2: $kept_title edited rows in the output, expected $want"
    # rows are copied whole: the kept rows carry their own created_at
    [ "$3" = early ] && { [ "$(sqlite3 "$work/m.db" "SELECT count(*) FROM labels WHERE created_at LIKE '2000-%'")" = 5 ] ||
      fail "ok vs ok $1 $2: created_at not kept"; }
    if [ "$1" = same.db ] || [ "$2" = same.db ]; then
      [ "$(echo "$out" | num snippet_conflicts)" = 5 ] || fail "snippets recorded differently: $out"
      first_path=$(sqlite3 "$work/$1" "SELECT path FROM snippets WHERE id IN ($ids) LIMIT 1")
      [ "$(sqlite3 "$work/m.db" "SELECT path FROM snippets WHERE id IN ($ids) LIMIT 1")" = "$first_path" ] ||
        fail "snippets: the first store's columns not kept"
    fi
  done
  echo "ok vs ok: time and order rules hold"
else
  echo "note: no sqlite3 shell; the time and order rules between two ok answers are not tested"
fi

# 5. Atomic output: an existing output is refused and untouched.
before=$(cksum < "$work/m-dup.db")
merge "$work/ok.db" -o "$work/m-dup.db" > /dev/null
rc=$?
[ $rc = 2 ] && grep -q "exists already" "$work/err" || fail "existing output: exit $rc, $(cat "$work/err")"
[ "$(cksum < "$work/m-dup.db")" = "$before" ] || fail "existing output: changed"
# a bad input after a good one: nothing is written, no temporary left
echo "not a database, just text that goes on long enough to fill a header page ........" > "$work/text.db"
for bad in text.db missing.db; do
  mkdir -p "$work/out"
  merge "$work/ok.db" "$work/$bad" -o "$work/out/never.db" > /dev/null
  rc=$?
  echo "bad input $bad: exit $rc: $(cat "$work/err")"
  [ "$bad" = text.db ] && want=2 || want=1
  [ $rc = $want ] && grep -q "$bad" "$work/err" || fail "bad input $bad: exit $rc, $(cat "$work/err")"
  [ -z "$(ls -A "$work/out")" ] || fail "bad input $bad: left $(ls "$work/out")"
done
# usage
"$bin" store merge "$work/ok.db" 2>/dev/null; [ $? = 2 ] || fail "no -o: not a usage error"
"$bin" store merge -o "$work/x.db" 2>/dev/null; [ $? = 2 ] || fail "no inputs: not a usage error"
"$bin" store frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown subcommand: not a usage error"

[ $fails = 0 ] || { echo "test_store_merge: $fails failures"; exit 1; }
echo "test_store_merge: ok"
