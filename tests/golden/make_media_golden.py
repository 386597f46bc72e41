#!/usr/bin/env python3
"""Regenerates the multimodal goldens (tests/golden/mm/, tests/models/mmproj-gemma4-tiny-f32.gguf).

Reference: llama.cpp de3ff81 via ../shared/oracle (gemma4-dump, CPU build: libmtmd decodes images with
stb_image and audio with miniaudio, resizes with its Pillow port, runs the gemma4uv / gemma4ua graphs;
the LM runs with --kv-type f32 --fa off). Pillow (python3-pil) for the resize references, sox for the
resampling references.

  source ~/.cache/gemma4-oracle/env-cpu.sh
  apt-get install python3-pil sox          # python3-numpy is there already
  /usr/bin/python3 tests/golden/make_media_golden.py        # ~1 min on 2 cores

Writes
  tests/models/mmproj-gemma4-tiny-f32.gguf   make_model.py --preset tiny --what mmproj --seed 1234 (pairs with
                                             the committed gemma4-tiny-f32.gguf, same seed)
  mm/media/*                  the committed inputs: small PNG (RGB, gray, RGBA), JPEG, GIF (2 frames), BMP, PPM,
                              PGM images and WAV clips (16 kHz mono/stereo; 8/22.05/44.1/48 kHz tones and noise)
  mm/cases.txt                one line per projector case: NAME KIND SOURCE N_TOKENS
                              SOURCE is a file in mm/media/, or synth_image:W:H:SEED / synth_audio:FRAMES:CHANNELS:SEED
                              for inputs the tests regenerate (too big to commit; see synth_* below, mirrored in
                              mm/media_test_util.h), which the oracle saw as PNG / 16-bit WAV files
  mm/<NAME>/rows.npy          int32 [r]: which projector rows are stored (all of them up to 96 tokens, else 64)
  mm/<NAME>/embd.npy          float32 [r, 256]: llama.cpp's media_0.npy at those rows
  mm/mixed{1,2}/prompt.txt, media.txt, tokens.npy, rows.npy, logits.npy
                              prompts mixing text, two images and an audio clip: gemma4-dump's token ids (-1 at
                              media positions) and its logits at the positions in rows.npy (all of them for mixed1)
  mm/pillow.txt, mm/pillow/*.png
                              Pillow 9.4 Image.resize(BICUBIC) of test images: SOURCE W H FILE per line
  mm/resample/<rate>_<signal>.sox.npy
                              float32 [n]: `sox IN -e floating-point -b 32 OUT rate -v 16000` of mm/media/rs_*.wav
  mm/resample/REPORT.txt      SNR of llama.cpp's resampler (miniaudio's linear one, dumped with --trace inp_raw)
                              against sox, per input: for information; tests/unit/media_audio_test.cpp measures ours
"""
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORACLE = os.path.join(os.path.dirname(ROOT), "shared", "oracle")
DUMP = os.environ.get("ORACLE_DUMP") or sys.exit("source ~/.cache/gemma4-oracle/env-cpu.sh first")
MODEL = os.path.join(ROOT, "tests", "models", "gemma4-tiny-f32.gguf")
MMPROJ = os.path.join(ROOT, "tests", "models", "mmproj-gemma4-tiny-f32.gguf")
OUT = os.path.join(HERE, "mm")
MEDIA = os.path.join(OUT, "media")
ALL_ROWS_UP_TO = 96   # cases with at most this many tokens store every row
SAMPLED_ROWS = 64     # others store this many, evenly spaced, plus the last
MIXED = [  # name, prompt, media (kind, source as in CASES), store every k-th position (and the last)
    ("mixed1", "<__media__> and <__media__>: compare the two pictures, then say what you hear in <__media__> in one word.",
     [("image", "47x95.png"), ("image", "gray.png"), ("audio", "a1s_mono.wav")], 1),
    ("mixed2", "Listen first:<__media__>\nNow look at these two<__media__><__media__>. Which one matches the sound, and why?",
     [("audio", "a1s_stereo.wav"), ("image", "synth_image:640:480:9"), ("image", "photo.jpg")], 3),
]
RESAMPLE_RATES = (8000, 22050, 44100, 48000)
RESAMPLE_SECONDS = 0.3


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


# ---- deterministic synthetic media: integer arithmetic only, so that C++ (mm/media_test_util.h) makes the
# same bytes. Keep both in step.

def synth_image(w, h, seed):
    """uint8 [h, w, 3]: rings (R), 16-pixel blocks with hashed noise in the lower-right quarter (G), a ramp (B)."""
    x = np.arange(w, dtype=np.int64)[None, :]
    y = np.arange(h, dtype=np.int64)[:, None]
    r = (((x * x + y * y) * (seed + 1)) >> 10) & 255
    g = (((x >> 4) ^ (y >> 4)) * 37 + seed * 11) & 255
    noise = ((x * 73856093) ^ (y * 19349663) ^ (seed * 83492791)) & 255
    g = np.where((2 * x >= w) & (2 * y >= h), noise, g)
    b = ((x * 255) // max(w - 1, 1) + (y * 255) // max(h - 1, 1)) >> 1
    r, g, b = np.broadcast_arrays(r, g, b)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def synth_audio(n, channels, seed):
    """int16 [n, channels]: a triangle wave (440 + 220 c + 37 seed Hz) with a stepped envelope, plus hashed noise;
    every 7th second (from the 4th) is silent."""
    i = np.arange(n, dtype=np.int64)
    out = np.zeros((n, channels), dtype=np.int64)
    for c in range(channels):
        f = 440 + 220 * c + 37 * seed
        phase = (i * f * 65536 // 16000) & 65535
        tri = np.abs(phase - 32768)                      # 0 .. 32768
        env = (i // 8000) % 4 + 1                        # 1 .. 4, steps every 0.5 s
        h = (i * 2654435761 + seed * 97 + c * 7919) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 2246822519) & 0xFFFFFFFF
        h ^= h >> 13
        noise = (h & 4095) - 2048
        s = ((tri * env) >> 2) - 4096 * env + noise
        s = np.where((i // 16000) % 7 == 3, 0, s)
        out[:, c] = s
    return out.astype(np.int16)


def write_wav16(path, pcm, rate):
    pcm = np.asarray(pcm, dtype="<i2")
    if pcm.ndim == 1:
        pcm = pcm[:, None]
    with wave.open(path, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


# ---- committed inputs

def make_media():
    os.makedirs(MEDIA, exist_ok=True)
    Image.fromarray(synth_image(1, 1, 1)).save(os.path.join(MEDIA, "1x1.png"))
    Image.fromarray(synth_image(47, 95, 2)).save(os.path.join(MEDIA, "47x95.png"))
    Image.fromarray(synth_image(48, 48, 3)).save(os.path.join(MEDIA, "48x48.png"))
    gray = synth_image(120, 90, 4)[:, :, 0]
    Image.fromarray(gray, "L").save(os.path.join(MEDIA, "gray.png"))
    Image.fromarray(gray, "L").save(os.path.join(MEDIA, "gray.pgm"))
    rgb = synth_image(100, 70, 5)
    alpha = ((np.arange(100)[None, :] * 255) // 99 + np.zeros((70, 1), dtype=np.int64)).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(os.path.join(MEDIA, "rgba.png"))
    Image.fromarray(rgb).save(os.path.join(MEDIA, "rgb.png"))    # the same pixels without alpha
    Image.fromarray(rgb).save(os.path.join(MEDIA, "rgb.bmp"))
    Image.fromarray(rgb).save(os.path.join(MEDIA, "rgb.ppm"))
    Image.fromarray(synth_image(160, 120, 6)).save(os.path.join(MEDIA, "photo.jpg"), quality=90)
    frames = [Image.fromarray(synth_image(90, 60, s)).convert("P", palette=Image.ADAPTIVE, colors=64) for s in (7, 8)]
    frames[0].save(os.path.join(MEDIA, "anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)

    write_wav16(os.path.join(MEDIA, "a0.1s_mono.wav"), synth_audio(1600, 1, 1), 16000)
    write_wav16(os.path.join(MEDIA, "a0.1s_stereo.wav"), synth_audio(1600, 2, 2), 16000)
    write_wav16(os.path.join(MEDIA, "a1s_mono.wav"), synth_audio(16000, 1, 3), 16000)
    write_wav16(os.path.join(MEDIA, "a1s_stereo.wav"), synth_audio(16000, 2, 4), 16000)
    for rate in RESAMPLE_RATES:
        for sig in ("tones", "noise"):
            write_wav16(os.path.join(MEDIA, f"rs_{rate}_{sig}.wav"), resample_input(rate, sig), rate)


def resample_input(rate, signal):
    """Test signals for the resamplers, 0.3 s, 20 ms raised-cosine fades, peak 0.5, 16-bit.
    tones: 440 Hz, 1 kHz and 85 % of the lower Nyquist frequency, plus (sources above 16 kHz) a tone at 90 % of
    the source's Nyquist frequency that must be removed; noise: white Gaussian noise cut (FFT) at 85 % of the
    lower Nyquist frequency. Both inside the band every good resampler passes flat."""
    n = int(round(rate * RESAMPLE_SECONDS))
    t = np.arange(n) / rate
    top = 0.85 * min(rate, 16000) / 2
    if signal == "tones":
        freqs = [440.0, 1000.0, top] + ([0.9 * rate / 2] if rate > 16000 else [])
        x = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs))
    else:
        rng = np.random.default_rng(rate)
        spec = np.fft.rfft(rng.standard_normal(n))
        spec[np.fft.rfftfreq(n, 1 / rate) > top] = 0
        x = np.fft.irfft(spec, n)
    fade = int(0.02 * rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x[:fade] *= ramp
    x[n - fade:] *= ramp[::-1]
    x = 0.5 * x / np.abs(x).max()
    return np.round(x * 32767).astype(np.int16)


# ---- oracle runs

def dump(media, prompt, outdir, extra=()):
    args = [DUMP, "-m", MODEL, "--mmproj", MMPROJ, "-p", prompt, "-o", outdir, "--kv-type", "f32", "--fa", "off",
            "-t", str(os.cpu_count())] + list(extra)
    for kind, path in media:
        args += [f"--{kind}", path]
    run(args)


def stored_rows(n):
    if n <= ALL_ROWS_UP_TO:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, SAMPLED_ROWS).round().astype(int).tolist()) | {n - 1})


def source_file(source, tmp):
    """The file the oracle reads for a case source (synthetic ones are written to tmp)."""
    kind, _, spec = source.partition(":")
    if kind == "synth_image":
        w, h, seed = map(int, spec.split(":"))
        path = os.path.join(tmp, f"synth_{w}x{h}_{seed}.png")
        Image.fromarray(synth_image(w, h, seed)).save(path)
        return path
    if kind == "synth_audio":
        n, ch, seed = map(int, spec.split(":"))
        path = os.path.join(tmp, f"synth_{n}_{ch}_{seed}.wav")
        write_wav16(path, synth_audio(n, ch, seed), 16000)
        return path
    return os.path.join(MEDIA, source)


CASES = [  # name, kind, source
    ("img_1x1", "image", "1x1.png"),
    ("img_47x95", "image", "47x95.png"),
    ("img_48x48", "image", "48x48.png"),
    ("img_640x480", "image", "synth_image:640:480:9"),
    ("img_1234x567", "image", "synth_image:1234:567:10"),
    ("img_4000x3000", "image", "synth_image:4000:3000:11"),
    ("img_gray_png", "image", "gray.png"),
    ("img_rgba_png", "image", "rgba.png"),
    ("img_jpeg", "image", "photo.jpg"),
    ("img_gif", "image", "anim.gif"),
    ("img_bmp", "image", "rgb.bmp"),
    ("img_ppm", "image", "rgb.ppm"),
    ("img_pgm", "image", "gray.pgm"),
    ("aud_0.1s_mono", "audio", "a0.1s_mono.wav"),
    ("aud_0.1s_stereo", "audio", "a0.1s_stereo.wav"),
    ("aud_1s_mono", "audio", "a1s_mono.wav"),
    ("aud_1s_stereo", "audio", "a1s_stereo.wav"),
    ("aud_31s_mono", "audio", "synth_audio:496000:1:5"),
    ("aud_31s_stereo", "audio", "synth_audio:496000:2:6"),
] + [(f"rs_{r}_{s}", "audio", f"rs_{r}_{s}.wav") for r in RESAMPLE_RATES for s in ("tones", "noise")]


def snr_db(ours, ref):
    n = min(len(ours), len(ref))
    ours, ref = np.asarray(ours[:n], np.float64), np.asarray(ref[:n], np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / max(np.sum((ours - ref) ** 2), 1e-300))


def sox_16k(path):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "o.f32")
        run(["sox", path, "-e", "floating-point", "-b", "32", "-t", "raw", out, "rate", "-v", "16000"])
        return np.fromfile(out, dtype="<f4")


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        run([sys.executable, os.path.join(ORACLE, "make_model.py"), "--preset", "tiny", "--what", "mmproj", "--seed", "1234",
             "--out", d])
        shutil.copy(os.path.join(d, "mmproj-gemma4-tiny-f32.gguf"), MMPROJ)
    make_media()

    lines = []
    report = ["# llama.cpp's 16 kHz signal (gemma4-dump --trace inp_raw: miniaudio's linear resampler) vs sox rate -v",
              "# input                 samples  SNR dB, and after the best shift by whole samples"]
    os.makedirs(os.path.join(OUT, "resample"), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, source in CASES:
            path = source_file(source, tmp)
            d = os.path.join(tmp, name)
            dump([(kind, path)], "", d, ["--logits", "none"] + (["--trace", "inp_raw"] if name.startswith("rs_") else []))
            embd = np.load(os.path.join(d, "media_0.npy"))
            rows = stored_rows(embd.shape[0])
            cd = os.path.join(OUT, name)
            os.makedirs(cd, exist_ok=True)
            np.save(os.path.join(cd, "rows.npy"), np.asarray(rows, dtype=np.int32))
            np.save(os.path.join(cd, "embd.npy"), np.ascontiguousarray(embd[rows], dtype=np.float32))
            lines.append(f"{name} {kind} {source} {embd.shape[0]}")
            print(f"  {name}: {embd.shape[0]} tokens, {len(rows)} rows stored")
            if name.startswith("rs_"):
                ref = sox_16k(path)
                np.save(os.path.join(OUT, "resample", name[3:] + ".sox.npy"), ref.astype(np.float32))
                frames = np.load(os.path.join(d, "trace", "mm_000_inp_raw.npy"))  # [640, n_frames]: frame-major
                llama = frames.T.reshape(-1)
                n = min(len(llama), len(ref))
                lag = max(range(-8, 9), key=lambda k: float(np.dot(np.roll(llama[:n], k), ref[:n])))
                report.append(f"{source:24s} {len(ref):7d}  {snr_db(llama, ref):6.1f}  {snr_db(np.roll(llama[:n], lag), ref):6.1f} "
                              f"at a shift of {lag:+d}")

    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# NAME KIND SOURCE N_TOKENS (tests/golden/make_media_golden.py)\n" + "\n".join(lines) + "\n")
    with open(os.path.join(OUT, "resample", "REPORT.txt"), "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))

    # Prompts mixing text, two images and an audio clip: logits at every (or every k-th) position.
    with tempfile.TemporaryDirectory() as tmp:
        for name, prompt, media, every in MIXED:
            md = os.path.join(OUT, name)
            os.makedirs(md, exist_ok=True)
            d = os.path.join(tmp, name)
            dump([(k, source_file(src, tmp)) for k, src in media], prompt, d)
            tokens = np.load(os.path.join(d, "tokens.npy"))
            logits = np.load(os.path.join(d, "logits.npy"))
            rows = sorted(set(range(0, len(tokens), every)) | {len(tokens) - 1})
            np.save(os.path.join(md, "tokens.npy"), tokens)
            np.save(os.path.join(md, "rows.npy"), np.asarray(rows, dtype=np.int32))
            np.save(os.path.join(md, "logits.npy"), np.ascontiguousarray(logits[rows], dtype=np.float32))
            with open(os.path.join(md, "prompt.txt"), "w") as f:
                f.write(prompt)
            with open(os.path.join(md, "media.txt"), "w") as f:
                f.write("".join(f"{k} {src}\n" for k, src in media))
            print(f"  {name}: {len(tokens)} positions, {len(rows)} rows stored")

    # Pillow references for the resize.
    pd = os.path.join(OUT, "pillow")
    shutil.rmtree(pd, ignore_errors=True)
    os.makedirs(pd)
    pillow = [("47x95.png", 288, 576), ("48x48.png", 432, 432), ("1x1.png", 5, 3), ("rgb.png", 61, 70), ("rgb.png", 100, 23),
              ("synth_image:640:480:9", 301, 222), ("synth_image:160:120:12", 250, 190),
              ("synth_image:1234:567:10", 400, 190), ("synth_image:4000:3000:11", 173, 131)]
    plines = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, w, h in pillow:
            img = Image.open(source_file(source, tmp)).convert("RGB")
            out = f"{source.replace(':', '_').replace('.png', '')}_{w}x{h}.png"
            img.resize((w, h), Image.BICUBIC).save(os.path.join(pd, out))
            plines.append(f"{source} {w} {h} {out}")
    with open(os.path.join(OUT, "pillow.txt"), "w") as f:
        f.write("# SOURCE W H FILE: Pillow " + Image.__version__ + " Image.resize((W, H), BICUBIC)\n" + "\n".join(plines) + "\n")


if __name__ == "__main__":
    main()
