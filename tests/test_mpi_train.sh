#!/usr/bin/env bash
# test_mpi_train.sh: data-parallel training under `mpirun --oversubscribe -np 2` on stories260K
# against the single-process run with the same global batch:
#   - LoRA: the per-step losses and validation losses within a printed tolerance, the final
#     adapter's metadata byte for byte and its weights within a printed tolerance; rank 0 alone
#     wrote the log (one line per step);
#   - resume with the same N: a run resumed from its step-8 checkpoint, or stopped by SIGTERM to
#     mpirun, ends with the same adapter bytes as the uninterrupted run; the checkpoint of 2 ranks
#     is refused by 1 rank;
#   - full fine-tuning with the AdamW state sharded (ZeRO-1): losses and weights within tolerance
#     of one process, and a ZeRO resume byte for byte; pretraining the same way.
# Skipped (77) without mpirun, without MPI in the build, or without ../shared/fixtures/stories260K.
# Usage: test_mpi_train.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1 src=$2 shared=$3
. "$src/tests/mpi_env.sh"
[ -f "$shared/fixtures/stories260K/stories260K.bin" ] || { echo "skip: no $shared/fixtures/stories260K"; exit 77; }
command -v mpirun > /dev/null || { echo "skip: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"; exit 77; }
export OMP_WAIT_POLICY=passive # ranks share cores: threads that wait must sleep
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$bin" convert llama2c "$shared/fixtures/stories260K/stories260K.bin" "$shared/fixtures/stories260K/tok512.bin" \
    -o "$tmp/base.gguf" > /dev/null 2>&1 || { echo "FAIL: convert"; exit 1; }
bash "$src/tests/train_phrase_data.sh" "$tmp/data" 3

# Is this binary built with MPI? A launcher-started rank without MPI refuses to run.
out=$(mpi_run 2 "$bin" train -m "$tmp/base.gguf" --task phrase --data "$tmp/data" --steps 1 --batch 4 --seq 48 -t 1 -q \
      -o "$tmp/probe.gguf" 2>&1)
if echo "$out" | grep -q "built without MPI"; then echo "skip: $bin built without MPI (SM_MPI)"; exit 77; fi

# values VAR FILE: the numbers of one field of the step (or eval) lines of a run log
values() { grep "\"event\":\"$2\"" "$3" | grep -o "\"$1\":[-0-9.e]*" | cut -d: -f2; }
# max_diff A B: the largest absolute difference between two columns of numbers (and the count)
max_diff() { paste "$1" "$2" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ } END { printf "%d %.3g\n", n, m }'; }
# weights FILE N: the last N f32 values of a GGUF file (its tensor data: every tensor a multiple of 32 bytes)
weights() { tail -c $(($2 * 4)) "$1" | od -v -A n -t f4 | tr -s ' ' '\n' | grep -v '^$'; }
# compare NAME TOL_LOSS TOL_W ONE.gguf ONE.jsonl TWO.gguf TWO.jsonl
compare() {
  local name=$1 tl=$2 tw=$3 a=$4 al=$5 b=$6 bl=$7
  local n; n=$(grep -o '"n_params":[0-9]*' "$al" | head -1 | cut -d: -f2)
  for ev in step eval; do
    local key=loss; [ $ev = eval ] && key=val_loss
    values $key $ev "$al" > "$tmp/l1"; values $key $ev "$bl" > "$tmp/l2"
    read -r k d <<< "$(max_diff "$tmp/l1" "$tmp/l2")"
    echo "$name: $k $ev losses, max |np1 - np2| = $d (tolerance $tl)"
    { [ "$k" -gt 0 ] || [ $ev = eval ]; } && [ "$(wc -l < "$tmp/l1")" = "$(wc -l < "$tmp/l2")" ] || fail "$name: $ev lines differ in number"
    awk -v d="$d" -v t="$tl" 'BEGIN { exit !(d <= t) }' || fail "$name: $ev losses differ by $d > $tl"
  done
  local sz; sz=$(stat -c %s "$a")
  [ "$sz" = "$(stat -c %s "$b")" ] && cmp -s <(head -c $((sz - n * 4)) "$a") <(head -c $((sz - n * 4)) "$b") ||
    fail "$name: the files' metadata differ"
  weights "$a" "$n" > "$tmp/w1"; weights "$b" "$n" > "$tmp/w2"
  read -r k d <<< "$(max_diff "$tmp/w1" "$tmp/w2")"
  local big; big=$(awk '{ a = $1 < 0 ? -$1 : $1; if (a > m) m = a } END { printf "%.3g", m }' "$tmp/w1")
  echo "$name: $k weights (largest |w| $big), max |np1 - np2| = $d (tolerance $tw)"
  [ "$k" = "$n" ] || fail "$name: $k weights read, $n expected"
  awk -v d="$d" -v t="$tw" 'BEGIN { exit !(d <= t) }' || fail "$name: weights differ by $d > $tw"
}

common=(-m "$tmp/base.gguf" --task phrase --data "$tmp/data" --batch 4 --seq 48 --eval-every 4 -t 1 -q)

# 1. LoRA: np 1 against np 2, the same global batch (4 rows, 2 per rank).
"$bin" train "${common[@]}" --steps 16 -o "$tmp/l1.gguf" --log "$tmp/l1.jsonl" || fail "lora np 1: exit $?"
t0=$(date +%s%N)
mpi_run 2 "$bin" train "${common[@]}" --steps 16 -o "$tmp/l2.gguf" --log "$tmp/l2.jsonl" > "$tmp/out" 2>&1 ||
  fail "lora np 2: exit $?: $(tail -5 "$tmp/out")"
echo "lora np 2: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ -s "$tmp/out" ] && fail "lora np 2: output with -q: $(head -3 "$tmp/out")"
[ "$(grep -c '"event":"step"' "$tmp/l2.jsonl")" = 16 ] || fail "lora np 2: $(grep -c '"event":"step"' "$tmp/l2.jsonl") step lines (rank 0 alone logs)"
grep '"event":"config"' "$tmp/l2.jsonl" | grep -q '"ranks":2' || fail "lora np 2: no ranks in the config"
grep '"event":"step"' "$tmp/l2.jsonl" | head -1 | grep -q '"comm_bytes":71688' || fail "lora np 2: comm_bytes is not the adapter's 17920 floats"
compare "lora" 1e-4 1e-5 "$tmp/l1.gguf" "$tmp/l1.jsonl" "$tmp/l2.gguf" "$tmp/l2.jsonl"

# 2. Resume with the same N: from the step-8 checkpoint to the same bytes.
mpi_run 2 "$bin" train "${common[@]}" --steps 16 --ckpt-every 8 --keep-ckpt --ckpt "$tmp/r.ckpt" -o "$tmp/r.gguf" ||
  fail "resume: the first run: exit $?"
cmp -s "$tmp/r.gguf" "$tmp/l2.gguf" || fail "resume: checkpointing changed the run"
cp "$tmp/r.ckpt" "$tmp/r-kept.ckpt" # a finished run removes its checkpoint
mpi_run 2 "$bin" train "${common[@]}" --steps 16 --resume --ckpt "$tmp/r.ckpt" -o "$tmp/r2.gguf" --log "$tmp/r2.jsonl" ||
  fail "resume: exit $?"
grep -q '"event":"resume","step":8' "$tmp/r2.jsonl" || fail "resume: did not resume from step 8"
cmp -s "$tmp/r2.gguf" "$tmp/l2.gguf" && echo "resume at np 2: the same adapter bytes" || fail "resume: the adapter differs"
"$bin" train "${common[@]}" --steps 16 --resume --ckpt "$tmp/r-kept.ckpt" -o "$tmp/r1.gguf" 2> "$tmp/err"
rc=$?
[ $rc = 2 ] && grep -q ranks "$tmp/err" && echo "np 1 refuses the np 2 checkpoint: $(head -1 "$tmp/err")" ||
  fail "resume at np 1 from np 2: exit $rc, $(cat "$tmp/err")"
# SIGTERM to mpirun: every rank stops at the same step, rank 0 checkpoints, exit 1; the resumed
# run ends with the bytes of an uninterrupted one.
long=("${common[@]}" --eval-every 0 --steps 300)
mpi_run 2 "$bin" train "${long[@]}" -o "$tmp/u.gguf" || fail "sigterm: the uninterrupted run: exit $?"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
  mpirun --oversubscribe -np 2 "$bin" train "${long[@]}" --ckpt "$tmp/t.ckpt" -o "$tmp/t.gguf" --log "$tmp/t.jsonl" > "$tmp/t.out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q '"step":20,' "$tmp/t.jsonl" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid
wait $pid
rc=$?
at=$(grep -o 'stopped at step [0-9]*' "$tmp/t.out" | grep -o '[0-9]*$')
echo "sigterm: exit $rc, $(cat "$tmp/t.out")"
[ $rc = 1 ] && [ -n "$at" ] && [ "$at" -lt 300 ] && [ -s "$tmp/t.ckpt" ] || fail "sigterm: exit $rc, $(cat "$tmp/t.out")"
mpi_run 2 "$bin" train "${long[@]}" --resume --ckpt "$tmp/t.ckpt" -o "$tmp/t.gguf" || fail "sigterm: the resume: exit $?"
cmp -s "$tmp/t.gguf" "$tmp/u.gguf" && echo "sigterm at step $at, resumed: the same adapter bytes" || fail "sigterm: the resumed adapter differs"
# more ranks than rows: refused clearly
mpi_run 3 "$bin" train "${common[@]}" --batch 2 --steps 1 -o "$tmp/x.gguf" > "$tmp/out" 2>&1
grep -q "every rank needs a row" "$tmp/out" || fail "np 3 with 2 rows: $(head -3 "$tmp/out")"

# 3. Full fine-tuning, AdamW state sharded over 2 ranks (ZeRO-1), and its resume.
full=(--full --lr 1e-4 --steps 8)
"$bin" train "${common[@]}" "${full[@]}" -o "$tmp/f1.gguf" --log "$tmp/f1.jsonl" || fail "full np 1: exit $?"
mpi_run 2 "$bin" train "${common[@]}" "${full[@]}" -o "$tmp/f2.gguf" --log "$tmp/f2.jsonl" > "$tmp/out" 2>&1 ||
  fail "full np 2: exit $?: $(tail -5 "$tmp/out")"
compare "full (ZeRO-1)" 1e-4 1e-5 "$tmp/f1.gguf" "$tmp/f1.jsonl" "$tmp/f2.gguf" "$tmp/f2.jsonl"
mpi_run 2 "$bin" train "${common[@]}" "${full[@]}" --ckpt-every 4 --keep-ckpt --ckpt "$tmp/f.ckpt" -o "$tmp/fa.gguf" &&
mpi_run 2 "$bin" train "${common[@]}" "${full[@]}" --resume --ckpt "$tmp/f.ckpt" -o "$tmp/fb.gguf" || fail "full resume: exit $?"
cmp -s "$tmp/fa.gguf" "$tmp/f2.gguf" && cmp -s "$tmp/fb.gguf" "$tmp/f2.gguf" && echo "full resume at np 2: the same model bytes" ||
  fail "full resume: the model differs"

# 4. Pretraining from random weights (ZeRO-1): the same losses as one process.
mkdir -p "$tmp/corpus"
for i in $(seq 1 24); do echo "Once upon a time there was a dog named Tom, number $i. He liked to run in the park." > "$tmp/corpus/d$i.txt"; done
pre=(pretrain --corpus "$tmp/corpus" --vocab "$tmp/base.gguf" --n-embd 64 --n-layer 2 --n-head 4 --n-ff 128 --batch 4 --seq 32
     --steps 6 -t 1 -q)
"$bin" "${pre[@]}" -o "$tmp/p1.gguf" --log "$tmp/p1.jsonl" || fail "pretrain np 1: exit $?"
mpi_run 2 "$bin" "${pre[@]}" -o "$tmp/p2.gguf" --log "$tmp/p2.jsonl" > "$tmp/out" 2>&1 || fail "pretrain np 2: exit $?: $(tail -3 "$tmp/out")"
compare "pretrain (ZeRO-1)" 1e-4 1e-5 "$tmp/p1.gguf" "$tmp/p1.jsonl" "$tmp/p2.gguf" "$tmp/p2.jsonl"

[ $fails = 0 ] || { echo "test_mpi_train: $fails failures"; exit 1; }
echo "test_mpi_train: ok"
