#!/usr/bin/env bash
# build.sh [CMAKE TARGET...]: install the Debian packages that are missing
# (scripts/deps.sh; ECTOSYNC_SKIP_DEPS=1 skips that), build the extension
# with warnings as errors, and build the client project: every target, or
# the ones named.  test.sh, demo.sh and bench.sh start with it.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${ECTOSYNC_SKIP_DEPS:-0}" == 1 ]] || scripts/deps.sh
jobs=$(nproc)
make -s -j"$jobs" >/dev/null
cmake -S client -B client/build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build client/build -j"$jobs" "${targets[@]}" >/dev/null
