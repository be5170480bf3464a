# fixture.sh: sourced by tests/test_serve.sh and tests/test_web.sh: a tiny random base model
# (StarCoder's vocabulary), random task adapters with non-zero B, tags.txt and links.txt, a
# snippet, and a server started on a free port.
#   make_fixture DIR SNIPMETA VOCAB     writes DIR/base.gguf, DIR/ad/*, DIR/snip.py
#   start_server DIR SNIPMETA ARGS...   starts `snipmeta serve` on port 0, sets $pid and $port
make_fixture() {
    local dir=$1 sm=$2 vocab=$3 seed=20 t
    "$sm" init -q --vocab "$vocab" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 --ctx 1024 --tied --seed 3 -o "$dir/base.gguf" || return 1
    mkdir -p "$dir/ad"
    for t in title description tags links extra; do
        "$sm" convert lora --init -q -m "$dir/base.gguf" --rank 4 --alpha 8 --seed $((seed++)) --b-std 0.05 --task $t -o "$dir/ad/$t.gguf" || return 1
    done
    printf 'python\nc\ngo\nsorting\nalgorithm\nstring-parsing\nhttp\nhttp-client\nfile-io\nrecursion\njson\nregex\n' >"$dir/ad/tags.txt"
    printf 'https://docs.python.org/3/library/functions.html#sorted\nhttps://docs.python.org/3/library/json.html\nhttps://go.dev/doc/effective_go\n' >"$dir/ad/links.txt"
    cat >"$dir/snip.py" <<'SNIPPET'
def merge_sorted(a, b):
    """Merge two sorted lists into one sorted list."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    return out + a[i:] + b[j:]
SNIPPET
}

start_server() {
    local dir=$1 sm=$2
    shift 2
    "$sm" serve -m "$dir/base.gguf" --adapters "$dir/ad" --port 0 "$@" 2>"$dir/serve.log" &
    pid=$!
    port=
    for _ in $(seq 1 300); do
        port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$dir/serve.log")
        [ -n "$port" ] && return 0
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/serve.log"
    return 1
}
