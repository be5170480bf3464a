#!/usr/bin/env bash
# setup.sh: installs the Debian packages snipmeta needs (when missing) and builds it in build/.
# Usage: scripts/setup.sh            (as root, or with sudo available)
#        scripts/setup.sh --with-test-tools   also chromium and wrk (tests/test_web.sh, bench/bench_serve_load.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc cmake make pkg-config libpcre2-dev libcurl4-openssl-dev libsqlite3-dev libjansson-dev libmicrohttpd-dev jq
          libopenmpi-dev openmpi-bin) # Open MPI, for data-parallel training: 35 packages, ~60 MB, ~25 s
[ "${1:-}" = "--with-test-tools" ] && packages+=(chromium wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
