#!/usr/bin/env python3
"""Per-kernel share of decode time from an nsys cuda_gpu_trace CSV (kernels overlap under programmatic
dependent launch, so each kernel is charged end_i - end_{i-1}: the time it adds to the stream).

    nsys stats --report cuda_gpu_trace --format csv -o PREFIX REPORT.nsys-rep
    scripts/nsys_summary.py PREFIX_cuda_gpu_trace.csv [skip_first_n_kernels]
"""
import csv
import re
import sys
from collections import defaultdict


def short(name):
    name = re.sub(r"\(anonymous namespace\)::|gemma4::cuda::|unnamed>::", "", name)
    name = re.sub(r"\(.*$", "", name)
    return name[:90]


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    kernels = []
    for r in rows:
        name = r.get("Name", "")
        if "[CUDA mem" in name or not r.get("Start (ns)"):
            continue
        start = int(r["Start (ns)"])
        dur = int(r["Duration (ns)"])
        kernels.append((start, start + dur, short(name), r.get("GrdX", "")))
    kernels.sort()
    kernels = kernels[skip:]
    added = defaultdict(float)
    alone = defaultdict(float)
    count = defaultdict(int)
    prev_end = None
    for start, end, name, grid in kernels:
        key = f"{name} ({grid})"
        if prev_end is not None and start - prev_end < 200_000:  # same burst (not across host gaps)
            added[key] += max(0, end - max(prev_end, start)) + max(0, start - prev_end)
        else:
            added[key] += end - start
        alone[key] += end - start
        count[key] += 1
        prev_end = max(prev_end or 0, end)
    total = sum(added.values())
    print(f"{len(kernels)} kernels, {total / 1e3:.1f} us added in all")
    print("| kernel | n | added us (mean) | duration us (mean) | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key in sorted(added, key=lambda k: -added[k]):
        n = count[key]
        print(f"| {key} | {n} | {added[key] / n / 1e3:.2f} | {alone[key] / n / 1e3:.2f} | {100 * added[key] / total:.1f}% |")


if __name__ == "__main__":
    main()
