#!/usr/bin/env bash
# demo.sh: the main job on the bundled default, offline: sets up and builds, then gives a code
# snippet its title, description, tags and links with models/snipmeta-base.gguf and the four
# adapters in models/adapters (models/README.md).
# Usage: scripts/demo.sh [FILE|-] [snipmeta all options, e.g. --json]
#        (default: examples/lru_cache.py; examples/ holds a few more)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
[ -f models/snipmeta-base.gguf ] || { echo "demo: models/snipmeta-base.gguf is missing (see models/README.md)" >&2; exit 2; }
file="${1:-examples/lru_cache.py}"
(($#)) && shift
echo "== $file" >&2
build/snipmeta all "$file" "$@"
