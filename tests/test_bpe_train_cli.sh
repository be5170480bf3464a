#!/usr/bin/env bash
# test_bpe_train_cli.sh: `snipmeta vocab train` and `vocab count` end to end: a vocabulary from
# this repository's sources, the same file twice, `snipmeta tokenize -m` on it (markers as one
# token, ids back to text), `vocab count`, and usage errors (exit 2).
# Usage: test_bpe_train_cli.sh SNIPMETA SRC_DIR SHARED_DIR
set -euo pipefail
bin="$1" src="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$tmp/corpus"
cp "$src"/src/*.c "$tmp/corpus/"
mv "$tmp/corpus/tokenizer.c" "$tmp/heldout.c" # held out for the compression check
"$bin" vocab train --corpus "$tmp/corpus" --vocab-size 2000 -o "$tmp/a.gguf" 2>"$tmp/log" || { cat "$tmp/log"; fail "train"; }
grep -q "2000 tokens" "$tmp/log" || fail "log: $(cat "$tmp/log")"
"$bin" vocab train --corpus "$tmp/corpus" --vocab-size 2000 -o "$tmp/b.gguf" -q
cmp -s "$tmp/a.gguf" "$tmp/b.gguf" || fail "two runs on one corpus differ"

"$bin" info "$tmp/a.gguf" >"$tmp/info"
grep -q 'tokenizer.ggml.model *str *"gpt2"' "$tmp/info" && grep -q 'tokenizer.ggml.pre *str *"qwen2"' "$tmp/info" \
  || fail "metadata: $(cat "$tmp/info")"

# Markers and the end-of-text token are one token each; the text comes back.
printf 'Language: c\nCode:\nint x;\n### Title:\nA variable<|endoftext|>' >"$tmp/prompt"
"$bin" tokenize -m "$tmp/a.gguf" >"$tmp/toks" <"$tmp/prompt"
head -1 "$tmp/toks" | grep -q $'^1\tLanguage:$' || fail "Language: marker: $(head -2 "$tmp/toks")"
grep -q $'^2\t\\\\nCode:\\\\n$' "$tmp/toks" || fail "Code marker: $(cat "$tmp/toks")"
tail -1 "$tmp/toks" | grep -q $'^0\t<|endoftext|>$' || fail "<|endoftext|>: $(tail -1 "$tmp/toks")"

# Compression on held-out code.
"$bin" vocab count -m "$tmp/a.gguf" "$tmp/heldout.c" >"$tmp/count"
python3 - "$tmp/count" "$tmp/heldout.c" <<'PY' || fail "count: $(cat "$tmp/count")"
import json, os, sys
c = json.load(open(sys.argv[1]))
assert c["files"] == 1 and c["bytes"] == os.path.getsize(sys.argv[2]), c
assert c["bytes_per_token"] > 2.0, c   # bytes alone would be 1.0
print("held-out bytes/token with a 2000-token vocabulary from src/*.c:", c["bytes_per_token"])
PY

# Usage errors exit 2.
for args in "train --corpus $tmp/corpus -o $tmp/c.gguf" "train --corpus $tmp/corpus --vocab-size 100 -o $tmp/c.gguf" \
            "train --corpus $tmp/nope --vocab-size 300 -o $tmp/c.gguf" "train --corpus $tmp/corpus --vocab-size 300 --pre nope -o $tmp/c.gguf" \
            "frobnicate" "count $tmp/heldout.c"; do
  rc=0
  "$bin" vocab $args >/dev/null 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "'vocab $args' exited $rc, want 2"
done
echo "test_bpe_train_cli: ok"
