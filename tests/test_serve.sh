#!/usr/bin/env bash
# test_serve.sh: `snipmeta serve` end to end with a tiny random model (StarCoder's vocabulary) and
# random adapters. Starts the server on a free port with a bearer token and two workers, then
# checks with curl: every endpoint (health, metrics, adapters, metadata, completions, chat
# completions, the page, load and unload); every bad request (invalid JSON, missing and mistyped
# fields, a 10 MB body, binary code, an unknown task, adapter or path, names with ../, a wrong
# method or token) gets a JSON error with its 4xx code and the server stays up; concurrent
# requests get the same answers; the CLI and the server answer the same for the same snippet and
# settings; a short load run; SIGTERM stops it cleanly. Run under an ASan build (SM_SANITIZE=ON)
# it is the sanitizer run of the server.
# Usage: test_serve.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
snipmeta=$1
shared=$3
vocab="$shared/fixtures/tokenizers/ggml-vocab-starcoder.gguf"
for tool in curl jq; do
    command -v $tool >/dev/null || { echo "test_serve: skipped ($tool is not installed)"; exit 77; }
done
[ -r "$vocab" ] || { echo "test_serve: skipped (no $vocab)"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
status=0
fail() { echo "test_serve: FAIL: $*"; status=1; }

source "$2/tests/web/fixture.sh"
make_fixture "$tmp" "$snipmeta" "$vocab" || exit 1
"$snipmeta" init -q --vocab "$vocab" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 --ctx 1024 --tied --seed 4 -o "$tmp/other.gguf" || exit 1
"$snipmeta" convert lora --init -q -m "$tmp/other.gguf" --rank 4 --alpha 8 --seed 9 --b-std 0.05 -o "$tmp/ad/wrongbase.gguf" || exit 1

token=s3cret
start_server "$tmp" "$snipmeta" --workers 2 -t 1 --token $token || { echo "test_serve: FAIL: the server did not start"; exit 1; }
base="http://127.0.0.1:$port"
echo "test_serve: server on port $port (pid $pid)"

# call NAME EXPECTED_CODE METHOD PATH [curl args...]: checks the code, and that an error is JSON
# (with the token, or with $auth when set)
call() {
    local name=$1 want=$2 method=$3 path=$4
    shift 4
    local code
    code=$(curl -s --path-as-is -o "$tmp/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer ${auth:-$token}" "$@" "$base$path")
    if [ "$code" != "$want" ]; then
        fail "$name: HTTP $code, expected $want: $(head -c 300 "$tmp/body")"
        return 1
    fi
    if [ "$want" -ge 400 ] && ! jq -e '.error.message | type == "string"' "$tmp/body" >/dev/null 2>&1; then
        fail "$name: the $want answer is not a JSON error: $(head -c 300 "$tmp/body")"
        return 1
    fi
    return 0
}
meta() { jq -n --rawfile c "$tmp/snip.py" "{code: \$c} + $1"; }

# the endpoints
call health 200 GET /health && jq -e '.status == "ok"' "$tmp/body" >/dev/null || fail "health body"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/health")
[ "$code" = 200 ] || fail "/health needs no token (got $code)"
call adapters 200 GET /v1/adapters && [ "$(jq '.data | length' "$tmp/body")" = 4 ] || fail "GET /v1/adapters: $(cat "$tmp/body")"
call models 200 GET /v1/models
call page 200 GET / && grep -q '<textarea id="code"' "$tmp/body" || fail "the page is not served"
call page-js 200 GET /app.js
meta '{}' >"$tmp/req.json"
call metadata 200 POST /v1/metadata --data-binary @"$tmp/req.json" || true
cp "$tmp/body" "$tmp/server.json"
jq -e '(.title | type == "string") and (.description | type == "string") and (.tags[0] == "python") and (.links | type == "array") and (.timings.total_ms > 0)' \
    "$tmp/server.json" >/dev/null || fail "metadata answer: $(cat "$tmp/server.json")"
for tag in $(jq -r '.tags[]' "$tmp/server.json"); do grep -qx -- "$tag" "$tmp/ad/tags.txt" || fail "tag '$tag' is not in tags.txt"; done
for link in $(jq -r '.links[]' "$tmp/server.json"); do grep -qxF -- "$link" "$tmp/ad/links.txt" || fail "link '$link' is not in links.txt"; done
[ "$(jq '.tags | length' "$tmp/server.json")" = "$(jq '.tags | unique | length' "$tmp/server.json")" ] || fail "duplicate tags"
echo "test_serve: metadata: $(jq -c 'del(.timings)' "$tmp/server.json" | head -c 300)"

# the CLI answers the same (one thread each, as the server's workers here)
"$snipmeta" all "$tmp/snip.py" -m "$tmp/base.gguf" --adapters "$tmp/ad" --json -t 1 >"$tmp/cli.json" || fail "the CLI failed"
if [ "$(jq -cS 'del(.timings)' "$tmp/cli.json")" != "$(jq -cS 'del(.timings)' "$tmp/server.json")" ]; then
    fail "CLI and server differ:"; jq -cS 'del(.timings)' "$tmp/cli.json" "$tmp/server.json"
else echo "test_serve: CLI == server (all, greedy)"; fi
meta '{tasks: ["tags", "title"], temperature: 1.2, seed: 7}' >"$tmp/req.json"
call metadata-sampled 200 POST /v1/metadata --data-binary @"$tmp/req.json" && cp "$tmp/body" "$tmp/server2.json"
"$snipmeta" tags "$tmp/snip.py" -m "$tmp/base.gguf" --adapters "$tmp/ad" --json -t 1 --temp 1.2 --seed 7 >"$tmp/cli2.json"
"$snipmeta" title "$tmp/snip.py" -m "$tmp/base.gguf" --adapters "$tmp/ad" --json -t 1 --temp 1.2 --seed 7 >"$tmp/cli3.json"
if [ "$(jq -c '[.tags, .title]' "$tmp/server2.json")" != "$(jq -sc '[.[0].tags, .[1].title]' "$tmp/cli2.json" "$tmp/cli3.json")" ]; then
    fail "CLI and server differ when sampling: $(jq -c '[.tags, .title]' "$tmp/server2.json") vs $(jq -sc '[.[0].tags, .[1].title]' "$tmp/cli2.json" "$tmp/cli3.json")"
else echo "test_serve: CLI == server (tags and title, temperature 1.2, seed 7)"; fi
"$snipmeta" links - --lang python -m "$tmp/base.gguf" --adapters "$tmp/ad" -t 1 <"$tmp/snip.py" >"$tmp/cli_links.txt"
[ "$(cat "$tmp/cli_links.txt")" = "$(jq -r '.links[]' "$tmp/server.json")" ] || fail "links text from stdin differs from the server's"

# the CLI's own errors and text output
cli() { "$snipmeta" "$@" -m "$tmp/base.gguf" --adapters "$tmp/ad" -t 1 >"$tmp/cli.out" 2>"$tmp/cli.err"; }
mkdir -p "$tmp/no-models"   # no -m and no bundled default where SNIPMETA_MODELS points: a usage error
SNIPMETA_MODELS="$tmp/no-models" "$snipmeta" all "$tmp/snip.py" >/dev/null 2>"$tmp/cli.err"; rc=$?
[ $rc = 2 ] && grep -q -- "-m BASE.gguf --adapters DIR" "$tmp/cli.err" || fail "no -m: exit $rc: $(cat "$tmp/cli.err")"
echo "hello world" | cli title -; rc=$?
[ $rc = 2 ] && grep -q -- "--lang" "$tmp/cli.err" || fail "unknown language: exit $rc: $(cat "$tmp/cli.err")"
printf 'a\0b' | cli title - --lang c; rc=$?
[ $rc = 2 ] || fail "binary input: exit $rc"
cli tags "$tmp/snip.py" --lang 'C++'; rc=$?
[ $rc = 2 ] || fail "a bad --lang: exit $rc"
cli all "$tmp/snip.py" && [ "$(sed -n 's/^Tags: *//p' "$tmp/cli.out")" = "$(jq -r '.tags | join(", ")' "$tmp/server.json")" ] &&
    [ "$(sed -n 's/^Title: *//p' "$tmp/cli.out")" = "$(jq -r .title "$tmp/server.json")" ] || fail "text output of all: $(cat "$tmp/cli.out")"
cli describe "$tmp/snip.py" && [ "$(cat "$tmp/cli.out")" = "$(jq -r .description "$tmp/server.json")" ] || fail "describe: $(cat "$tmp/cli.out")"

# concurrent requests: all answered, all the same
meta '{}' >"$tmp/req.json"
for i in $(seq 1 8); do
    curl -s -H "Authorization: Bearer $token" --data-binary @"$tmp/req.json" "$base/v1/metadata" >"$tmp/par$i.json" &
done
wait_fail=0
for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j" || wait_fail=1; done
[ $wait_fail = 0 ] || fail "a concurrent request failed"
for i in $(seq 1 8); do
    [ "$(jq -cS 'del(.timings)' "$tmp/par$i.json")" = "$(jq -cS 'del(.timings)' "$tmp/server.json")" ] || fail "concurrent answer $i differs: $(head -c 200 "$tmp/par$i.json")"
done
echo "test_serve: 8 concurrent requests, same answers"

# completions, adapters at run time
call completion 200 POST /v1/completions -d '{"model": "title", "prompt": "def add(a, b):", "max_tokens": 8}' &&
    jq -e '.object == "text_completion" and (.choices[0].text | type == "string") and .usage.completion_tokens <= 8 and .model == "title"' "$tmp/body" >/dev/null ||
    fail "completion body: $(cat "$tmp/body")"
call completion-base 200 POST /v1/completions -d '{"prompt": "x = ", "max_tokens": 4, "stop": ["\n"]}'
call chat 200 POST /v1/chat/completions -d '{"adapter": "tags", "messages": [{"role": "user", "content": "Language: go\nCode:\nfunc f() {}\n### Tags:\n"}], "max_tokens": 6}' &&
    jq -e '.object == "chat.completion" and .choices[0].message.role == "assistant" and (.choices[0].message.content | type == "string")' "$tmp/body" >/dev/null ||
    fail "chat body: $(cat "$tmp/body")"
call load 201 POST /v1/adapters/extra
call load-twice 409 POST /v1/adapters/extra
call completion-extra 200 POST /v1/completions -d '{"model": "extra", "prompt": "hello", "max_tokens": 3}'
[ "$(curl -s -H "Authorization: Bearer $token" "$base/v1/adapters" | jq '.data | length')" = 5 ] || fail "extra not listed"
call unload 200 DELETE /v1/adapters/extra
call unload-twice 404 DELETE /v1/adapters/extra
call completion-unloaded 404 POST /v1/completions -d '{"model": "extra", "prompt": "hello", "max_tokens": 3}'
call load-wrong-base 400 POST /v1/adapters/wrongbase
call load-missing 404 POST /v1/adapters/nothere

# bad requests
auth=wrong call wrong-token 401 GET /v1/adapters
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST -d '{}' "$base/v1/metadata")
[ "$code" = 401 ] || fail "no Authorization header: HTTP $code"
auth=wrong call metrics-wrong-token 401 GET /metrics
auth=${token}x call token-prefix 401 GET /v1/adapters
call invalid-json 400 POST /v1/metadata -d '{"code": "x",'
call not-object 400 POST /v1/metadata -d '["code"]'
call empty-body 400 POST /v1/metadata
call missing-code 400 POST /v1/metadata -d '{"lang": "python"}'
call code-not-string 400 POST /v1/metadata -d '{"code": 42}'
call empty-code 400 POST /v1/metadata -d '{"code": "   "}'
call binary-nul 400 POST /v1/metadata -d '{"code": "ab\u0000cd", "lang": "c"}'
call binary-control 400 POST /v1/metadata -d '{"code": "\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000e\u000f", "lang": "c"}'
printf '{"code": "\xff\xfe\x00\x01", "lang": "c"}' >"$tmp/bin.json"
call binary-bytes 400 POST /v1/metadata --data-binary @"$tmp/bin.json"
call bad-lang 400 POST /v1/metadata -d '{"code": "int x;", "lang": "C++"}'
call no-lang 400 POST /v1/metadata -d '{"code": "hello there"}'
call unknown-task 400 POST /v1/metadata -d '{"code": "int x;", "lang": "c", "tasks": ["title", "poem"]}'
call tasks-type 400 POST /v1/metadata -d '{"code": "int x;", "lang": "c", "tasks": 3}'
call bad-temperature 400 POST /v1/metadata -d '{"code": "int x;", "lang": "c", "temperature": "hot"}'
head -c 10485760 /dev/zero | tr '\0' 'a' | sed 's/^/{"code": "/; s/$/"}/' >"$tmp/big.json"
call body-10mb 413 POST /v1/metadata --data-binary @"$tmp/big.json"
call wrong-method 405 GET /v1/metadata
call unknown-path 404 GET /v1/nothing
call unknown-page 404 GET /nothing.html
call unknown-model 404 POST /v1/completions -d '{"model": "gpt-4", "prompt": "x"}'
call unknown-adapter 404 POST /v1/chat/completions -d '{"adapter": "nope", "messages": [{"role": "user", "content": "x"}]}'
call dotdot-adapter 400 POST /v1/completions -d '{"adapter": "../title", "prompt": "x"}'
call dotdot-load 400 POST /v1/adapters/../title
call dotdot-load-encoded 400 POST /v1/adapters/%2e%2e%2ftitle
call dotdot-delete 400 DELETE /v1/adapters/..
call hidden-load 400 POST /v1/adapters/.hidden
call missing-prompt 400 POST /v1/completions -d '{"max_tokens": 3}'
call missing-messages 400 POST /v1/chat/completions -d '{"model": "title"}'
call bad-messages 400 POST /v1/chat/completions -d '{"messages": [{"role": "user"}]}'
call stream 400 POST /v1/completions -d '{"prompt": "x", "stream": true}'
call too-many-tokens 400 POST /v1/completions -d '{"prompt": "x", "max_tokens": 100000}'
call n-2 400 POST /v1/completions -d '{"prompt": "x", "n": 2}'
call unload-task 200 DELETE /v1/adapters/links
call task-without-adapter 404 POST /v1/metadata -d '{"code": "int x;", "lang": "c", "tasks": ["links"]}'
call reload-task 201 POST /v1/adapters/links
call still-up 200 GET /health

# a short load run: mixed tasks from 8 clients
meta '{tasks: ["title"]}' >"$tmp/t.json"
meta '{tasks: ["tags", "links"]}' >"$tmp/tl.json"
load_fail=0
for c in $(seq 1 8); do
    (for i in $(seq 1 6); do
        f="$tmp/req.json"; [ $((i % 3)) = 1 ] && f="$tmp/t.json"; [ $((i % 3)) = 2 ] && f="$tmp/tl.json"
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" --data-binary @"$f" "$base/v1/metadata")
        [ "$code" = 200 ] || exit 1
    done) &
done
for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j" || load_fail=1; done
[ $load_fail = 0 ] || fail "a request of the load run failed"
call metrics 200 GET /metrics
grep -q '^snipmeta_requests_total{endpoint="metadata",code="2xx"} [0-9]' "$tmp/body" || fail "metrics lack the metadata count"
grep -q '^snipmeta_request_duration_seconds_bucket{endpoint="metadata",le="+Inf"}' "$tmp/body" || fail "metrics lack the histogram"
grep -q '^# TYPE snipmeta_queue_depth gauge' "$tmp/body" || fail "metrics lack the queue gauge"
echo "test_serve: load run: $(sed -n 's/^snipmeta_requests_total{endpoint="metadata",code="2xx"} //p' "$tmp/body") metadata requests answered"

kill -TERM $pid
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then fail "the server did not stop on SIGTERM"; kill -9 $pid
else
    wait $pid; rc=$?
    [ $rc = 0 ] || fail "the server exited with $rc after SIGTERM: $(tail -5 "$tmp/serve.log")"
fi
pid=
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$tmp/serve.log"; then fail "sanitizer report:"; cat "$tmp/serve.log"; fi
[ $status = 0 ] && echo "test_serve: ok"
exit $status
