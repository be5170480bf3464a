# fixture.sh: what the labelling tests share (sourced by tests/test_label.sh, test_shard.sh,
# test_store_merge.sh after they set bin and shared): a work folder cleaned up on exit, fail/num
# helpers, the input snippets, and starting and stopping the fake teacher (fake_teacher.c).
teacher_bin=$(dirname "$bin")/fake_teacher
[ -x "$teacher_bin" ] || { echo "skip: $teacher_bin not built"; exit 77; }
work=$(mktemp -d)
teacher_pid=
cleanup() { [ -n "$teacher_pid" ] && kill "$teacher_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
num() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; } # a number from a --json summary

# make_input N: $work/in.jsonl with N real snippets when ../shared/data is here (the teacher then
# answers with their labels, table=(--labels ...)), else N made-up ones (it makes a valid label up).
make_input() {
  if [ -f "$shared/data/labels.jsonl" ]; then
    head -n "$1" "$shared/data/labels.jsonl" > "$work/in.jsonl"
    table=(--labels "$shared/data/labels.jsonl")
  else
    for i in $(seq 1 "$1"); do printf '{"lang": "c", "code": "int f%d(void) { return %d; }"}\n' "$i" "$i"; done > "$work/in.jsonl"
    table=()
  fi
}

# start_teacher ARGS...: a fresh teacher on a free port; sets port and teacher_pid; its request
# log is $work/log (one line a request). A fresh one per run keeps each run's faults the same:
# they depend on (seed, id, task, times this key was asked).
start_teacher() {
  rm -f "$work/port" "$work/log"
  "$teacher_bin" "${table[@]}" --port-file "$work/port" --log "$work/log" "$@" 2>/dev/null &
  teacher_pid=$!
  for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  port=$(cat "$work/port"); touch "$work/log"
}
stop_teacher() { kill "$teacher_pid" 2>/dev/null; wait "$teacher_pid" 2>/dev/null; teacher_pid=; }
