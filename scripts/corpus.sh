#!/usr/bin/env bash
# corpus.sh: gathers the pretraining corpus of the bundled base model (models/README.md).
#
# Usage: scripts/corpus.sh OUT_DIR [--packages "NAME..."] [--no-stdlib] [--vocab VOCAB.gguf]
#                                  [--tree NAME:VERSION:LICENSE:DIR]... [--snipmeta BIN] [--shared DIR]
#   --packages  the Debian source packages to fetch (default: the pinned list below; "" for none)
#   --tree      also a local tree whose license you have checked (a checkout, an npm package)
#   --vocab     count tokens per package for the manifest (`snipmeta vocab count`)
#   --max-package-mb N  at most N MB from one package (default 16; a sample by file hash), so that
#               a huge package (TypeScript's test cases, Symfony) does not swamp the language mix
#
# Sources, all by package name on a Debian machine, permissively licensed only:
#   - the Python standard library of /usr/lib/python3.N (PSF-2.0), test/ and site-packages left out;
#   - the Debian source packages of the pinned list below, fetched with `apt-get source` through a
#     private apt configuration in OUT_DIR/apt (deb-src lines for that command only; the system's
#     sources and package lists are not touched). A package is kept only when the License of its
#     `Files: *` stanza in debian/copyright is permissive; files of other stanzas whose license is
#     not permissive (GPL build scripts and the like) are left out.
# Every file goes through scripts/corpus/gather.py: `snipmeta collect`'s skip rules (huge, binary,
# non-UTF-8, generated, minified), deduplication by SHA-256 over the whole corpus, and exclusion of
# every file that contains a snippet of ../shared/data's test or validation split (the splits of
# `snipmeta dataset`), so that pretraining never sees held-out code.
#
# Output in OUT_DIR:
#   corpus/PKG--SHA16.txt   one source file per document (as `snipmeta pretrain --corpus` reads a folder)
#   MANIFEST.tsv            package, version, license, files, bytes, tokens (with --vocab), skipped
#   manifest.json           the same, plus totals, the held-out ids count and the command
#   index.tsv               sha256, package, path inside the package, bytes: one line per file kept
#   held-out.jsonl          the excluded snippets ({"id", "code"})
# Resumable and idempotent: a package whose packages/PKG.done exists is not fetched again; an
# interrupted one starts over; the output depends only on the package versions.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src_dir="$(dirname "$here")"
out="${1:?usage: scripts/corpus.sh OUT_DIR [--packages \"NAME...\"] [--no-stdlib] [--vocab VOCAB.gguf]}"
shift
snipmeta="$src_dir/build/snipmeta"
shared="$src_dir/../shared"
vocab=""
stdlib=1
trees=()
max_package_mb=16

# The pinned list: Debian source package and the license expected on its `Files: *` stanza.
default_packages=(
  # C and C++
  zlib lz4 libuv1 redis sqlite3 lua5.4 tmux libevent leveldb re2 fmtlib jq curl expat
  lua-cjson lua-lpeg jansson libyaml pcre2 nginx musl libsodium brotli xxhash cjson nghttp2
  libarchive lmdb googletest abseil rapidjson
  # Python (the standard library comes from /usr/lib/python3.N)
  python-click flask python-attrs requests python-dateutil six pyyaml pygments python-urllib3
  # Go, Rust
  golang-github-spf13-cobra fzf golang-github-gorilla-mux golang-github-google-uuid golang-github-pkg-errors
  golang-github-spf13-pflag golang-github-google-go-cmp rust-ripgrep rust-clap rust-regex rust-serde
  # JavaScript, TypeScript
  node-lodash node-axios node-express node-yargs node-commander node-uglify-js node-typescript node-semver node-acorn
  # Java, PHP
  guava-libraries libcommons-lang3-java commons-io php-monolog php-symfony php-guzzlehttp-psr7 php-league-commonmark
)
packages=("${default_packages[@]}")
while [ $# -gt 0 ]; do
  case "$1" in
    --packages) read -r -a packages <<<"$2"; shift 2 ;;
    --no-stdlib) stdlib=0; shift ;;
    --vocab) vocab="$2"; shift 2 ;;
    --tree) trees+=("$2"); shift 2 ;;
    --max-package-mb) max_package_mb="$2"; shift 2 ;;
    --snipmeta) snipmeta="$2"; shift 2 ;;
    --shared) shared="$2"; shift 2 ;;
    *) echo "corpus.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$snipmeta" ] || { echo "corpus.sh: no snipmeta binary at $snipmeta (build first, or --snipmeta BIN)" >&2; exit 2; }
mkdir -p "$out"/corpus "$out"/packages "$out"/apt/lists/partial "$out"/apt/cache/archives/partial "$out"/src
out="$(cd "$out" && pwd)"
exec 9>"$out/.lock"
flock -n 9 || { echo "corpus.sh: another run is using $out" >&2; exit 1; }
export CORPUS_PERMISSIVE="Expat MIT BSD ISC Zlib Apache PSF Python public-domain curl Unlicense BSL-1.0 X11 0BSD libpng OpenLDAP SQLite"

log() { printf '[corpus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
is_permissive() { # a License: value
  local l
  for l in $CORPUS_PERMISSIVE; do case "${1,,}" in "${l,,}"*) return 0 ;; esac; done
  return 1
}

# 1. The held-out snippets: the test and validation splits of ../shared/data, by `snipmeta dataset`.
if [ ! -s "$out/held-out.jsonl" ]; then
  labels="$shared/data/labels.jsonl"
  [ -f "$labels" ] || { echo "corpus.sh: $labels not found (--shared DIR)" >&2; exit 2; }
  "$snipmeta" dataset "$labels" --task all --max-code-bytes 0 -o "$out/split" -q
  python3 - "$labels" "$out/split" >"$out/held-out.jsonl.tmp" <<'PY'
import glob, json, sys
ids = set()
for split in ("test", "validation"):
    for p in glob.glob(sys.argv[2] + "/*/%s.jsonl" % split):
        ids |= {json.loads(l)["id"] for l in open(p)}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["id"] in ids:
        print(json.dumps({"id": r["id"], "code": r["code"]}))
PY
  mv "$out/held-out.jsonl.tmp" "$out/held-out.jsonl"
fi
log "held out: $(wc -l <"$out/held-out.jsonl") snippets (test + validation splits)"

# gather NAME VERSION LICENSE ROOT [gather.py options]: one tree into the corpus, and its .done row.
gather() {
  local name="$1" version="$2" license="$3" root="$4"; shift 4
  local t0=$SECONDS res
  res="$(python3 "$here/corpus/gather.py" --root "$root" --pkg "$name" --out "$out" --exclude "$out/held-out.jsonl" \
        --max-bytes $((max_package_mb * 1000000)) "$@")"
  local files bytes skipped
  IFS=$'\t' read -r files bytes skipped <<<"$res"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$version" "$license" "$files" "$bytes" "$skipped" >"$out/packages/$name.done"
  log "$name $version ($license): $files files, $bytes bytes, skipped $skipped, $((SECONDS - t0)) s"
}

# 2. The Python standard library.
if [ "$stdlib" = 1 ] && [ ! -f "$out/packages/cpython-stdlib.done" ]; then
  py="$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -1)"
  if [ -n "$py" ]; then
    ver="$(dpkg-query -W -f='${Version}' "libpython${py##*/python}-stdlib" 2>/dev/null || basename "$py")"
    gather cpython-stdlib "$ver" PSF-2.0 "$py" --skip-dir test --skip-dir site-packages --skip-dir dist-packages \
      --skip-dir lib2to3/tests --skip-dir idlelib/idle_test --skip-dir tkinter/test
  else
    log "no /usr/lib/python3.N: the standard library is left out"
  fi
fi

# 2b. Local trees named on the command line.
for t in ${trees[@]+"${trees[@]}"}; do
  IFS=: read -r name ver lic dir <<<"$t"
  [ -d "$dir" ] || { echo "corpus.sh: --tree $t: no folder $dir" >&2; exit 2; }
  [ -f "$out/packages/$name.done" ] || gather "$name" "$ver" "$lic" "$dir"
done

# 3. Debian source packages, through a private apt configuration with deb-src enabled.
apt_opts=(-o "Dir::Etc::sourcelist=$out/apt/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$out/apt/lists" -o "Dir::Cache=$out/apt/cache"
          -o "Dir::State::status=/var/lib/dpkg/status" -o "APT::Sandbox::User=root")
if [ ! -f "$out/apt/sources.list" ]; then
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  echo "deb-src http://deb.debian.org/debian $codename main" >"$out/apt/sources.list.tmp"
  mv "$out/apt/sources.list.tmp" "$out/apt/sources.list"
fi
pending=()
for p in ${packages[@]+"${packages[@]}"}; do [ -f "$out/packages/$p.done" ] || pending+=("$p"); done
if [ ${#pending[@]} -gt 0 ] && ! ls "$out"/apt/lists/*Sources* >/dev/null 2>&1; then
  log "apt-get update (deb-src, private lists in $out/apt)"
  apt-get "${apt_opts[@]}" update -qq
fi
n=0
failed=()
for p in ${pending[@]+"${pending[@]}"}; do
  n=$((n + 1))
  log "[$n/${#pending[@]}] $p"
  ver="$(apt-cache "${apt_opts[@]}" showsrc "$p" 2>/dev/null | awk '/^Version:/ && !v {v = $2} END {print v}')"
  if [ -z "$ver" ]; then log "$p: no such source package; skipped"; failed+=("$p"); continue; fi
  work="$out/src/$p"
  rm -rf "$work" && mkdir -p "$work"
  if ! (cd "$work" && apt-get "${apt_opts[@]}" source -qq "$p=$ver" >/dev/null 2>"$work.log"); then
    log "$p: apt-get source failed (see $work.log); skipped (tried again on the next run)"
    rm -rf "$work"; failed+=("$p"); continue
  fi
  tree="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)"
  lic="$(awk 'BEGIN{RS=""} /(^|\n)Files: *\*[ \t]*(\n|$)/ {if (match($0, /License: *[^\n]*/)) {print substr($0, RSTART + 8, RLENGTH - 8); exit}}' "$tree/debian/copyright" 2>/dev/null | sed 's/^ *//')"
  if [ -z "$lic" ] || ! is_permissive "$lic"; then
    log "$p: license '${lic:-unknown}' of Files: * is not on the permissive list; left out"
    printf '%s\t%s\t%s\t0\t0\t{"refused": "license"}\n' "$p" "$ver" "${lic:-unknown}" >"$out/packages/$p.done"
  else
    gather "$p" "$ver" "$lic" "$tree"
  fi
  rm -rf "$work"
done

# 4. The manifest (tokens per package when a vocabulary is given).
{
  printf 'package\tversion\tlicense\tfiles\tbytes\ttokens\tskipped\n'
  for f in "$out"/packages/*.done; do
    IFS=$'\t' read -r name ver lic files bytes skipped <"$f"
    tokens=""
    if [ -n "$vocab" ] && [ "$files" != 0 ]; then
      tokens="$("$snipmeta" vocab count -m "$vocab" "$out"/corpus/"$name"--*.txt | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$ver" "$lic" "$files" "$bytes" "$tokens" "$skipped"
  done
} >"$out/MANIFEST.tsv.tmp"
mv "$out/MANIFEST.tsv.tmp" "$out/MANIFEST.tsv"
python3 - "$out" "$vocab" <<'PY' >"$out/manifest.json.tmp"
import json, sys
out, vocab = sys.argv[1], sys.argv[2]
rows = []
with open(out + "/MANIFEST.tsv") as f:
    head = f.readline().rstrip("\n").split("\t")
    for l in f:
        r = dict(zip(head, l.rstrip("\n").split("\t")))
        for k in ("files", "bytes", "tokens"):
            r[k] = int(r[k]) if r[k] else None
        r["skipped"] = json.loads(r["skipped"])
        rows.append(r)
tot = lambda k: sum(r[k] or 0 for r in rows)
print(json.dumps({"format": 1, "packages": rows, "files": tot("files"), "bytes": tot("bytes"),
                  "tokens": tot("tokens") if vocab else None, "vocab": vocab or None,
                  "held_out_snippets": sum(1 for _ in open(out + "/held-out.jsonl"))}, indent=1))
PY
mv "$out/manifest.json.tmp" "$out/manifest.json"
[ ${#failed[@]} -eq 0 ] || log "not fetched this time (run again to retry): ${failed[*]}"
log "done: $(awk -F'\t' 'NR>1 {f+=$4; b+=$5} END {printf "%d files, %.1f MB", f, b/1e6}' "$out/MANIFEST.tsv") in $out/corpus"
