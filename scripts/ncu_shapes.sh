#!/usr/bin/env bash
# scripts/ncu_shapes.sh: Nsight Compute on single decode GEMV shapes of the kernel benchmark (caches flushed
# before each launch, clocks left alone): duration, DRAM throughput, issue rate, registers, occupancy.
# Run on the GPU machine after scripts/device.sh has built build-dev. SHAPES overrides the benchmark filters.
set -uo pipefail
cd "$(dirname "$0")/.."
SHAPES="${SHAPES:-cuda_matmul_decode/q4_K/ffn_down cuda_geglu_decode/q4_K cuda_matmul_decode/q4_K/attn_q cuda_matmul_decode/q6_K/lm_head}"
for f in $SHAPES; do
    echo "== $f"
    timeout 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats \
        --section WarpStateStats --section ComputeWorkloadAnalysis -k regex:gemv_q8 --launch-skip 3 --launch-count 1 \
        ./build-dev/bench/gemma4-kernel-bench --benchmark_filter="$f" --benchmark_min_time=0.01s 2>&1 |
        grep -E "Duration|DRAM Throughput|Issued Ipc|Registers Per|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Executed Ipc A"
done
