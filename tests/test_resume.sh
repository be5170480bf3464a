#!/bin/bash
# test_resume.sh SNIPMETA SRC SHARED: the checkpoint promise. A LoRA run on stories260K (with
# dropout, gradient accumulation and validation, so that every piece of state matters) is killed
# with SIGKILL after a checkpoint, resumed with --resume, and must end with the same adapter bytes
# as an uninterrupted run; the same after a SIGTERM stop. A checkpoint of other settings and a
# corrupt checkpoint are refused with a clear error.
set -u
bin=$1 shared=$3
# threads that sleep at barriers: on a loaded machine spinning threads make a tiny model's run
# ten times slower (the results are the same bits either way)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -f "$shared/fixtures/stories260K/stories260K.bin" ] || { echo "skip: no $shared/fixtures/stories260K"; exit 77; }
tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$bin" convert llama2c "$shared/fixtures/stories260K/stories260K.bin" "$shared/fixtures/stories260K/tok512.bin" \
    -o "$tmp/base.gguf" >/dev/null || { echo "FAIL convert"; exit 1; }
bash "$(dirname "$0")/train_phrase_data.sh" "$tmp/data" 6

args=(-m "$tmp/base.gguf" --task phrase --data "$tmp/data" --steps 40 --batch 4 --seq 48 --accum 2 --lr 3e-3
      --warmup 5 --dropout 0.1 --eval-every 10 --patience 50 --ckpt-every 5 --seed 7 -t 2 -q)

# the uninterrupted run
"$bin" train "${args[@]}" -o "$tmp/ref.gguf" --log "$tmp/ref.jsonl" || { echo "FAIL reference run"; exit 1; }

# killed after its checkpoint at step >= 20, then resumed
"$bin" train "${args[@]}" -o "$tmp/run.gguf" --log "$tmp/run.jsonl" &
pid=$!
for _ in $(seq 1 3000); do
    grep -q '"event":"checkpoint","step":\(2[0-9]\|[3-9][0-9]\)' "$tmp/run.jsonl" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
if kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null
    step=$(grep -o '"event":"checkpoint","step":[0-9]*' "$tmp/run.jsonl" | tail -1 | grep -o '[0-9]*$')
    ok "SIGKILL after the checkpoint at step $step"
else
    bad "the run ended before it could be killed"
fi
[ ! -e "$tmp/run.gguf" ] || bad "a killed run wrote its output"
[ -e "$tmp/run.gguf.ckpt" ] || bad "no checkpoint beside the output"

# a checkpoint of other settings, and a corrupt one, are refused
cp "$tmp/run.gguf.ckpt" "$tmp/other.ckpt"
out=$("$bin" train "${args[@]/3e-3/1e-3}" -o "$tmp/other.gguf" --ckpt "$tmp/other.ckpt" --resume 2>&1); rc=$?
[ $rc = 2 ] && grep -q 'another run.*lr' <<<"$out" && ok "other settings refused: $out" || bad "other settings (rc $rc): $out"
cp "$tmp/run.gguf.ckpt" "$tmp/corrupt.ckpt"
printf '\x55' | dd of="$tmp/corrupt.ckpt" bs=1 seek=300 conv=notrunc 2>/dev/null
out=$("$bin" train "${args[@]}" -o "$tmp/corrupt.gguf" --ckpt "$tmp/corrupt.ckpt" --resume 2>&1); rc=$?
[ $rc = 2 ] && grep -q 'checksum' <<<"$out" && ok "corrupt checkpoint refused: $out" || bad "corrupt checkpoint (rc $rc): $out"
head -c 1000 "$tmp/run.gguf.ckpt" > "$tmp/short.ckpt"
out=$("$bin" train "${args[@]}" -o "$tmp/short.gguf" --ckpt "$tmp/short.ckpt" --resume 2>&1); rc=$?
[ $rc = 2 ] && ok "truncated checkpoint refused: $out" || bad "truncated checkpoint (rc $rc): $out"

"$bin" train "${args[@]}" -o "$tmp/run.gguf" --log "$tmp/run.jsonl" --resume || bad "resumed run failed"
grep -q '"event":"resume","step":'"$step" "$tmp/run.jsonl" && ok "resumed from step $step" || bad "no resume event at step $step"
cmp -s "$tmp/ref.gguf" "$tmp/run.gguf" && ok "killed and resumed == uninterrupted, byte for byte" \
    || bad "the resumed adapter differs from the uninterrupted one"
[ ! -e "$tmp/run.gguf.ckpt" ] && ok "checkpoint removed after the finished run" || bad "checkpoint left behind"
# the same validation losses in both logs
diff <(grep '"event":"eval"' "$tmp/ref.jsonl" | sed 's/,"eval_ms".*//') \
     <(grep '"event":"eval"' "$tmp/run.jsonl" | sed 's/,"eval_ms".*//' | awk '!seen[$0]++') >/dev/null \
    && ok "the same validation losses" || bad "validation losses differ"

# SIGTERM: a checkpoint, exit 1, and the resumed run ends the same
"$bin" train "${args[@]}" -o "$tmp/term.gguf" --log "$tmp/term.jsonl" 2>"$tmp/term.err" &
pid=$!
for _ in $(seq 1 3000); do
    grep -q '"event":"step","step":1[0-9]' "$tmp/term.jsonl" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
kill -TERM $pid 2>/dev/null
wait $pid; rc=$?
[ $rc = 1 ] && grep -q 'resume' "$tmp/term.err" && ok "SIGTERM: exit 1, $(cat "$tmp/term.err")" || bad "SIGTERM: rc $rc, $(cat "$tmp/term.err")"
"$bin" train "${args[@]}" -o "$tmp/term.gguf" --resume || bad "resume after SIGTERM failed"
cmp -s "$tmp/ref.gguf" "$tmp/term.gguf" && ok "stopped by SIGTERM and resumed == uninterrupted" || bad "SIGTERM resume differs"

[ $fail = 0 ] && echo "test_resume: all ok" || echo "test_resume: FAILED"
exit $fail
