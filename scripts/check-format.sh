#!/usr/bin/env bash
# Fails when a C++ file tracked by git is not formatted with the checked-in .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h')
clang-format --dry-run -Werror "${files[@]}"
