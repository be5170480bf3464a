#!/usr/bin/env bash
# test_bundled.sh: the bundled default of models/ (models/README.md), as a fresh machine runs it:
#   - the sizes the model card promises: base at most 60 MB, each adapter at most 2 MB;
#   - `snipmeta all FILE` with no -m on every snippet of examples/: exit 0, all four fields, a
#     title of one non-empty line, a non-empty description, tags from models/adapters/tags.txt
#     with the snippet's language first, links only from links.txt (how good the answers are is
#     the evaluation's business: models/README.md);
#   - the same answer twice (greedy), and the same from stdin with --lang;
#   - SNIPMETA_MODELS pointing elsewhere is obeyed (a clear error for an empty folder).
# Usage: test_bundled.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
snipmeta=$1
src=$2
models="$src/models"
command -v jq >/dev/null || { echo "test_bundled: skipped (jq is not installed)"; exit 77; }
[ -f "$models/snipmeta-base.gguf" ] || { echo "test_bundled: FAIL: no $models/snipmeta-base.gguf"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "test_bundled: FAIL: $*"; status=1; }

size() { stat -c %s "$1"; }
[ "$(size "$models/snipmeta-base.gguf")" -le 60000000 ] || fail "the base is over 60 MB"
for t in title description tags links; do
    a="$models/adapters/$t.gguf"
    [ -f "$a" ] || { fail "no adapter $a"; continue; }
    [ "$(size "$a")" -le 2000000 ] || fail "$a is over 2 MB"
done
for f in tags.txt links.txt; do [ -s "$models/adapters/$f" ] || fail "no $models/adapters/$f"; done

declare -A lang_of=([py]=python [c]=c [go]=go [js]=javascript)
for file in "$src"/examples/*; do
    ext="${file##*.}"
    lang="${lang_of[$ext]:-}"
    [ -n "$lang" ] || continue
    env -u SNIPMETA_MODELS "$snipmeta" all "$file" --json -t 2 >"$tmp/a.json" 2>"$tmp/err" ||
        { fail "$file: exit $? ($(head -c 300 "$tmp/err"))"; continue; }
    title=$(jq -r '.title' "$tmp/a.json")
    desc=$(jq -r '.description' "$tmp/a.json")
    [ -n "$title" ] && [ "$title" != null ] && [ "$(echo "$title" | wc -l)" -eq 1 ] || fail "$file: bad title '$title'"
    [ -n "$desc" ] && [ "$desc" != null ] || fail "$file: no description"
    [ "$(jq -r '.tags[0]' "$tmp/a.json")" = "$lang" ] || fail "$file: the first tag is not $lang: $(jq -c .tags "$tmp/a.json")"
    jq -r '.tags[]' "$tmp/a.json" | while read -r tag; do
        [ "$tag" = "$lang" ] || grep -qxF "$tag" "$models/adapters/tags.txt" || echo "$tag"
    done >"$tmp/bad_tags"
    [ -s "$tmp/bad_tags" ] && fail "$file: tags outside the vocabulary: $(cat "$tmp/bad_tags")"
    jq -r '.links[]' "$tmp/a.json" | while read -r url; do grep -qxF "$url" "$models/adapters/links.txt" || echo "$url"; done >"$tmp/bad_links"
    [ -s "$tmp/bad_links" ] && fail "$file: links outside the index: $(cat "$tmp/bad_links")"
    # greedy: the same answer again, and from stdin with the language given
    "$snipmeta" all "$file" --json -t 2 2>/dev/null | jq -c 'del(.timings)' >"$tmp/b.json"
    "$snipmeta" all - --lang "$lang" --json -t 2 <"$file" 2>/dev/null | jq -c 'del(.timings)' >"$tmp/c.json"
    jq -c 'del(.timings)' "$tmp/a.json" >"$tmp/a2.json"
    cmp -s "$tmp/a2.json" "$tmp/b.json" || fail "$file: a second run differs"
    cmp -s "$tmp/a2.json" "$tmp/c.json" || fail "$file: stdin with --lang differs: $(cat "$tmp/c.json")"
    echo "test_bundled: $(basename "$file"): $(jq -c 'del(.timings)' "$tmp/a.json")"
done

# the plain text output: four labelled fields
"$snipmeta" all "$src/examples/lru_cache.py" -t 2 >"$tmp/text" 2>/dev/null || fail "text output: exit $?"
for k in title description tags links; do grep -qi "^$k" "$tmp/text" || fail "text output has no '$k' line: $(cat "$tmp/text")"; done

# SNIPMETA_MODELS names the folder; an empty one is a clear usage error
mkdir "$tmp/empty"
SNIPMETA_MODELS="$tmp/empty" "$snipmeta" all "$src/examples/lru_cache.py" >/dev/null 2>"$tmp/err" && fail "an empty SNIPMETA_MODELS worked"
grep -q "$tmp/empty" "$tmp/err" || fail "the error does not name the empty folder: $(cat "$tmp/err")"

[ $status -eq 0 ] && echo "test_bundled: all checks passed"
exit $status
