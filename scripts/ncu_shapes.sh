# ad-hoc: ncu on a few decode GEMV shapes (kernel bench), the key numbers only
for f in "cuda_matmul_decode/q4_K/ffn_down" "cuda_geglu_decode/q4_K" "cuda_matmul_decode/q4_K/attn_q" "cuda_matmul_decode/q6_K/lm_head"; do
  echo "== $f"
  timeout 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis -k regex:gemv_q8 --launch-skip 3 --launch-count 1 ./build-dev/bench/gemma4-kernel-bench --benchmark_filter="$f" --benchmark_min_time=0.01s 2>&1 | grep -E "Duration|DRAM Throughput|Issued Ipc|Registers Per|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Executed Ipc A"
done
