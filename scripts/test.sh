#!/usr/bin/env bash
# Installs what is needed, builds Portico twice (ASan+UBSan for the unit tests, then the -O3
# Release build) and runs the whole test suite: unit tests, fuzz corpora, integration tests.
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

echo "== Release build (-O3, as operators build it): every test"
# One optimised build serves both checks: it proves a plain Release configuration compiles under -Werror
# (GCC's -O3 warnings differ from -O2's) and it is what the integration tests and benchmarks run.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
cd build
# Unit tests in parallel; integration tests one at a time (they measure timing and start servers).
ctest -L unit --output-on-failure -j"$jobs"
ctest -LE unit --output-on-failure
