#!/usr/bin/env python3
"""bench_table.py GEMMA4.json LLAMA.json: side-by-side table of gemma4-bench and llama-bench results
(same file, same GPU), with the ratio gemma4 / llama.cpp per test and depth."""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_table: cannot read {path}: {e}")


def key(r):
    test = f"pp{r['n_prompt']}" if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}"
    return test, int(r.get("n_depth", 0))


ours = {key(r): r for r in load(sys.argv[1])}
ref = {key(r): r for r in load(sys.argv[2])}
print("| test | depth | gemma4 t/s | llama.cpp t/s | ratio |")
print("| --- | ---: | ---: | ---: | ---: |")
for k in sorted(set(ours) | set(ref), key=lambda k: (k[0][:2], k[1])):
    a, b = ours.get(k), ref.get(k)
    fa = f"{a['avg_ts']:.1f} ± {a['stddev_ts']:.1f}" if a else "-"
    fb = f"{b['avg_ts']:.1f} ± {b['stddev_ts']:.1f}" if b else "-"
    ratio = f"{a['avg_ts'] / b['avg_ts']:.2f}x" if a and b and b["avg_ts"] > 0 else "-"
    print(f"| {k[0]} | {k[1]} | {fa} | {fb} | {ratio} |")
