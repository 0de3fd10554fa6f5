#!/usr/bin/env bash
# Installs every build, test and benchmark dependency from Debian 12's apt. Idempotent.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  liburing-dev libwolfssl-dev libfmt-dev libexpected-dev libtomlplusplus-dev libargon2-dev libtss2-dev
  swtpm swtpm-tools
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-jwt python3-jwcrypto
  util-linux procps redis-server redis-tools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
