#!/usr/bin/env bash
# README command 2 (and .ci/run): install every dependency, then build and run the whole test
# suite three times: gcc with -Werror (ci), clang ASan+UBSan (asan), clang TSan (tsan).
# Any failing build or test fails the script. LA_PRESETS="ci asan" narrows the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
presets=${LA_PRESETS:-ci asan tsan}
for preset in $presets; do
  echo "=== workflow preset: $preset"
  start=$SECONDS
  cmake --workflow --preset "$preset"
  echo "=== $preset passed in $((SECONDS - start)) s"
done
