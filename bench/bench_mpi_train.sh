#!/usr/bin/env bash
# bench_mpi_train.sh: data-parallel training on this machine: the median time per step, the time
# in gradient reductions per step and the bytes each rank reduces per step, for LoRA and full
# fine-tuning at np 1 and 2 (one thread per rank), on two models: stories260K (converted from
# ../shared/fixtures) and a random 6-layer, 288-wide model with its vocabulary (snipmeta init).
# One JSON line per run. The global batch is the same at every np (--batch rows, split over the ranks).
# Usage: bench_mpi_train.sh BUILD_DIR SHARED_DIR [STEPS]
set -eu
build=$1 shared=$2 steps=${3:-8}
bin=$build/snipmeta
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/mpi_env.sh"
export OMP_WAIT_POLICY=passive
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" convert llama2c "$shared/fixtures/stories260K/stories260K.bin" "$shared/fixtures/stories260K/tok512.bin" \
  -o "$tmp/s260k.gguf" > /dev/null 2>&1
"$bin" init --vocab "$tmp/s260k.gguf" --n-embd 288 --n-layer 6 --n-head 6 --n-ff 768 --ctx 256 --init gpt2 -q \
  -o "$tmp/m6.gguf" > /dev/null 2>&1
bash "$src/tests/train_phrase_data.sh" "$tmp/data" 10
# median of a field over the step lines after the first (which pays for warm-up)
median() { grep '"event":"step"' "$2" | tail -n +2 | grep -o "\"$1\":[0-9.e-]*" | cut -d: -f2 | sort -g |
           awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "null" }'; }
for model in s260k m6; do
  for mode in lora full; do
    extra=(); [ $mode = full ] && extra=(--full)
    for np in 1 2; do
      log=$tmp/$model-$mode-$np.jsonl
      args=(train -m "$tmp/$model.gguf" --task phrase --data "$tmp/data" --batch 8 --seq 64 --steps "$steps"
            --eval-every 0 -t 1 -q -o "$tmp/out.gguf" --log "$log" "${extra[@]}")
      if [ $np = 1 ]; then "$bin" "${args[@]}"; else OMPI_MCA_btl_vader_single_copy_mechanism=cma mpi_run $np "$bin" "${args[@]}"; fi
      n=$(grep -o '"n_params":[0-9]*' "$log" | head -1 | cut -d: -f2)
      printf '{"bench":"mpi_train","model":"%s","mode":"%s","np":%d,"n_params":%s,"step_ms":%s,"comm_ms":%s,"comm_bytes":%s,"tokens_per_s":%s}\n' \
        "$model" "$mode" "$np" "$n" "$(median step_ms "$log")" "$( [ $np = 1 ] && echo 0 || median comm_ms "$log")" \
        "$( [ $np = 1 ] && echo 0 || median comm_bytes "$log")" "$(median tokens_per_s "$log")"
    done
  done
done
