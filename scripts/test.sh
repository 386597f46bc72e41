#!/usr/bin/env bash
# scripts/test.sh: set up and run the whole test suite on a fresh machine (the README's test command;
# .ci/run calls it). Steps, each with a visible result:
#   1. Debian packages (scripts/install-deps.sh) and the real Gemma 4 vocabulary (scripts/fetch-vocab.sh)
#   2. configure + build (CPU; the CUDA backend compiles and links too when nvcc is present)
#   3. ctest: every Catch2 case (CUDA cases skip without a GPU)
#   4. the GGUF and quant suites again under ASan+UBSan
#   5. cmake --install + a consumer project using find_package(gemma4)
# Options: --quick skips steps 4 and 5.  Env: JOBS (default: nproc), BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
BUILD="${BUILD_DIR:-build}"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
T0=$(date +%s)
step() { printf '\n==== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
summary=()

step "dependencies"
./scripts/install-deps.sh
if [ -x scripts/fetch-vocab.sh ]; then
    if GEMMA4_VOCAB="$(./scripts/fetch-vocab.sh)"; then export GEMMA4_VOCAB; else echo "real vocabulary unavailable: its tests will skip"; fi
fi

step "configure + build ($BUILD, -j$JOBS)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
grep -E "GEMMA4|CUDA" "$BUILD.configure.log" || true
cmake --build "$BUILD" -j"$JOBS"

step "tests (ctest)"
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" | tee "$BUILD.ctest.log"
summary+=("ctest: $(grep -E 'tests passed' "$BUILD.ctest.log" | tail -n1)")

if [ "$QUICK" = 0 ]; then
    step "GGUF + quant suites under ASan+UBSan"
    cmake -S . -B "$BUILD-asan" -DCMAKE_BUILD_TYPE=Debug -DGEMMA4_SANITIZE=ON -DGEMMA4_CUDA=OFF \
          -DGEMMA4_BENCH=OFF -DGEMMA4_EXAMPLES=OFF > "$BUILD-asan.configure.log" 2>&1 || { cat "$BUILD-asan.configure.log"; exit 1; }
    cmake --build "$BUILD-asan" -j"$JOBS" --target gemma4_unit_tests
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$BUILD-asan/tests/gemma4_unit_tests" "[gguf],[quant]" | tee "$BUILD-asan.log"
    summary+=("asan: $(grep -E '^(All tests passed|test cases:)' "$BUILD-asan.log" | tail -n1)")

    step "install + find_package(gemma4) consumer"
    rm -rf "$BUILD-install" "$BUILD-consumer"
    cmake --install "$BUILD" --prefix "$PWD/$BUILD-install" > /dev/null
    cmake -S tests/consumer -B "$BUILD-consumer" -DCMAKE_PREFIX_PATH="$PWD/$BUILD-install" > "$BUILD-consumer.log" 2>&1 \
        || { cat "$BUILD-consumer.log"; exit 1; }
    cmake --build "$BUILD-consumer" -j"$JOBS" >> "$BUILD-consumer.log" 2>&1 || { cat "$BUILD-consumer.log"; exit 1; }
    "$BUILD-consumer/consumer"
    summary+=("consumer: find_package(gemma4) build and run OK")
fi

step "summary ($(( $(date +%s) - T0 )) s)"
printf '%s\n' "${summary[@]}"
