#!/usr/bin/env bash
# README command 1: install every dependency, build the release preset, run the demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
cmake --workflow --preset release
scripts/demo.sh "$root/build/release"
