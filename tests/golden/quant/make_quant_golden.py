#!/usr/bin/python3
"""Golden dequantization data for tests/unit/quant_test.cpp, from llama.cpp's gguf-py reference.

For every ggml type the engine supports, this writes <type>.bin: seeded random raw blocks (numpy) and
their dequantization by gguf-py's `gguf.quants.dequantize` (gguf-py/gguf/quants.py, the numpy port of
ggml-quants.c). The C++ dequantizers must reproduce the outputs bit for bit (NaNs: both NaN).

Blocks cover the extreme cases of every f16 scale field (d, dmin, m): the largest f16 (+-65504), the
smallest subnormal and other subnormals, the smallest normal, +-0, +-Inf, quiet and signalling NaNs,
negative scales, plus realistic scales (2^-20 .. 1) and fully random bits. Q6_K's int8 scales include
-128 and 127; Q8_K's f32 d includes FLT_MAX, f32 subnormals, Inf and NaN. One block is all zero bytes.

Q8_K: gguf-py has no Q8_K dequantizer, so its outputs come from the spec formula (y = d * q, f32 d;
../shared/spec and ggml-quants.c dequantize_row_q8_K), evaluated here with numpy.

File format (little-endian):
    char[4] magic "G4QG" | u32 version (1) | u32 ggml type id | u32 n_blocks | u32 block_elems |
    u32 block_bytes | n_blocks * block_bytes raw bytes | n_blocks * block_elems f32 outputs
SOURCE.txt records the llama.cpp commit, the gguf-py and numpy versions and the seed.

Run: /usr/bin/python3 tests/golden/quant/make_quant_golden.py [--llama-cpp DIR]
"""
import argparse
import pathlib
import struct
import subprocess
import sys

import numpy as np

SEED = 20260428
MAGIC = b"G4QG"
VERSION = 1

# f16 bit patterns of the extreme scales.
F16_SPECIALS = [
    0x7BFF, 0xFBFF,          # +-65504, the largest finite f16
    0x0001, 0x8001,          # +-2^-24, the smallest subnormal
    0x03FF, 0x0155, 0x8200,  # the largest subnormal, two others
    0x0400, 0x8400,          # +-2^-14, the smallest normal
    0x0000, 0x8000,          # +-0
    0x7C00, 0xFC00,          # +-Inf
    0x7E00, 0xFE00,          # quiet NaNs
    0x7C01, 0x7D55,          # signalling NaNs
    0x3C00, 0xBC00,          # +-1
    0x1A8F, 0x9E3B,          # typical small scales, one negative
]

F32_SPECIALS = [
    0x7F7FFFFF, 0xFF7FFFFF,  # +-FLT_MAX
    0x00000001, 0x80000001,  # smallest f32 subnormal
    0x007FFFFF, 0x00800000,  # largest subnormal, smallest normal
    0x00000000, 0x80000000,  # +-0
    0x7F800000, 0xFF800000,  # +-Inf
    0x7FC00000, 0xFFC00001,  # quiet NaNs
    0x7F800001, 0x7FA5A5A5,  # signalling NaNs
    0x3F800000, 0xBF800000,  # +-1
    0x3A83126F, 0xB8D1B717,  # typical small scales
]

# Byte offsets of the f16 scale fields inside each block (the layouts of src/quant/formats.h).
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}

N_BLOCKS_SMALL = 128  # 32-element types
N_BLOCKS_K = 40       # 256-element types
N_PLAIN = 2048        # F16 / BF16 values
N_F32 = 512


def set_u16(raw, row, off, value):
    raw[row, off:off + 2] = np.frombuffer(struct.pack("<H", value), dtype=np.uint8)


def random_typical_f16(rng):
    """A realistic scale: +-uniform(0.5, 1) * 2^e, e in -20..0, rounded to f16."""
    v = rng.uniform(0.5, 1.0) * 2.0 ** int(rng.integers(-20, 1)) * (1 if rng.integers(0, 2) else -1)
    return int(np.array([v], dtype=np.float16).view(np.uint16)[0])


def make_blocks(rng, name, n_blocks, type_size):
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    fields = F16_FIELDS[name]
    n_special = len(F16_SPECIALS)
    n_special_blocks = 2 * n_special if n_blocks >= 4 * n_special else n_special
    assert n_blocks >= n_special_blocks + 8
    for i in range(n_blocks):
        for f, off in enumerate(fields):
            if i < n_special_blocks:  # every special in every field, paired with different partners
                value = F16_SPECIALS[(i + 7 * f * (i // n_special + 1)) % n_special]
            elif i < n_blocks - 4:
                value = random_typical_f16(rng)
            else:
                continue  # the last blocks keep fully random bits in their scale fields too
            set_u16(raw, i, off, value)
    if name == "Q6_K":  # int8 sub-block scales at bytes 192..207: make sure the extremes are there
        raw[0, 192:208] = np.array([-128, 127, -1, 0, 1, -128, 127, 64, -64, 5, -5, 127, -128, 2, 3, -7],
                                   dtype=np.int8).view(np.uint8)
    raw[n_blocks - 5] = 0  # an all-zero block (one of the typical ones)
    return raw


def make_q8k_blocks(rng, n_blocks):
    raw = rng.integers(0, 256, size=(n_blocks, 292), dtype=np.uint8)
    for i in range(n_blocks):
        if i < len(F32_SPECIALS):
            d = F32_SPECIALS[i]
        elif i < n_blocks - 4:
            d = int(np.array([rng.uniform(-1, 1) * 2.0 ** -10], dtype=np.float32).view(np.uint32)[0])
        else:
            continue
        raw[i, 0:4] = np.frombuffer(struct.pack("<I", d), dtype=np.uint8)
    raw[n_blocks - 5] = 0
    return raw


def dequantize_q8k_spec(raw):
    """Q8_K per the spec: y[j] = d * qs[j], d an f32 at byte 0, qs int8 at bytes 4..259."""
    d = raw[:, 0:4].copy().view(np.float32)               # (n, 1)
    q = raw[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * q).astype(np.float32)


def write_golden(path, type_id, block_elems, raw, out):
    n_blocks, type_size = raw.shape
    assert out.shape == (n_blocks, block_elems) and out.dtype == np.float32
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<5I", VERSION, type_id, n_blocks, block_elems, type_size))
        f.write(raw.tobytes())
        f.write(out.astype("<f4").tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-cpp", default="/root/.cache/gemma4-oracle/llama.cpp")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent))
    args = parser.parse_args()

    sys.path.insert(0, str(pathlib.Path(args.llama_cpp) / "gguf-py"))
    import gguf  # noqa: E402  (needs the path above)
    assert pathlib.Path(gguf.__file__).resolve().is_relative_to(pathlib.Path(args.llama_cpp).resolve()), gguf.__file__
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

    out_dir = pathlib.Path(args.out)
    rng = np.random.default_rng(SEED)
    np.seterr(all="ignore")  # Inf * 0 and friends are the point of some blocks

    written = []
    for name in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]:
        qtype = T[name]
        block_elems, type_size = GGML_QUANT_SIZES[qtype]
        n_blocks = N_BLOCKS_SMALL if block_elems == 32 else N_BLOCKS_K
        raw = make_blocks(rng, name, n_blocks, type_size)
        out = gguf.quants.dequantize(raw.copy(), qtype).reshape(n_blocks, block_elems)
        file_name = name.lower().replace("_k", "_K") + ".bin"  # ggml's type names: q4_0, q4_K, ...
        write_golden(out_dir / file_name, int(qtype), block_elems, raw, out.astype(np.float32))
        written.append(name)

    # Q8_K: no gguf-py dequantizer; spec formula.
    raw = make_q8k_blocks(rng, N_BLOCKS_K)
    write_golden(out_dir / "q8_K.bin", int(T.Q8_K), 256, raw, dequantize_q8k_spec(raw))
    written.append("Q8_K (spec formula)")

    # Plain types: elements are blocks of one.
    f16_bits = np.concatenate([np.array(F16_SPECIALS, dtype=np.uint16),
                               rng.integers(0, 1 << 16, size=N_PLAIN - len(F16_SPECIALS), dtype=np.uint16)])
    raw = f16_bits.astype("<u2").view(np.uint8).reshape(-1, 2)
    write_golden(out_dir / "f16.bin", int(T.F16), 1, raw, gguf.quants.dequantize(raw.copy(), T.F16).reshape(-1, 1))
    # BF16: the same specials read as bf16 bits, plus the bf16 extremes (max, min subnormal, Inf, NaN).
    bf16_specials = F16_SPECIALS + [0x7F7F, 0xFF7F, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F80, 0xFF80, 0x7FC0, 0x7F81]
    bf16_bits = np.concatenate([np.array(bf16_specials, dtype=np.uint16),
                                rng.integers(0, 1 << 16, size=N_PLAIN - len(bf16_specials), dtype=np.uint16)])
    raw = bf16_bits.astype("<u2").view(np.uint8).reshape(-1, 2)
    write_golden(out_dir / "bf16.bin", int(T.BF16), 1, raw, gguf.quants.dequantize(raw.copy(), T.BF16).reshape(-1, 1))
    f32_bits = np.concatenate([np.array(F32_SPECIALS, dtype=np.uint32),
                               rng.integers(0, 1 << 32, size=N_F32 - len(F32_SPECIALS), dtype=np.uint32)])
    raw = f32_bits.astype("<u4").view(np.uint8).reshape(-1, 4)
    write_golden(out_dir / "f32.bin", int(T.F32), 1, raw, gguf.quants.dequantize(raw.copy(), T.F32).reshape(-1, 1))
    written += ["F16", "BF16", "F32"]

    try:
        commit = subprocess.run(["git", "-C", args.llama_cpp, "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    toml = (pathlib.Path(args.llama_cpp) / "gguf-py" / "pyproject.toml").read_text()
    gguf_version = next(line.split('"')[1] for line in toml.splitlines() if line.startswith("version"))
    (out_dir / "SOURCE.txt").write_text(
        "Golden dequantization data for tests/unit/quant_test.cpp, written by make_quant_golden.py.\n"
        f"reference: llama.cpp gguf-py {gguf_version} (gguf.quants.dequantize), llama.cpp commit {commit}\n"
        f"numpy {np.__version__}, seed {SEED}\n"
        f"types: {', '.join(written)}\n")
    print("wrote", ", ".join(written), "to", out_dir)


if __name__ == "__main__":
    main()
