#!/usr/bin/env bash
# demo.sh: the main job as far as it exists today. Sets up and builds, then runs the engine on the
# real pretrained model in ../shared/fixtures/stories260K (converted to GGUF once, into build/):
# a greedy continuation of a prompt. When the bundled default model and its four adapters land in
# models/ (issue 6), this becomes `snipmeta all FILE` on a snippet.
# Usage: scripts/demo.sh ["PROMPT"]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
fx=../shared/fixtures/stories260K
[ -f "$fx/stories260K.bin" ] || { echo "demo: $fx is missing (the shared fixtures sit beside the project)" >&2; exit 2; }
[ -f build/stories260K.gguf ] || build/snipmeta convert llama2c "$fx/stories260K.bin" "$fx/tok512.bin" -o build/stories260K.gguf
build/snipmeta generate -m build/stories260K.gguf -p "${1:-Once upon a time}" -n 120 --temp 0 -t 2
