#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs the dependencies on
# Debian 12, configures and builds from scratch, and runs every test through
# ctest, whose summary ends the output.
#
#   bash tests/run.sh            # build in ./build (removed first)
#   TWIST_BUILD_DIR=/tmp/b bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
# GPT-2's tokenizer files, for the tokenizer's tests against reference encoders.
bash deploy/fetch-tokenizer.sh

build=${TWIST_BUILD_DIR:-build}
jobs=$(nproc)
rm -rf "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
cd "$build"
ctest -j "$jobs" --output-on-failure --timeout 600
