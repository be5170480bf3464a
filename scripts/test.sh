#!/usr/bin/env bash
# test.sh: sets up, builds and runs the whole test suite: every test in build/, then again under
# AddressSanitizer and UBSan in build-asan/ every test but the llama.cpp interop and MPI ones and
# the slow whole-model gradient and PyTorch checks (parsers, fuzzing, kernels, tokenizers, the
# model, LoRA files, training loop and resume, the data pipeline, constrained decoding, the server).
# Tests that need ../shared (fixtures) or node-llama-cpp skip with a message when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-tools
scripts/setup-interop.sh || echo "test: node-llama-cpp unavailable; the llama.cpp interop tests will skip" >&2

# Tests run side by side, each with its own OpenMP threads: idle threads sleep rather than spin.
export OMP_WAIT_POLICY=passive
(cd build && ctest --output-on-failure -j "$(nproc)")

cmake -S . -B build-asan -DSM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j "$(nproc)" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$(nproc)" \
  -R 'fuzz|gguf|tokenizer|kernels|serve|constrain|lora|metadata|label|tasks|store|dataset|collect|batch|optim|checkpoint|resume|metrics|baseline|bpe_train|model|sample|llama2c|quantize|tensor_types' \
  -E 'interop|mpi')
echo "test: all passed"
