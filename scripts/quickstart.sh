#!/usr/bin/env bash
# Installs what is needed, builds Portico and starts it on the bundled example (examples/quickstart):
# both planes in one process, nothing else to start. Try: curl http://127.0.0.1:8080/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$(nproc)" portico
exec ./build/portico run examples/quickstart "$@"
