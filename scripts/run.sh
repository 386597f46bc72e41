#!/usr/bin/env bash
# scripts/run.sh [gemma4 generate options]: set up (Debian packages, build) and run the main job,
# text generation. With no arguments it uses the tiny synthetic model shipped in tests/models/.
#   scripts/run.sh                                   # tiny model, a short prompt, 64 tokens
#   scripts/run.sh --model MODEL.gguf --prompt "..." [--device cuda] [-n 256] [--temp 0.7] ...
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh > /dev/null
if [ ! -x build/examples/gemma4 ] || [ -n "$(find src cpu cuda include examples -newer build/examples/gemma4 -print -quit 2>/dev/null)" ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
    cmake --build build -j"$(nproc)" --target gemma4-cli > build.log 2>&1 || { tail -40 build.log; exit 1; }
fi
if [ $# -eq 0 ]; then
    set -- --model tests/models/gemma4-tiny-Q8_0.gguf --prompt "Tell me about the old lighthouse." -n 64 --seed 1
fi
exec build/examples/gemma4 generate "$@"
