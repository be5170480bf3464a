#!/usr/bin/env bash
# test_tokenizer_vocabs.sh: llama.cpp's tokenizer conformance vectors against `snipmeta tokenize`.
#
# For every ggml-vocab-NAME.gguf in ../shared/fixtures/tokenizers with .inp and .out files: the
# .inp file is each test string followed by "\n__ggml_vocab_test__\n" (llama.cpp's test-tokenizer-0
# splits on that whole delimiter, so the newline before it belongs to the delimiter, not to the
# string), and line i of .out holds the ids of string i (space-separated, no BOS). Each string is
# tokenized with `snipmeta tokenize -m VOCAB --ids` and compared with its line.
# Arguments: the snipmeta binary, the source dir, the shared dir. Exit 0 all pass, 1 any
# mismatch, 77 when the fixtures are absent.
set -u
export LC_ALL=C
bin=$1
dir=${3:-}/fixtures/tokenizers
if [ -z "${3:-}" ] || [ ! -d "$dir" ]; then
    echo "skip: no tokenizer fixtures at '$dir'"
    exit 77
fi

delim=$'\n__ggml_vocab_test__\n'
fail=0
n_vocabs=0
for vocab in "$dir"/ggml-vocab-*.gguf; do
    [ -f "$vocab.inp" ] && [ -f "$vocab.out" ] || continue
    n_vocabs=$((n_vocabs + 1))
    name=$(basename "$vocab")
    content=$(cat "$vocab.inp"; printf x)
    content=${content%x}
    mapfile -t expected < "$vocab.out"
    i=0 pass=0
    while [[ $content == *"$delim"* ]]; do
        text=${content%%"$delim"*}
        content=${content#*"$delim"}
        want=$(echo ${expected[$i]:-})
        got=$(printf '%s' "$text" | "$bin" tokenize -m "$vocab" --ids 2>&1)
        rc=$?
        got=$(echo $got)
        if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then
            pass=$((pass + 1))
        else
            fail=1
            printf '%s: test %d MISMATCH for %q\n  expected: %s\n  got:      %s (exit %d)\n' "$name" "$i" "$text" "$want" "$got" "$rc"
        fi
        i=$((i + 1))
    done
    if [ $i -ne ${#expected[@]} ]; then
        echo "$name: $i test strings but ${#expected[@]} expected lines"
        fail=1
    fi
    echo "$name: $pass/$i passed"
done
# The CLI around it: usage errors, the one-token-per-line form, BOS flags.
gpt2=$dir/ggml-vocab-gpt-2.gguf
spm=$dir/ggml-vocab-llama-spm.gguf
check() { # description, expected, actual
    if [ "$2" != "$3" ]; then echo "cli: $1: expected '$2', got '$3'"; fail=1; fi
}
if [ -f "$gpt2" ] && [ -f "$spm" ]; then
    "$bin" tokenize --help > /dev/null; check "--help exit code" 0 $?
    "$bin" tokenize < /dev/null 2> /dev/null; check "missing -m exit code" 2 $?
    "$bin" tokenize -m "$gpt2" --bogus < /dev/null 2> /dev/null; check "unknown flag exit code" 2 $?
    "$bin" tokenize -m "$dir/README.md" < /dev/null 2> /dev/null; check "not a GGUF exit code" 2 $?
    check "lines" "$(printf '15496\tHello\n198\t\\n\n50256\t<|endoftext|>\n187\t\\xFF')" \
        "$(printf 'Hello\n<|endoftext|>\xff' | "$bin" tokenize -m "$gpt2")"
    check "--no-parse-special" "27 91 437 1659 5239 91 29" \
        "$(printf '<|endoftext|>' | "$bin" tokenize -m "$gpt2" --ids --no-parse-special)"
    check "--bos" "1 15043" "$(printf 'Hello' | "$bin" tokenize -m "$spm" --ids --bos)"
    check "--add-special" "1 15043" "$(printf 'Hello' | "$bin" tokenize -m "$spm" --ids --add-special)"
    check "--add-special --bos" "1 15043" "$(printf 'Hello' | "$bin" tokenize -m "$spm" --ids --add-special --bos)"
    check "--add-special on gpt-2 adds nothing" "15496" "$(printf 'Hello' | "$bin" tokenize -m "$gpt2" --ids --add-special)"
    echo "cli checks done"
fi
if [ $n_vocabs -eq 0 ]; then
    echo "skip: no ggml-vocab-*.gguf with .inp/.out in $dir"
    exit 77
fi
exit $fail
