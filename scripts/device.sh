#!/usr/bin/env bash
# scripts/device.sh: everything the GPU machine does, in one call (each call must fit in 10 minutes).
#
#   scripts/device.sh test            build, ctest (CUDA tests for real), compute-sanitizer memcheck and
#                                     racecheck on the CUDA kernel tests, kernel benchmarks
#   scripts/device.sh prepare [LAYERS] build and make the synthetic 12B-shape Q4_K_M file (LAYERS: e.g. 6 for the
#                                     6-layer variant); files stay while the machine is warm
#   scripts/device.sh bench [LAYERS]  the same (reusing them), greedy tokens CUDA vs CPU, gemma4-bench vs llama-bench
#   scripts/device.sh kernels         the kernel tests named by KERNEL_TESTS (Catch2 filter) and the kernel
#                                     benchmarks named by BENCH_FILTER, decode benchmarks also with
#                                     GEMMA4_EXACT_DECODE=1 (the f32 GEMV) for comparison
#   scripts/device.sh memory [LAYERS] GPU memory in use with a session filled to 32768 tokens and to (almost) the
#                                     full 262144-token context (MEMORY_DEPTHS), decoding (gemma4-bench -p 0)
#   scripts/device.sh profile [LAYERS] per-kernel time of decode steps and of one pp512 batch (Nsight Compute,
#                                     gpu__time_duration per launch, clocks left alone), as tables
#
# Needs .devpack/ (../shared/oracle/device-pack.sh .devpack) carried along for `bench`, and .stb/ (stb_image.h and
# libstb.so copied from this machine's libstb-dev) and .catch2/ (Debian's Catch2 2.13 catch.hpp + Catch.cmake)
# for the build. Writes logs and
# JSON under $OUT (or ./out) and prints a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-test}"   # one mode or several, comma-separated: test,prepare
has_mode() { [[ ",$MODE," == *",$1,"* ]]; }
LAYERS="${2:-}"
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
T0=$(date +%s)
log() { printf '[device %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
table=()

log "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n1)"
log "configure + build"
# The GPU machine has no Debian packages: stb (image decoding) travels in .stb/ (header + library).
extra=()
if [ -f .stb/stb_image.h ]; then
    extra+=(-DGEMMA4_STB_INCLUDE_DIR="$PWD/.stb" -DGEMMA4_STB_LIBRARY="$PWD/.stb/libstb.so")
    export LD_LIBRARY_PATH="$PWD/.stb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"  # holds libstb.so.0 too
fi
# ... and Catch2 2.x (it has v3): the single header and its CMake helpers in .catch2/.
[ -f .catch2/catch2/catch.hpp ] && extra+=(-DGEMMA4_CATCH2_DIR="$PWD/.catch2")
cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release -DGEMMA4_CUDA=ON -G Ninja "${extra[@]}" > "$OUT/configure.log" 2>&1 \
    || cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release -DGEMMA4_CUDA=ON "${extra[@]}" > "$OUT/configure.log" 2>&1 \
    || { tail -30 "$OUT/configure.log"; exit 1; }
if ! cmake --build build-dev -j"$(nproc)" > "$OUT/build.log" 2>&1; then
    grep -E "error|Error" "$OUT/build.log" | head -40
    exit 1
fi
log "built"

if has_mode test; then
    log "ctest"
    (cd build-dev && ctest --output-on-failure -j4 --timeout 600) > "$OUT/ctest.log" 2>&1
    table+=("ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -n1)")
    grep -E "Failed|FAILED|\*\*\*" "$OUT/ctest.log" | head -20
    [ "${SKIP_SANITIZER:-0}" = 1 ] || {
    log "compute-sanitizer"
    # racecheck is slow (shared-memory hazards tracked per access): a subset that covers every kernel family.
    racecheck_tests="cuda rms_norm*,cuda softcap*,cuda embedding*,cuda layer_norm*,cuda attention: 2-4*,cuda attention: decode on the small*,cuda attention: small prefill*,cuda matmul matches the CPU for every weight type at edge sizes,cuda gate_up_geglu matches cpu*,cuda gemv_q8 equals a host emulation of its 16-bit x at edge sizes,cuda gemv_q8_norm*"
    for tool in memcheck racecheck; do
        tests="${SANITIZER_TESTS:-[cuda]~[slow]}"
        [ "$tool" = racecheck ] && tests="${RACECHECK_TESTS:-$racecheck_tests}"
        timeout "${SANITIZER_SECONDS:-150}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
            ./build-dev/tests/gemma4_kernel_tests "$tests" > "$OUT/sanitizer-$tool.log" 2>&1
        rc=$?
        table+=("compute-sanitizer $tool: $([ $rc = 0 ] && echo clean || echo "FAILED rc=$rc") ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" | tail -n1))")
    done
    }
    if [ "${SKIP_BENCH:-0}" != 1 ]; then
    log "kernel benchmarks"
    ./build-dev/bench/gemma4-kernel-bench --benchmark_filter="${BENCH_FILTER:-cuda}" --benchmark_min_time=0.2s \
        --benchmark_format=console > "$OUT/kernel-bench.txt" 2>&1
    grep -E "^(BM|Cuda|CUDA|cuda)" "$OUT/kernel-bench.txt" | head -40
    fi
fi

if has_mode kernels; then
    log "kernel tests: ${KERNEL_TESTS:-[cuda]}"
    ./build-dev/tests/gemma4_kernel_tests "${KERNEL_TESTS:-[cuda]}" > "$OUT/kernel-tests.log" 2>&1
    table+=("kernel tests ${KERNEL_TESTS:-[cuda]}: $(grep -E 'test cases|All tests passed' "$OUT/kernel-tests.log" | tail -n1)")
    grep -B2 -A12 -E "FAILED" "$OUT/kernel-tests.log" | head -60
    log "kernel benchmarks: ${BENCH_FILTER:-cuda_matmul_decode|cuda_geglu_decode}"
    for exact in 0 ${BENCH_EXACT:+1}; do
        GEMMA4_EXACT_DECODE=$exact ./build-dev/bench/gemma4-kernel-bench \
            --benchmark_filter="${BENCH_FILTER:-cuda_matmul_decode|cuda_geglu_decode}" --benchmark_min_time=0.2s \
            --benchmark_format=console > "$OUT/kernel-bench-exact$exact.txt" 2>&1
        echo "GEMMA4_EXACT_DECODE=$exact"
        grep -E "^cuda" "$OUT/kernel-bench-exact$exact.txt" | head -40
    done
fi

# The oracle pack (device-pack.sh) is larger than what one call may carry beside the tree, so it may come
# in parts (.devpack*/; bin/llama-bench.xz split into .partNN files) over consecutive calls on the warm
# machine; they are merged into /tmp/devpack.
stage_devpack() {
    mkdir -p /tmp/devpack
    for d in .devpack .devpack?; do [ -d "$d" ] && cp -r "$d"/. /tmp/devpack/; done
    if [ ! -f /tmp/devpack/bin/llama-bench.xz ] && ls /tmp/devpack/bin/llama-bench.xz.part* > /dev/null 2>&1; then
        local parts=(/tmp/devpack/bin/llama-bench.xz.part*)
        [ ${#parts[@]} -ge 2 ] && cat "${parts[@]}" > /tmp/devpack/bin/llama-bench.xz && rm -f "${parts[@]}"
    fi
    [ -f /tmp/devpack/env.sh ] || { echo "no oracle pack: run ../shared/oracle/device-pack.sh .devpack and carry it"; exit 1; }
    source /tmp/devpack/env.sh
}

if has_mode prepare || has_mode bench || has_mode profile || has_mode memory; then
    stage_devpack
    log "make the 12B-shape Q4_K_M file ${LAYERS:+($LAYERS layers)}"
    /tmp/devpack/make-12b.sh Q4_K_M $LAYERS > "$OUT/make-12b.log" 2>&1 || { tail -20 "$OUT/make-12b.log"; exit 1; }
    M=$(ls "$GEMMA4_12B_DIR"${LAYERS:+/layers$LAYERS}/gemma4-12b*-Q4_K_M.gguf | head -n1)
    log "model: $M ($(du -h "$M" | cut -f1))"
fi

if has_mode bench; then
    [ -x /tmp/devpack/bin/llama-bench ] || [ -f /tmp/devpack/bin/llama-bench.xz ] || { echo "llama-bench is not complete in /tmp/devpack"; exit 1; }
    source /tmp/devpack/env.sh
    if [ -n "$LAYERS" ]; then
        log "greedy 32 tokens: CUDA vs CPU"
        for d in cuda cpu; do
            ./build-dev/examples/gemma4 generate --model "$M" --prompt "The old lighthouse keeper" --raw -n 32 --greedy \
                --device $d --quiet > "$OUT/greedy-$d.txt" 2>&1
        done
        if cmp -s "$OUT/greedy-cuda.txt" "$OUT/greedy-cpu.txt"; then table+=("greedy 32 tokens CUDA == CPU: yes")
        else table+=("greedy 32 tokens CUDA == CPU: NO (see greedy-*.txt)"); fi
    fi
    DEPTHS="${DEPTHS:-0,32768}"
    log "gemma4-bench"
    ./build-dev/bench/gemma4-bench -m "$M" --device cuda -p 512 -n 128 -d "$DEPTHS" -r 3 -o json > "$OUT/gemma4-bench.json" 2> "$OUT/gemma4-bench.log"
    cat "$OUT/gemma4-bench.log"
    if [ "${NO_GRAPH_RUN:-1}" = 1 ]; then
        log "gemma4-bench without CUDA graphs (decode only, depth 0)"
        GEMMA4_CUDA_GRAPHS=0 ./build-dev/bench/gemma4-bench -m "$M" --device cuda -p 0 -n 128 -d 0 -r 3 -o json \
            > "$OUT/gemma4-bench-nograph.json" 2> "$OUT/gemma4-bench-nograph.log"
        cat "$OUT/gemma4-bench-nograph.log"
    fi
    if [ -n "${COMPARE_ENV:-}" ]; then
        # e.g. COMPARE_ENV=GEMMA4_PDL=0: the same decode runs with a switch flipped, for before/after numbers.
        log "gemma4-bench with $COMPARE_ENV (decode only)"
        env $COMPARE_ENV ./build-dev/bench/gemma4-bench -m "$M" --device cuda -p 0 -n 128 -d "$DEPTHS" -r 3 -o json \
            > "$OUT/gemma4-bench-compare.json" 2> "$OUT/gemma4-bench-compare.log"
        cat "$OUT/gemma4-bench-compare.log"
        while read -r line; do table+=("$COMPARE_ENV:$line"); done < <(grep "tok/s" "$OUT/gemma4-bench-compare.log")
    fi
    log "llama-bench"
    llama-bench -m "$M" -ngl 99 -fa 1 -p 512 -n 128 -d "$DEPTHS" -r 3 -o json > "$OUT/llama-bench.json" 2> "$OUT/llama-bench.log"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader > "$OUT/gpu-mem.txt" 2>&1
    table+=("$(python3 scripts/bench_table.py "$OUT/gemma4-bench.json" "$OUT/llama-bench.json")")
fi

if has_mode memory; then
    # A session's context is its depth plus 2 x 16 decoded tokens + 1; 262111 + 33 = 262144, the model's limit.
    log "GPU memory at depths ${MEMORY_DEPTHS:-32768,262111}"
    ./build-dev/bench/gemma4-bench -m "$M" --device cuda -p 0 -n 16 -r 1 -d "${MEMORY_DEPTHS:-32768,262111}" -o json \
        > "$OUT/memory.json" 2> "$OUT/memory.log"
    cat "$OUT/memory.log"
    while read -r line; do table+=("$line"); done < <(grep "GPU memory" "$OUT/memory.log")
fi

if has_mode profile; then
    # Kernels only (no launch gaps): each launch is timed alone, caches flushed before it (weights come from HBM).
    for what in "decode:-p 0 -n 4" "prefill:-p 512 -n 0"; do
        name=${what%%:*}
        log "ncu: $name"
        timeout 280 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
            ./build-dev/bench/gemma4-bench -m "$M" --device cuda ${what#*:} -d 0 -r 1 -o json \
            > "$OUT/ncu-$name.csv" 2> "$OUT/ncu-$name.log"
        python3 scripts/ncu_summary.py "$OUT/ncu-$name.csv" "$name (gemma4-bench ${what#*:}, warm-up + 1 run)" \
            > "$OUT/ncu-$name.md" 2>&1
        head -n 28 "$OUT/ncu-$name.md"
    done
fi

log "done"
printf '%s\n' "${table[@]}"
