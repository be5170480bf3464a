#!/bin/bash
# test_train.sh SNIPMETA SRC SHARED: the train and pretrain commands end to end on stories260K:
# usage errors and bad data (exit 2, the file and line named), a clean stdout, the JSONL run log
# (config with the data hash, one line per step, evaluations, summary), --epochs, early stopping,
# a quantized base, full fine-tuning (a GGUF model that loads), and pretraining from random
# weights (validation loss falls, the model loads).
set -u
bin=$1 src=$2 shared=$3
[ -f "$shared/fixtures/stories260K/stories260K.bin" ] || { echo "skip: no $shared/fixtures/stories260K"; exit 77; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # see test_resume.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
expect() { # expect RC PATTERN CMD...: exit code RC and stderr matching PATTERN
    local want=$1 pat=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    [ $rc = "$want" ] && grep -q -- "$pat" <<<"$err" && ok "exit $rc: $(head -1 <<<"$err")" || bad "want exit $want /$pat/, got $rc: $err"
}
field() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -1 | cut -d: -f2; }

"$bin" convert llama2c "$shared/fixtures/stories260K/stories260K.bin" "$shared/fixtures/stories260K/tok512.bin" \
    -o "$tmp/base.gguf" >/dev/null 2>&1 || { echo "FAIL convert"; exit 1; }
bash "$src/tests/train_phrase_data.sh" "$tmp/data" 3
m=(-m "$tmp/base.gguf" --task phrase)

# usage and bad input
"$bin" train --help | grep -q 'usage: snipmeta train' && ok "train --help" || bad "train --help"
"$bin" pretrain --help | grep -q 'usage: snipmeta pretrain' && ok "pretrain --help" || bad "pretrain --help"
expect 2 '-m BASE.gguf is required' "$bin" train --task t --data "$tmp/data" -o x
expect 2 'unknown option' "$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/x.gguf" --bogus 1
expect 2 'not both' "$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/x.gguf" --steps 3 --epochs 1
expect 2 '--rank wants' "$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/x.gguf" --rank 0
expect 2 '--targets wants' "$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/x.gguf" --targets q,zz
expect 1 'nodir/train.jsonl: cannot open' "$bin" train "${m[@]}" --data "$tmp/nodir" -o "$tmp/x.gguf"
mkdir -p "$tmp/bad"
printf '{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n' > "$tmp/bad/train.jsonl"
expect 2 'bad/train.jsonl:2: expected string fields' "$bin" train "${m[@]}" --data "$tmp/bad" -o "$tmp/x.gguf"
expect 2 'pretrain.*--corpus' "$bin" pretrain --vocab "$tmp/base.gguf" -o "$tmp/x.gguf"

# a LoRA run: stdout empty, the log complete
out=$("$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/a.gguf" --steps 12 --batch 4 --seq 48 --eval-every 4 \
      -t 2 --log "$tmp/a.jsonl" 2>"$tmp/a.err")
[ $? = 0 ] && [ -z "$out" ] && ok "train: stdout stays empty" || bad "train: rc or stdout '$out'"
grep -q 'validation loss' "$tmp/a.err" && ok "stderr: $(tail -1 "$tmp/a.err")" || bad "stderr: $(cat "$tmp/a.err")"
n_lines=$(wc -l < "$tmp/a.jsonl")
n_json=$(grep -c '^{"event":"[a-z_]*",.*}$' "$tmp/a.jsonl")
[ "$n_lines" = "$n_json" ] && ok "log: $n_lines JSON lines" || bad "log: $n_json of $n_lines lines are events"
cfg=$(grep '"event":"config"' "$tmp/a.jsonl")
[ "$(field "$cfg" train_sha256)" = "\"$(sha256sum < "$tmp/data/train.jsonl" | cut -d' ' -f1)\"" ] \
    && ok "log: config carries the training data's SHA-256" || bad "log: data hash in $cfg"
[ "$(grep -c '"event":"step"' "$tmp/a.jsonl")" = 12 ] && ok "log: 12 step lines" || bad "log: step lines"
[ "$(grep -c '"event":"eval"' "$tmp/a.jsonl")" = 4 ] && ok "log: evaluations at steps 0, 4, 8, 12" || bad "log: eval lines"
grep '"event":"step","step":1,' "$tmp/a.jsonl" | grep -q '"loss":.*"lr":.*"grad_norm":.*"tokens_per_s":.*"step_ms":' \
    && ok "log: step lines carry loss, lr, grad_norm, tokens/s, time" || bad "log: step fields"
sum=$(grep '"event":"summary"' "$tmp/a.jsonl")
[ "$(field "$sum" steps)" = 12 ] && [ "$(field "$sum" stopped)" = '"steps"' ] && ok "log: summary $sum" || bad "log: summary $sum"
[ ! -e "$tmp/a.gguf.ckpt" ] || bad "checkpoint left behind"

# --epochs, early stop
"$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/e.gguf" --epochs 0.5 --batch 8 --seq 48 -t 2 -q --log "$tmp/e.jsonl" \
    && ok "--epochs 0.5: $(field "$(grep '"event":"config"' "$tmp/e.jsonl")" steps) steps" || bad "--epochs"
"$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/s.gguf" --steps 40 --batch 2 --seq 48 --lr 5 --clip 0 --eval-every 1 \
    --patience 2 -t 2 -q --log "$tmp/s.jsonl"
sum=$(grep '"event":"summary"' "$tmp/s.jsonl")
grep -q '"event":"early_stop"' "$tmp/s.jsonl" && [ "$(field "$sum" stopped)" = '"early"' ] && [ "$(field "$sum" steps)" -lt 40 ] \
    && ok "early stop after $(field "$sum" steps) steps (lr 5 diverges)" || bad "early stop: $sum"
grep -q '"event":"restore_best","step":0,' "$tmp/s.jsonl" && ok "early stop: the run ends with its best weights (step 0)" \
    || bad "early stop: no restore_best of step 0"

# a quantized base
"$bin" quantize "$tmp/base.gguf" "$tmp/q8.gguf" q8_0 >/dev/null 2>&1
"$bin" train -m "$tmp/q8.gguf" --task phrase --data "$tmp/data" -o "$tmp/q.gguf" --steps 20 --batch 4 --seq 48 --lr 3e-3 \
    --eval-every 20 -t 2 -q --log "$tmp/q.jsonl" || bad "train on q8_0"
sum=$(grep '"event":"summary"' "$tmp/q.jsonl")
awk -v a="$(field "$sum" first_val)" -v b="$(field "$sum" last_val)" 'BEGIN { exit !(b < a - 1) }' \
    && ok "q8_0 base: validation $(field "$sum" first_val) -> $(field "$sum" last_val)" || bad "q8_0: $sum"
"$bin" generate -m "$tmp/base.gguf" --lora "$tmp/q.gguf" -p x -n 4 --temp 0 >/dev/null 2>"$tmp/q.err" \
    && bad "an adapter of the q8_0 base accepted on the f32 base" || ok "refused on another base: $(cat "$tmp/q.err")"

# full fine-tune
"$bin" train "${m[@]}" --data "$tmp/data" -o "$tmp/full.gguf" --full --steps 20 --batch 4 --seq 48 --lr 1e-3 \
    --eval-every 20 -t 2 -q --log "$tmp/f.jsonl" || bad "train --full"
sum=$(grep '"event":"summary"' "$tmp/f.jsonl")
awk -v a="$(field "$sum" first_val)" -v b="$(field "$sum" last_val)" 'BEGIN { exit !(b < a - 1) }' \
    && ok "--full: validation $(field "$sum" first_val) -> $(field "$sum" last_val)" || bad "--full: $sum"
"$bin" generate -m "$tmp/full.gguf" -p "Once upon a time, there was a shy fish named Sam." -n 40 --temp 0 >"$tmp/full.txt" 2>&1 \
    && ok "--full model loads: $(head -c 100 "$tmp/full.txt")" || bad "--full model: $(cat "$tmp/full.txt")"
grep -q '"mode":"full"' "$tmp/f.jsonl" && grep -q '"n_params":[0-9]\{6\}' "$tmp/f.jsonl" && ok "--full trains every weight" || bad "--full n_params"

# pretraining from random weights
mkdir -p "$tmp/corpus"
for i in 1 2 3 4 5 6; do
    sed -n "$((i * 20)),$((i * 20 + 60))p" "$tmp/data/train.jsonl" | sed 's/{"prompt": "//; s/", "completion": "/ /; s/"}$//' > "$tmp/corpus/doc$i.txt"
done
"$bin" pretrain --corpus "$tmp/corpus" --vocab "$tmp/base.gguf" --n-embd 32 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 64 \
    --seq 64 --batch 4 --steps 30 --lr 3e-3 --val-every 5 --eval-every 10 -t 2 -q --log "$tmp/p.jsonl" -o "$tmp/pre.gguf" \
    || bad "pretrain"
sum=$(grep '"event":"summary"' "$tmp/p.jsonl")
awk -v a="$(field "$sum" first_val)" -v b="$(field "$sum" last_val)" 'BEGIN { exit !(a > 5.5 && b < a - 2) }' \
    && ok "pretrain: validation $(field "$sum" first_val) -> $(field "$sum" last_val)" || bad "pretrain: $sum"
"$bin" info "$tmp/pre.gguf" 2>&1 | grep -q 'llama.block_count.*2' && ok "pretrained model: 2 blocks" || bad "pretrained model info"
"$bin" generate -m "$tmp/pre.gguf" -p "Once upon" -n 20 --temp 0 >/dev/null 2>&1 && ok "pretrained model generates" || bad "pretrained model generate"

[ $fail = 0 ] && echo "test_train: all ok" || echo "test_train: FAILED"
exit $fail
