#!/usr/bin/env bash
# test_web.sh: the web page in headless Chromium (Debian's chromium package). Starts the server
# with a tiny random model, loads the page with ?auto=1&code=...&lang=python (the page fills the
# form from the query and submits it), waits for the fetch through Chromium's virtual time
# budget, and reads the final DOM (--dump-dom): the state must be "done", the title and the
# description filled, the tags those of the API for the same snippet (the language first), the
# links those of the API, each task with its timing. A second load asks for the tags alone.
# Skips when chromium is not installed (scripts/setup.sh --with-test-tools installs it).
# Usage: test_web.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
snipmeta=$1
vocab="$3/fixtures/tokenizers/ggml-vocab-starcoder.gguf"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "test_web: skipped (chromium is not installed: scripts/setup.sh --with-test-tools)"; exit 77; }
for tool in curl jq; do command -v $tool >/dev/null || { echo "test_web: skipped ($tool is not installed)"; exit 77; }; done
[ -r "$vocab" ] || { echo "test_web: skipped (no $vocab)"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
status=0
fail() { echo "test_web: FAIL: $*"; status=1; }

source "$2/tests/web/fixture.sh"
make_fixture "$tmp" "$snipmeta" "$vocab" || exit 1
start_server "$tmp" "$snipmeta" -t 1 || { echo "test_web: FAIL: the server did not start"; exit 1; }
base="http://127.0.0.1:$port"

# load URL: the DOM after the page's scripts ran, in $tmp/dom.html
load() {
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --no-first-run --disable-dev-shm-usage --user-data-dir="$tmp/profile" \
        --virtual-time-budget=60000 --dump-dom "$1" >"$tmp/dom.html" 2>"$tmp/chromium.log"
}
# field ID [TAG]: the inside of the element with that id, up to the first </TAG> (default: dd,
# output or p), on one line
field() { tr '\n' ' ' <"$tmp/dom.html" | sed -n "s/.*id=\"$1\"[^>]*>\(.*\)/\1/p" | sed "s/<\/\(${2:-dd\\|output\\|p}\)>.*//" ; }

code=$(jq -sRr @uri "$tmp/snip.py")
load "$base/?auto=1&lang=python&code=$code" || fail "chromium failed ($?): $(tail -3 "$tmp/chromium.log")"
state=$(field state)
[ "$state" = done ] || fail "the page's state is '$state', not done; status: $(field status)"
jq -n --rawfile c "$tmp/snip.py" '{code: $c, lang: "python"}' | curl -s --data-binary @- "$base/v1/metadata" >"$tmp/api.json"
title=$(field title)
[ -n "$title" ] || fail "no title on the page"
[ -n "$(field description)" ] || fail "no description on the page"
page_tags=$(field tags | grep -o '<span class="tag">[^<]*</span>' | sed 's/<[^>]*>//g' | paste -sd, -)
api_tags=$(jq -r '.tags | join(",")' "$tmp/api.json")
[ -n "$page_tags" ] && [ "$page_tags" = "$api_tags" ] || fail "tags on the page '$page_tags', from the API '$api_tags'"
case "$page_tags" in python*) ;; *) fail "the first tag is not the language: '$page_tags'" ;; esac
page_links=$(field links | grep -o 'href="[^"]*"' | sed 's/href="//; s/"$//' | paste -sd, -)
api_links=$(jq -r '.links | join(",")' "$tmp/api.json")
[ "$page_links" = "$api_links" ] || fail "links on the page '$page_links', from the API '$api_links'"
[ -n "$page_links" ] || [ "$(field links)" = "(none)" ] || fail "the links field is neither links nor (none): $(field links)"
for t in title description tags links; do
    case "$(field ms-$t span)" in *" ms") ;; *) fail "no timing for $t: '$(field ms-$t span)'" ;; esac
done
echo "test_web: page filled: title '$(echo "$title" | head -c 60)', tags $page_tags, links ${page_links:-(none)}"

load "$base/?auto=1&lang=go&tasks=tags&code=$(printf 'func add(a, b int) int {\n\treturn a + b\n}\n' | jq -sRr @uri)" || fail "chromium failed on the second load"
[ "$(field state)" = done ] || fail "tags alone: state '$(field state)': $(field status)"
[ -z "$(field title)" ] || fail "tags alone: a title was filled"
case "$(field tags)" in '<span class="tag">go</span>'*) ;; *) fail "tags alone: '$(field tags)' does not start with go" ;; esac

load "$base/?auto=1&code=" || true
[ "$(field state)" != done ] || fail "an empty snippet was submitted"
[ $status = 0 ] && echo "test_web: ok"
exit $status
