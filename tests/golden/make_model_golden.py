#!/usr/bin/env python3
"""Regenerates the committed model goldens (tests/models/*.gguf, tests/golden/tiny/*) from the oracle.

Reference: llama.cpp de3ff81 via ../shared/oracle (gemma4-dump, CPU build, --kv-type f32 --fa off,
i.e. f32 attention end to end) and ref_forward.py (numpy float64 on the dequantized weights).

  source ~/.cache/gemma4-oracle/env-cpu.sh
  tests/golden/make_model_golden.py            # ~1 min on 2 cores

Writes
  tests/models/gemma4-tiny-{f32,Q8_0,Q4_K_M}.gguf   make_model.py --preset tiny --seed 1234 (+ llama-quantize)
  tests/golden/tiny/<case>/tokens.npy   int32 [n]       the prompt ids (BOS first)
  tests/golden/tiny/<case>/rows.npy     int32 [r]       which positions' logits are stored
  tests/golden/tiny/<case>/logits.npy   float32 [r, V]  llama.cpp CPU logits at those positions
  tests/golden/tiny/<case>/ref.npy      float32 [r, V]  ref_forward.py float64 logits (quantized files)
  tests/golden/tiny/greedy-f32/tokens.npy              prompt + 64 greedy tokens chosen by llama.cpp
Cases: f32 prompts of 1, 17, 600 and 2500 tokens (2500: every 25th position and the last, to keep the
files small); Q8_0 and Q4_K_M prompts of 200 tokens.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORACLE = os.path.join(os.path.dirname(ROOT), "shared", "oracle")
DUMP = os.environ.get("ORACLE_DUMP") or sys.exit("source ~/.cache/gemma4-oracle/env-cpu.sh first")
BIN = os.environ["ORACLE_BIN"]
MODELS = os.path.join(ROOT, "tests", "models")
OUT = os.path.join(HERE, "tiny")

TEXT = open(os.path.join(HERE, "prompt.txt"), encoding="utf-8").read()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def tokenize(model, n):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(TEXT * 4)
    out = run([f"{BIN}/llama-tokenize", "-m", model, "-f", f.name, "--ids", "--log-disable"])
    os.unlink(f.name)
    ids = json.loads(out.strip().splitlines()[-1])
    assert ids[0] == 2 and len(ids) >= n, (len(ids), n)
    return ids[:n]


def dump(model, ids):
    with tempfile.TemporaryDirectory() as d:
        run([DUMP, "-m", model, "--tokens", ",".join(map(str, ids)), "-o", d, "--kv-type", "f32", "--fa", "off",
             "-c", str(max(4096, len(ids) + 16)), "-t", str(os.cpu_count())])
        return np.load(os.path.join(d, "logits.npy"))


def ref_forward(model, ids):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ref.npy")
        run([sys.executable, os.path.join(ORACLE, "ref_forward.py"), model, "--tokens", ",".join(map(str, ids)), "-o", out])
        return np.load(out).astype(np.float32)


def save_case(name, ids, rows, logits, ref=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "tokens.npy"), np.asarray(ids, dtype=np.int32))
    np.save(os.path.join(d, "rows.npy"), np.asarray(rows, dtype=np.int32))
    np.save(os.path.join(d, "logits.npy"), np.ascontiguousarray(logits[rows], dtype=np.float32))
    if ref is not None:
        np.save(os.path.join(d, "ref.npy"), np.ascontiguousarray(ref[rows], dtype=np.float32))
    print(f"  {name}: {len(ids)} tokens, {len(rows)} rows stored")


def main():
    os.makedirs(MODELS, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        run([sys.executable, os.path.join(ORACLE, "make_model.py"), "--preset", "tiny", "--what", "text", "--seed", "1234",
             "--out", d, "--quantize", "Q8_0,Q4_K_M"])
        for q in ("f32", "Q8_0", "Q4_K_M"):
            shutil.copy(os.path.join(d, f"gemma4-tiny-{q}.gguf"), MODELS)
    m = {q: os.path.join(MODELS, f"gemma4-tiny-{q}.gguf") for q in ("f32", "Q8_0", "Q4_K_M")}

    for n in (1, 17, 600, 2500):
        ids = tokenize(m["f32"], n)
        logits = dump(m["f32"], ids)
        rows = list(range(n)) if n <= 600 else sorted(set(range(0, n, 25)) | {n - 1})
        save_case(f"f32-{n}", ids, rows, logits)

    ids = tokenize(m["f32"], 200)
    for q in ("Q8_0", "Q4_K_M"):
        save_case(f"{q}-200", ids, list(range(200)), dump(m[q], ids), ref_forward(m[q], ids))

    # llama.cpp's greedy continuation: 64 times argmax of the last position, appended.
    ids = tokenize(m["f32"], 17)
    for _ in range(64):
        ids.append(int(dump(m["f32"], ids)[-1].argmax()))
    d = os.path.join(OUT, "greedy-f32")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "tokens.npy"), np.asarray(ids, dtype=np.int32))
    print(f"  greedy-f32: 17 prompt + 64 greedy tokens")


if __name__ == "__main__":
    main()
