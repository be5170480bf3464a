#!/usr/bin/env bash
# experiments.sh: the experiments of docs/EVALUATION.md, from the labels to the tables, in one command.
#
# Usage: scripts/experiments.sh OUT_DIR [--base BASE.gguf] [--data LABELS.jsonl] [--jobs N] [--threads N]
#                                       [--parts LIST] [--quick] [--write-docs]
#   --base     the base model (default models/snipmeta-base.gguf)
#   --data     the teacher labels (default ../shared/data/labels.jsonl)
#   --jobs     runs at a time (default 2); --threads each (default 1): on 2 cores two one-thread
#              runs finish sooner than one two-thread run after the other (small matrices)
#   --parts    which experiments (default a,b,c,d,e,f):
#                a  LoRA vs full fine-tune vs the prompted base without an adapter, every task
#                b  training-set sizes 100, 300, 1000 and all, LoRA against full (title and tags)
#                c  ranks 4, 8, 16 on attention+MLP, and rank 8 on attention only (title)
#                d  standard vs activated adapters, every task
#                e  the heuristic baseline
#                f  trainable parameters, training time and adapter bytes against full (from a's runs)
#   --quick    a smoke run: 3 steps per training, 8 test snippets per task (the test suite runs it)
#   --write-docs  replace the generated sections of docs/EVALUATION.md and models/README.md
#
# Every run is a `snipmeta train` then a `snipmeta eval` with fixed seeds; each writes
# OUT_DIR/results/NAME.json and OUT_DIR/logs/NAME.jsonl and is skipped when its result exists, so
# an interrupted run goes on where it stopped. OUT_DIR/meta.json records the commit, the seeds,
# the recipes and the machine; scripts/experiments/tables.py turns the results into
# OUT_DIR/tables.md (and the docs with --write-docs) and `snipmeta eval --report` into
# OUT_DIR/report/index.html.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:?usage: scripts/experiments.sh OUT_DIR [--base BASE.gguf] [--parts a,b,c,d,e,f] [--quick] [--write-docs]}"
shift
base="$root/models/snipmeta-base.gguf"
labels="$root/../shared/data/labels.jsonl"
snipmeta="${SNIPMETA:-$root/build/snipmeta}"
jobs=2 threads=1 parts="a,b,c,d,e,f" quick=0 write_docs=0
while (($#)); do
    case "$1" in
        --base) base="$2"; shift 2 ;;
        --data) labels="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --parts) parts="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --write-docs) write_docs=1; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "experiments.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x "$snipmeta" ]] || { echo "experiments.sh: $snipmeta is not built (run scripts/setup.sh)" >&2; exit 2; }
[[ -f "$base" ]] || { echo "experiments.sh: no base model at $base (--base)" >&2; exit 2; }
[[ -f "$labels" ]] || { echo "experiments.sh: no labels at $labels (--data)" >&2; exit 2; }
has() { [[ ",$parts," == *",$1,"* ]]; }
export OMP_WAIT_POLICY=passive   # several runs share the cores: no spinning at barriers

mkdir -p "$out"/{runs,logs,results,data}
out="$(cd "$out" && pwd)"
source "$here/experiments/recipes.sh"   # seed, lora_recipe, full_recipe (shared with extra_task.sh)
tasks=(title description tags links)

# How long a run trains: two epochs of the whole split; the data-size runs of (b) a fixed number of
# steps instead (100 snippets are less than one step of 8 packed rows: two epochs would be 2 steps).
loop() { # TRAIN_SIZE
    if ((quick)); then echo "--steps 3 --eval-every 0 --patience 0"
    else case "$1" in 100) echo "--steps 30 --eval-every 5" ;; 300) echo "--steps 40 --eval-every 8" ;;
                      1000) echo "--steps 60 --eval-every 12" ;; *) echo "--epochs 2 --eval-every 25" ;; esac; fi
}
eval_limit=()
((quick)) && eval_limit=(--limit 8)

commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)"
cat > "$out/meta.json" <<EOF

{"commit": "$commit", "dirty": $dirty, "date": "$(date -u +%FT%TZ)", "seed": $seed,
 "base": "$(basename "$base")", "base_sha256": "$(sha256sum "$base" | cut -c1-64)",
 "labels": "$labels", "quick": $quick, "parts": "$parts", "jobs": $jobs, "threads": $threads,
 "lora_recipe": "${lora_recipe[*]}", "full_recipe": "${full_recipe[*]}",
 "loop": "$(loop all); data-size runs: 100 $(loop 100), 300 $(loop 300), 1000 $(loop 1000)",
 "machine": "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"}
EOF

# The dataset (80/10/10 split by near-duplicate group, deterministic) and its subsets for (b):
# the first N training lines (ids are SHA-256 digests, so the file's order is a fixed shuffle).
data="$out/data/all"
[[ -f "$data/stats.json" ]] || "$snipmeta" dataset "$labels" --task all -o "$data" -q
subset() { # N TASK
    local d="$out/data/n$1"
    mkdir -p "$d/$2"
    [[ -f "$d/$2/train.jsonl" ]] || head -n "$1" "$data/$2/train.jsonl" > "$d/$2/train.jsonl"
    ln -sf "$data/$2/validation.jsonl" "$d/$2/validation.jsonl"
    echo "$d"
}

evaluate() { # NAME TASK TRAIN_SIZE MODEL [--lora A]
    local name="$1" task="$2" size="$3" model="$4" label="$1"; shift 4
    # the data-size runs of (b) share the label "lora" or "full", so that the report draws their curves
    [[ "$name" =~ -n[0-9]+$ ]] && label="${name%%-*}"
    "$snipmeta" eval -m "$model" "$@" --task "$task" --data "$data/$task/test.jsonl" --tags "$data/tags.txt" \
        --links "$data/links.txt" --label "$label" --train-size "$size" "${eval_limit[@]}" -t "$threads" -q \
        -o "$out/results/$name.json.tmp" > /dev/null
    mv "$out/results/$name.json.tmp" "$out/results/$name.json"
}

# One run: train (LoRA or full) on DATA_DIR's task files, then evaluate on the test split.
run() { # NAME TASK DATA_DIR TRAIN_SIZE train flags...
    local name="$1" task="$2" dir="$3" size="$4"; shift 4
    [[ -f "$out/results/$name.json" ]] && return 0
    [[ "$size" == all ]] && size=$(wc -l < "$dir/$task/train.jsonl")
    local model="$out/runs/$name.gguf" t0
    t0=$(date +%s)
    rm -f "$out/logs/$name.jsonl"
    "$snipmeta" train -m "$base" --task "$task" --data "$dir" -o "$model" "$@" -t "$threads" -q \
        --log "$out/logs/$name.jsonl"
    if [[ " $* " == *" --full "* ]]; then evaluate "$name" "$task" "$size" "$model"
    else evaluate "$name" "$task" "$size" "$base" --lora "$model"; fi
    echo "experiments: $name done in $(( $(date +%s) - t0 )) s" >&2
}

# The queue: one line per run, in priority order (the shipped adapters first, then what compares
# with them), so that a run cut short has the most telling results.
queue=()
if has e; then queue+=("baseline"); fi
if has a || has d || has f; then
    for t in "${tasks[@]}"; do queue+=("run lora-$t $t $data all ${lora_recipe[*]} $(loop all) --activated"); done
fi
if has a; then queue+=("base"); fi
if has a || has f; then
    for t in "${tasks[@]}"; do queue+=("run full-$t $t $data all ${full_recipe[*]} $(loop all)"); done
fi
if has b; then # (tags after the rest)
    for n in 100 300 1000; do
        queue+=("run lora-title-n$n title $(subset $n title) $n ${lora_recipe[*]} $(loop $n) --activated")
        queue+=("run full-title-n$n title $(subset $n title) $n ${full_recipe[*]} $(loop $n)")
    done
fi
if has d || has f; then
    for t in title tags; do queue+=("run lora-std-$t $t $data all ${lora_recipe[*]} $(loop all)"); done
fi
if has c; then # the shipped recipe with one setting changed (a later flag overrides an earlier one)
    queue+=("run lora-title-r4 title $data all ${lora_recipe[*]} $(loop all) --rank 4 --activated")
    queue+=("run lora-title-r16 title $data all ${lora_recipe[*]} $(loop all) --rank 16 --activated")
    queue+=("run lora-title-attn title $data all ${lora_recipe[*]} $(loop all) --targets attn --activated")
fi
if has b; then
    for n in 100 300 1000; do
        queue+=("run lora-tags-n$n tags $(subset $n tags) $n ${lora_recipe[*]} $(loop $n) --activated")
        queue+=("run full-tags-n$n tags $(subset $n tags) $n ${full_recipe[*]} $(loop $n)")
    done
fi
if has d || has f; then
    for t in description links; do queue+=("run lora-std-$t $t $data all ${lora_recipe[*]} $(loop all)"); done
fi

job() {
    local line="$1"
    case "$line" in
        baseline)
            [[ -f "$out/results/baseline.json" ]] || {
                "$snipmeta" eval --baseline --task all --data "$data" "${eval_limit[@]}" --label baseline -q \
                    -o "$out/results/baseline.json.tmp" > /dev/null
                mv "$out/results/baseline.json.tmp" "$out/results/baseline.json"; } ;;
        base)
            [[ -f "$out/results/base.json" ]] || {
                "$snipmeta" eval -m "$base" --task all --data "$data" "${eval_limit[@]}" --label base -t "$threads" -q \
                    -o "$out/results/base.json.tmp" > /dev/null
                mv "$out/results/base.json.tmp" "$out/results/base.json"; } ;;
        run\ *) eval "$line" ;;
    esac
}

echo "experiments: ${#queue[@]} runs, $jobs at a time, results in $out/results" >&2
failed=0
for line in "${queue[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || failed=1; done
    job "$line" &
done
while (($(jobs -rp | wc -l) > 0)); do wait -n || failed=1; done
((failed)) && { echo "experiments: a run failed (see above); rerun to retry the missing ones" >&2; exit 1; }

tables=(python3 "$here/experiments/tables.py" "$out")
((write_docs)) && tables+=(--write-docs "$root")
"${tables[@]}"

# The HTML report: every result, the loss curves of the shipped recipe and of (b).
report=("$snipmeta" eval --baseline --task all --data "$data" "${eval_limit[@]}" --label baseline -q --report "$out/report")
for f in "$out"/results/*.json; do [[ "$f" == */baseline.json ]] || report+=(--with "$f"); done
for f in "$out"/logs/lora-{title,description,tags,links}.jsonl "$out"/logs/full-{title,description,tags,links}.jsonl; do
    [[ -f "$f" ]] && report+=(--train-log "$f")
done
"${report[@]}" > /dev/null
echo "experiments: tables in $out/tables.md, report in $out/report/index.html" >&2
