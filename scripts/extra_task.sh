#!/usr/bin/env bash
# extra_task.sh: a fifth task, added with nothing but labels, a marker and `snipmeta train`
# (docs/TASKS.md). The task is "topic": the one tag that best says what a snippet is about, in
# practice the teacher's first tag after the language ("javascript, express, http, ..." -> express).
# Its labels come from the teacher's tags in ../shared/data, on the same split as the four tasks.
#
# Usage: scripts/extra_task.sh OUT_DIR [--base BASE.gguf] [--data LABELS.jsonl] [--steps N] [-t N]
# Writes OUT_DIR/data/topic/{train,validation,test}.jsonl (the student prompt with the marker
# "### Topic:"), trains OUT_DIR/topic.gguf, answers the test split with `snipmeta generate --lora`
# and prints the exact-match accuracy against the label and against "the most frequent topic".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:?usage: scripts/extra_task.sh OUT_DIR [--base BASE.gguf] [--data LABELS.jsonl] [--steps N] [-t N]}"
shift
base="$root/models/snipmeta-base.gguf" labels="$root/../shared/data/labels.jsonl" steps="" threads=2 limit=0
snipmeta="${SNIPMETA:-$root/build/snipmeta}"
while (($#)); do
    case "$1" in
        --base) base="$2"; shift 2 ;;
        --data) labels="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        -t) threads="$2"; shift 2 ;;
        *) echo "extra_task.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
mkdir -p "$out/data"
out="$(cd "$out" && pwd)"
export OMP_WAIT_POLICY=passive

# 1. labels: the four tasks' dataset gives the split; the topic is the second tag
"$snipmeta" dataset "$labels" --task tags -o "$out/data" -q
mkdir -p "$out/data/topic"
for split in train validation test; do
    python3 - "$out/data/tags/$split.jsonl" "$out/data/topic/$split.jsonl" <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src) as f, open(dst + ".tmp", "w") as g:
    for line in f:
        d = json.loads(line)
        tags = [t.strip() for t in d["completion"].split(",")]
        if len(tags) < 2:
            continue
        # the same student prompt, with the new task's marker
        prompt = d["prompt"].rsplit("\n### Tags:\n", 1)[0] + "\n### Topic:\n"
        g.write(json.dumps({"id": d["id"], "lang": d["lang"], "prompt": prompt, "completion": tags[1]}) + "\n")
import os
os.replace(dst + ".tmp", dst)
EOF
done

# 2. train: the shipped adapters' recipe
loop=(--epochs 2)
[ -n "$steps" ] && loop=(--steps "$steps" --eval-every 0)
source "$here/experiments/recipes.sh"
"$snipmeta" train -m "$base" --task topic --data "$out/data" -o "$out/topic.gguf" "${lora_recipe[@]}" "${loop[@]}" \
    -t "$threads" -q --log "$out/topic.log.jsonl"

# 3. answer the test split (greedy, one line) and score it
python3 - "$snipmeta" "$base" "$out" "$threads" "$limit" <<'EOF'
import collections, json, subprocess, sys
snipmeta, base, out, threads, limit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
train = [json.loads(l) for l in open(f"{out}/data/topic/train.jsonl")]
test = [json.loads(l) for l in open(f"{out}/data/topic/test.jsonl")]
if limit:
    test = test[:limit]
common = collections.Counter(d["completion"] for d in train).most_common(1)[0][0]
hits = base_hits = 0
for d in test:
    # generate's -n counts the prompt's tokens too: the prompt's length plus 8 new tokens
    ids = subprocess.run([snipmeta, "tokenize", "-m", base, "--ids"], input=d["prompt"], capture_output=True,
                         text=True, check=True).stdout.split()
    r = subprocess.run([snipmeta, "generate", "-m", base, "--lora", f"{out}/topic.gguf", "-p", d["prompt"],
                        "-n", str(len(ids) + 8), "--temp", "0", "-t", threads], capture_output=True, text=True, check=True)
    # stdout is the prompt's text, then the completion: keep the first line after the marker
    after = r.stdout.rsplit("### Topic:\n", 1)[-1]
    got = after.strip().split("\n")[0].strip()
    hits += got == d["completion"]
    base_hits += common == d["completion"]
n = len(test)
res = {"task": "topic", "n": n, "accuracy": hits / n, "most_frequent": common, "most_frequent_accuracy": base_hits / n}
json.dump(res, open(f"{out}/result.json", "w"))
print(json.dumps(res))
EOF
