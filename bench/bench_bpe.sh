#!/usr/bin/env bash
# bench_bpe.sh: vocabulary size and pre-tokenizer by measurement. Trains a BPE vocabulary on a
# corpus for each size and pre-tokenizer asked for, and prints one JSON line per vocabulary:
# training time and throughput, and the compression (bytes per token) on a held-out code sample.
#
# Usage: bench/bench_bpe.sh SNIPMETA CORPUS_DIR HELDOUT_DIR [OUT_DIR] [SIZES] [PRES]
#   SIZES default "4096 8192 16384 32768"; PRES default "starcoder gpt2 qwen2".
# With scripts/corpus.sh's output: CORPUS_DIR = OUT/corpus, and for HELDOUT_DIR one file per
# line of OUT/held-out.jsonl (the test and validation snippets, never in the corpus):
#   python3 -c 'import json,sys; [open("%s/%s.txt" % (sys.argv[1], r["id"]), "w").write(r["code"])
#     for r in map(json.loads, open(sys.argv[2]))]' HELDOUT_DIR OUT/held-out.jsonl
set -euo pipefail
bin="$1" corpus="$2" heldout="$3" out="${4:-$(mktemp -d)}"
sizes="${5:-4096 8192 16384 32768}" pres="${6:-starcoder gpt2 qwen2}"
mkdir -p "$out"
bytes="$(find "$corpus" -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)"
for pre in $pres; do
  for n in $sizes; do
    v="$out/vocab-$pre-$n.gguf"
    t0=$(date +%s.%N)
    "$bin" vocab train --corpus "$corpus" --vocab-size "$n" --pre "$pre" -o "$v" -q
    t1=$(date +%s.%N)
    count="$("$bin" vocab count -m "$v" "$heldout")"
    python3 - "$pre" "$n" "$bytes" "$t0" "$t1" "$count" "$(stat -c %s "$v")" <<'PY'
import json, sys
pre, n, nbytes, t0, t1, count, size = sys.argv[1:]
c = json.loads(count)
sec = float(t1) - float(t0)
print(json.dumps({"bench": "bpe_train", "pre": pre, "vocab_size": int(n), "corpus_bytes": int(nbytes),
                  "train_s": round(sec, 2), "train_mb_s": round(int(nbytes) / 1e6 / sec, 2),
                  "heldout_bytes": c["bytes"], "heldout_tokens": c["tokens"],
                  "bytes_per_token": c["bytes_per_token"], "vocab_file_bytes": int(size)}))
PY
  done
done
