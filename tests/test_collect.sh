#!/usr/bin/env bash
# test_collect.sh: snipmeta collect on tests/fixtures/collect reports exactly the definitions of
# expected.tsv (path, symbol, kind, line range, license) and the expected skip counts; bad input
# (a 1 GB sparse file, symbolic-link loops, an unreadable folder, a FIFO) is counted and the run
# goes on; usage errors exit 2.
# Usage: test_collect.sh SNIPMETA_BINARY SOURCE_DIR [SHARED_DIR]
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
[ -x "$bin" ] || { echo "test_collect: no binary at $1"; exit 1; }
fx=$src/tests/fixtures/collect
tmp=$(mktemp -d)
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The fields before "code" are written in a fixed order by jansson: path, symbol, kind, lines.
rows() {
    sed -n 's/^{"id": "[0-9a-f]\{16\}", "lang": "[a-z]*", "source": "[^"]*", "license": "\([^"]*\)", "path": "\([^"]*\)", "symbol": "\([^"]*\)", "kind": "\([a-z]*\)", "lines": \[\([0-9]*\), \([0-9]*\)\].*/\2\t\3\t\4\t\5\t\6\t\1/p' "$1" | LC_ALL=C sort
}
stat_of() { # stat_of FILE KEY: the number after "KEY": in the stats JSON
    grep -o "\"$2\": [0-9]*" "$1" | head -1 | grep -o '[0-9]*$'
}
expect_stat() { # expect_stat FILE KEY VALUE
    local got
    got=$(stat_of "$1" "$2")
    [ "$got" = "$3" ] || fail "$(basename "$1"): $2 = ${got:-missing}, expected $3"
}

# 1. the fixture tree: every expected definition with its exact line range, nothing more
(cd "$fx" && "$bin" collect . -o "$tmp/out.jsonl" --stats "$tmp/stats.json" -q) || fail "collect on the fixture tree exited $?"
rows "$tmp/out.jsonl" > "$tmp/got.tsv"
grep -v '^#' "$fx/expected.tsv" | LC_ALL=C sort > "$tmp/want.tsv"
if ! diff "$tmp/want.tsv" "$tmp/got.tsv" > "$tmp/diff.txt"; then
    fail "definitions differ from expected.tsv (< expected, > got):"
    cat "$tmp/diff.txt"
fi
[ "$(wc -l < "$tmp/out.jsonl")" = "$(wc -l < "$tmp/got.tsv")" ] || fail "some output lines do not have the expected field layout"
echo "fixture: $(wc -l < "$tmp/got.tsv") definitions checked against $(wc -l < "$tmp/want.tsv") expected"
for kv in "ignored 6" "binary 1" "non-utf8 1" "generated 1" "minified 1" "huge 0" "duplicates 3" "symlink 0"; do
    expect_stat "$tmp/stats.json" ${kv% *} ${kv#* }
done
expect_stat "$tmp/stats.json" snippets "$(wc -l < "$tmp/want.tsv")"
for lang in python c cpp go rust java javascript typescript php perl lua shell ruby; do
    grep -q "\"lang\": \"$lang\"" "$tmp/out.jsonl" || fail "no $lang snippet"
done
# code is dedented: a method's snippet starts at its own indentation
grep '"symbol": "__init__"' "$tmp/out.jsonl" | grep -q '"code": "def __init__(self, width, height):\\n    self.width' \
    || fail "__init__ is not dedented as expected"
grep '"symbol": "diagonal"' "$tmp/out.jsonl" | grep -q '"code": "@property\\n@functools.lru_cache' \
    || fail "diagonal does not start at its decorators"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary output file was left behind"
# stdout output gives the same snippets
(cd "$fx" && "$bin" collect . -o - -q) > "$tmp/stdout.jsonl" || fail "collect -o - exited $?"
cmp -s "$tmp/stdout.jsonl" "$tmp/out.jsonl" || fail "-o - differs from -o FILE"
# line bounds and the file-size limit are options
(cd "$fx" && "$bin" collect . -o "$tmp/short.jsonl" --min-lines 1 --max-lines 8 --stats "$tmp/short.json" -q) || fail "--min-lines/--max-lines run failed"
awk -F'"lines": \\[' 'NF > 1 { split($2, a, /[],]/); if (a[2] - a[1] + 1 > 8) bad = 1 } END { exit bad }' "$tmp/short.jsonl" \
    || fail "--max-lines 8 let a longer snippet through"
(cd "$fx" && "$bin" collect . -o "$tmp/small.jsonl" --max-file-bytes 1000 --stats "$tmp/small.json" -q) || fail "--max-file-bytes run failed"
[ "$(stat_of "$tmp/small.json" huge)" -gt 0 ] || fail "--max-file-bytes 1000 skipped no file as huge"

# 1b. a git checkout: .git is never walked, .git/info/exclude holds rules too
repo=$tmp/checkout
mkdir -p "$repo/.git/info" "$repo/.git/objects"
printf 'def kept(a):\n    b = a\n    c = b\n    d = c\n    e = d\n    return e\n' > "$repo/kept.py"
sed 's/def kept/def excluded/' "$repo/kept.py" > "$repo/excluded.py"
sed 's/def kept/def in_git_dir/' "$repo/kept.py" > "$repo/.git/objects/hook.py"
echo "excluded.py" > "$repo/.git/info/exclude"
"$bin" collect "$repo" -o "$tmp/repo.jsonl" --stats "$tmp/repo.json" -q || fail "collect on a checkout exited $?"
expect_stat "$tmp/repo.json" snippets 1
expect_stat "$tmp/repo.json" ignored 1
grep -q '"path": "checkout/kept.py"' "$tmp/repo.jsonl" || fail "checkout: kept.py missing or its path is not checkout/kept.py"

# 2. bad input: a 1 GB sparse file, symbolic-link loops, an unreadable folder, a FIFO
bad=$tmp/bad
mkdir -p "$bad/locked"
printf 'def ok(a):\n    b = a\n    c = b\n    d = c\n    e = d\n    return e\n' > "$bad/ok.py"
sed 's/def ok/def hidden/' "$bad/ok.py" > "$bad/locked/hidden.py"
truncate -s 1G "$bad/huge.py"
ln -s . "$bad/loop"
ln -s a "$bad/b"
ln -s b "$bad/a"
mkfifo "$bad/pipe.py"
chmod 000 "$bad/locked"
start=$(date +%s)
timeout 60 "$bin" collect "$bad" -o "$tmp/bad.jsonl" --stats "$tmp/bad.json" -q || fail "collect on bad input exited $?"
[ $(($(date +%s) - start)) -le 10 ] || fail "collect on bad input took more than 10 s (did it read the 1 GB file?)"
expect_stat "$tmp/bad.json" huge 1
expect_stat "$tmp/bad.json" symlink 3
expect_stat "$tmp/bad.json" special 1
if ! ls "$bad/locked" > /dev/null 2>&1; then
    expect_stat "$tmp/bad.json" unreadable-dir 1
    expect_stat "$tmp/bad.json" snippets 1
elif [ "$(id -u)" = 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups true 2> /dev/null; then
    # root reads a mode-000 folder anyway: run the same walk as nobody, who cannot
    expect_stat "$tmp/bad.json" snippets 2
    chmod 755 "$tmp"
    mkdir "$tmp/as-nobody" && chmod 777 "$tmp/as-nobody"
    timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" collect "$bad" \
        -o "$tmp/as-nobody/bad.jsonl" --stats "$tmp/as-nobody/bad.json" -q || fail "collect as nobody exited $?"
    expect_stat "$tmp/as-nobody/bad.json" unreadable-dir 1
    expect_stat "$tmp/as-nobody/bad.json" snippets 1
    echo "note: running as root; the unreadable folder was checked as user nobody"
else
    echo "note: this user reads a mode-000 folder and cannot switch users: unreadable folders not checked"
fi
chmod 755 "$bad/locked"

# 3. usage and run-time errors
"$bin" collect "$tmp/does-not-exist" -o "$tmp/x.jsonl" -q 2> /dev/null; rc=$?
[ $rc = 2 ] || fail "a missing PATH exited $rc, expected 2"
"$bin" collect "$fx" -q 2> /dev/null; rc=$?
[ $rc = 2 ] || fail "no -o exited $rc, expected 2"
"$bin" collect "$fx" -o "$tmp/no/such/dir/x.jsonl" -q 2> /dev/null; rc=$?
[ $rc = 1 ] || fail "an unwritable output exited $rc, expected 1"
"$bin" collect "$fx" -o "$tmp/x.jsonl" --max-lines zero 2> /dev/null; rc=$?
[ $rc = 2 ] || fail "a bad --max-lines exited $rc, expected 2"

if [ $failures -ne 0 ]; then
    echo "test_collect: $failures failures"
    exit 1
fi
echo "test_collect: all checks pass"
