#!/usr/bin/env bash
# setup-interop.sh: installs node-llama-cpp@3.21.1 (prebuilt llama.cpp CPU libraries, offline
# once installed) under tests/interop/ for the llama.cpp interop tests and benchmarks.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop"
if [ -d node_modules/node-llama-cpp ]; then exit 0; fi
command -v npm >/dev/null || { echo "setup-interop: npm not found" >&2; exit 1; }
npm ci --no-audit --no-fund >/dev/null 2>&1 || npm i -E --no-audit --no-fund node-llama-cpp@3.21.1 >/dev/null
