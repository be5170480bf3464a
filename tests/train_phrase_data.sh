#!/bin/bash
# train_phrase_data.sh DIR [N]: a small task for stories260K (the training tests use it): story
# openings "Once upon a time, there was a ADJ ANIMAL named NAME." whose completion is always the
# same phrase. N training names (default 10; at most 10), 8 adjectives x 9 animals each; the
# names Zoe and Sam are held out for DIR/validation.jsonl.
out=$1 n=${2:-10}
phrase=" The moon said hello to the frog."
mkdir -p "$out"
: > "$out/train.jsonl"
: > "$out/validation.jsonl"
emit() { printf '{"prompt": "Once upon a time, there was a %s %s named %s.", "completion": "%s"}\n' "$1" "$2" "$3" "$phrase"; }
for name in $(echo Lily Tom Max Sue Ben Anna Tim Mia Lucy Jack | cut -d' ' -f1-"$n") Zoe Sam; do
    for adj in little big happy sad brave shy kind silly; do
        for animal in dog cat bird bunny bear fish duck girl boy; do
            case $name in Zoe|Sam) emit $adj $animal $name >> "$out/validation.jsonl" ;;
                          *) emit $adj $animal $name >> "$out/train.jsonl" ;; esac
        done
    done
done
