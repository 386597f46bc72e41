#!/usr/bin/env python3
"""ncu_summary.py NCU.csv [TITLE]: per-kernel time table from `ncu --csv --metrics gpu__time_duration.sum`.

Groups launches by kernel name (template arguments shortened) and grid, prints count, total and mean time,
and the share of the total, largest first. Used by scripts/device.sh profile."""
import collections
import functools
import csv
import re
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def demangle(name):
    """Names listed with --kernel-name-base mangled, readable again (c++filt from binutils)."""
    if not name.startswith("_Z"):
        return name
    try:
        return subprocess.run(["c++filt", name], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return name


def short(name):
    name = demangle(name)
    name = re.sub(r"\(anonymous namespace\)::|gemma4::cuda::|matmul_detail::|attention_detail::", "", name)
    name = re.sub(r"\s*\(.*$", "", name) if not name.startswith("void") else re.sub(r"^void\s+", "", re.sub(r"\(.*$", "", name))
    return name[:120]


rows = []
with open(sys.argv[1], newline="") as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "ns")
    ns = v * {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}.get(unit, 1)
    rows.append((short(r["Kernel Name"]), r.get("Grid Size", ""), ns))
total = sum(ns for _, _, ns in rows) or 1
agg = collections.defaultdict(lambda: [0, 0.0])
for name, grid, ns in rows:
    agg[(name, grid)][0] += 1
    agg[(name, grid)][1] += ns
title = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
print(f"## {title}: {len(rows)} launches, {total / 1e3:.1f} us in kernels")
print("| kernel | grid | n | total us | mean us | share |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for (name, grid), (n, ns) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:40]:
    print(f"| {name} | {grid} | {n} | {ns / 1e3:.1f} | {ns / n / 1e3:.2f} | {100 * ns / total:.1f}% |")
