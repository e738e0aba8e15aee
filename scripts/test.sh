#!/usr/bin/env bash
# Installs what is needed, builds Portico twice (ASan+UBSan for the unit tests, then the release
# build) and runs the whole test suite: unit tests, fuzz corpora, integration tests.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/install-deps.sh

echo "== sanitizer build (ASan + UBSan): unit tests and fuzz corpora"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_SANITIZE=ON \
  -DPORTICO_BUILD_BINARY=OFF >/dev/null
ninja -C build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -L unit --output-on-failure -j"$jobs")

echo "== plain Release build (-O3): the binary compiles (GCC's -O3 warnings differ from -O2's)"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build-release -j"$jobs" portico

echo "== release build: every test"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$jobs"
cd build
# Unit tests in parallel; integration tests one at a time (they measure timing and start servers).
ctest -L unit --output-on-failure -j"$jobs"
ctest -LE unit --output-on-failure
