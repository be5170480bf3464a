#!/bin/bash
# bench_loop.sh SNIPMETA [SHARED] [STEPS] [THREADS]: the training loop end to end (`snipmeta train`
# and `snipmeta pretrain`: data, packing, forward/backward, clipping, AdamW, checkpoint), one JSON
# line per run: tokens/s, mean step and update (clip + AdamW) time, checkpoint write time,
# trainable parameters, peak RSS. bench_train.c measures the forward/backward alone; the
# difference between the two is the loop's own cost.
#
# The model is a random stories15M shape (dim 288, 6 layers, 6 heads, ffn 768, tied) with the
# 32000-token llama vocabulary of SHARED/fixtures/tokenizers; the data are the phrase task of
# tests/train_phrase_data.sh packed into rows of 256. Runs: lora (rank 16, q,k,v,o), lora_all
# (rank 16, every projection), full, pretrain (the task's text as a corpus).
set -eu
bin=$1 shared=${2:-$(dirname "$0")/../../shared} steps=${3:-10} threads=${4:-2}
vocab=$shared/fixtures/tokenizers/ggml-vocab-llama-spm.gguf
[ -f "$vocab" ] || { echo "bench_loop: no $vocab" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" init --vocab "$vocab" --n-embd 288 --n-layer 6 --n-head 6 --n-ff 768 --ctx 512 --tied --init gpt2 -q \
    -o "$tmp/base.gguf"
bash "$(dirname "$0")/../tests/train_phrase_data.sh" "$tmp/data"
mkdir -p "$tmp/corpus"
sed 's/{"prompt": "//; s/", "completion": "/ /; s/"}$//' "$tmp/data/train.jsonl" > "$tmp/corpus/all.txt"
common=(--steps "$steps" --batch 4 --seq 256 --eval-every 0 --ckpt-every 5 --keep-ckpt -t "$threads" -q)

report() { # report NAME LOG TIME_FILE
    local sum cfg
    sum=$(grep '"event":"summary"' "$2")
    cfg=$(grep '"event":"config"' "$2")
    awk -v name="$1" -v steps="$steps" -v threads="$threads" -v sum="$sum" -v cfg="$cfg" -v rss="$(cat "$3")" '
        function field(s, k,   m) { if (match(s, "\"" k "\":[^,}]*")) { m = substr(s, RSTART, RLENGTH); sub(/^[^:]*:/, "", m); return m } return "null" }
        /"event":"step"/ { n++; step += field($0, "step_ms"); upd += field($0, "update_ms") }
        /"event":"checkpoint"/ { nc++; ck += field($0, "ms") }
        END {
            printf "{\"bench\":\"loop\",\"run\":\"%s\",\"shape\":\"stories15m\",\"threads\":%d,\"steps\":%d,\"batch\":4,\"seq\":256,", name, threads, steps
            printf "\"n_params\":%s,\"tokens_per_s\":%s,\"step_ms\":%.1f,\"update_ms\":%.2f,\"checkpoint_ms\":%.1f,\"peak_rss_mb\":%.1f}\n",
                field(cfg, "n_params"), field(sum, "tokens_per_s"), step / n, upd / n, nc ? ck / nc : 0, rss / 1024
        }' "$2"
}

/usr/bin/time -f %M -o "$tmp/t1" "$bin" train -m "$tmp/base.gguf" --task phrase --data "$tmp/data" -o "$tmp/l.gguf" \
    --rank 16 --alpha 32 "${common[@]}" --log "$tmp/l.jsonl"
report lora "$tmp/l.jsonl" "$tmp/t1"
/usr/bin/time -f %M -o "$tmp/t2" "$bin" train -m "$tmp/base.gguf" --task phrase --data "$tmp/data" -o "$tmp/la.gguf" \
    --rank 16 --alpha 32 --targets all "${common[@]}" --log "$tmp/la.jsonl"
report lora_all "$tmp/la.jsonl" "$tmp/t2"
/usr/bin/time -f %M -o "$tmp/t3" "$bin" train -m "$tmp/base.gguf" --task phrase --data "$tmp/data" -o "$tmp/f.gguf" \
    --full "${common[@]}" --log "$tmp/f.jsonl"
report full "$tmp/f.jsonl" "$tmp/t3"
/usr/bin/time -f %M -o "$tmp/t4" "$bin" pretrain --corpus "$tmp/corpus" --vocab "$vocab" --n-embd 288 --n-layer 6 \
    --n-head 6 --n-ff 768 --tied --val-every 0 "${common[@]}" --log "$tmp/p.jsonl" -o "$tmp/p.gguf"
report pretrain "$tmp/p.jsonl" "$tmp/t4"
