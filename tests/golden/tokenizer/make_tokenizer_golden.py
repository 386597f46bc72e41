#!/usr/bin/env python3
"""Regenerates the tokenizer and chat-template goldens from the llama.cpp reference ("oracle").

    source ~/.cache/gemma4-oracle/env-cpu.sh          # shared/oracle/setup.sh builds it
    tests/golden/tokenizer/make_tokenizer_golden.py [--vocab GGUF] [--tiny GGUF] [--jobs 2]

Reference: llama.cpp commit de3ff81 (shipped inside npm node-llama-cpp 3.22.1 as a git bundle), its
`llama-tokenize` and its chat pipeline (common_chat_templates_apply) from the CPU build of
shared/oracle/setup.sh. The real Gemma 4 vocabulary is llama.cpp's models/ggml-vocab-gemma-4.gguf
(scripts/fetch-vocab.sh puts it in ~/.cache/gemma4/vocab). Every id in the outputs comes from:

    llama-tokenize -m VOCAB -f PIECE --ids --log-disable --no-escape [--no-bos] [--no-parse-special]

Outputs (beside this script; last run: 11 min on 2 busy cores):
  corpus.bin.xz   2,988,686 bytes of varied text in 297 pieces with llama.cpp's 1,005,973 ids for the real
                  vocabulary (1.5 MB compressed)
  tiny.bin.xz     55 pieces, 253,629 bytes, for the synthetic 512-token vocabulary of
                  shared/oracle/make_model.py's tiny preset (gemma4-tiny-f32.gguf), with a fingerprint of it
  chat_cases.txt  40 conversations rendered by llama.cpp (20 with the original template from the vocab GGUF,
                  20 with the revised models/templates/google-gemma-4-31B-it.jinja) and the rendered texts' ids

Container format of the .bin files (after `xz -d`), all integers unsigned LEB128 varints:
  "G4TOKGOLD1\\n" | n_pieces | piece*
  piece = len | name | flags (bit 0: add_bos, bit 1: parse_special) | len | text bytes | n_ids | id*
tiny.bin starts with a header piece named "#vocab" whose text is "N_TOKENS N_MERGES FNV64HEX": the
vocabulary the ids belong to (FNV-1a 64 over every token text followed by a 0 byte).

The corpus is assembled from files found on the machine that made it (Debian 12): C headers, the
Python 3.11 standard library, llama.cpp's C++/CUDA/Metal/GLSL/WGSL/Python/JS/TS/Swift/Kotlin/shell/
CMake sources, Perl, HTML/CSS/JSON/YAML/XML/SQL/Markdown/RST files, English and translated man pages,
gettext catalogs (.mo) in ~40 languages and scripts (Latin with accents, Cyrillic, Greek, Arabic,
Hebrew, Devanagari and other Indic scripts, CJK, Thai, Georgian, Armenian, Ethiopic ...), llama.cpp's
tokenizer test inputs, plus generated edge cases: whitespace runs, CRLF, special-token look-alikes,
emoji and ZWJ sequences, combining marks, control characters and invalid UTF-8. Selection is seeded
and sorted, so a re-run on the same machine gives the same corpus. Two inputs are left out on purpose
because llama.cpp aborts on them: overlong encodings of ' ' (GGML_ASSERT in find_bpe_rank) and 4-byte
sequences above U+10FFFF (std::invalid_argument from unicode_cpt_to_utf8).
"""
import argparse
import concurrent.futures
import gzip
import json
import lzma
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE_HOME = os.environ.get("ORACLE_HOME", os.path.expanduser("~/.cache/gemma4-oracle"))
LLAMA_SRC = os.environ.get("ORACLE_LLAMA_SRC", os.path.join(ORACLE_HOME, "llama.cpp"))
ORACLE_BIN = os.environ.get("ORACLE_BIN", os.path.join(ORACLE_HOME, "build-cpu", "bin"))
ORACLE_BUILD = os.path.dirname(ORACLE_BIN)
SEED = 20261122
PIECE_BYTES = 12000  # typical piece size: one llama-tokenize call each (~1 s of vocabulary loading)

ADD_BOS = 1
PARSE_SPECIAL = 2


# ---------------------------------------------------------------- corpus
def read_bytes(path, limit=None):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read(limit) if limit else f.read()
        with open(path, "rb") as f:
            return f.read(limit) if limit else f.read()
    except OSError:
        return b""


def find_files(roots, exts, max_files=4000):
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if any(fn.endswith(e) for e in exts):
                    p = os.path.join(dirpath, fn)
                    if os.path.isfile(p) and not os.path.islink(p):
                        out.append(p)
                        if len(out) >= max_files:
                            return out
    return out


def cut_at_line(data, start, size):
    """A slice of about `size` bytes starting and ending at line boundaries when possible."""
    if start > 0:
        nl = data.find(b"\n", start)
        start = nl + 1 if nl >= 0 else start
    end = min(len(data), start + size)
    if end < len(data):
        nl = data.rfind(b"\n", start, end)
        if nl > start:
            end = nl + 1
    return data[start:end]


def sample_files(rng, name, files, budget, piece_bytes=PIECE_BYTES, per_file=6000):
    """Pieces of about piece_bytes, each made of excerpts of several files, until budget bytes."""
    pieces = []
    files = list(files)
    rng.shuffle(files)
    cur = b""
    total = 0
    for p in files:
        if total >= budget:
            break
        data = read_bytes(p, 400000)
        if len(data) < 200:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # invalid UTF-8 is covered by generated pieces, on purpose and in measured doses
        start = rng.randrange(0, max(1, len(data) - per_file))
        cur += cut_at_line(data, start, per_file)
        if len(cur) >= piece_bytes:
            pieces.append((f"{name}/{len(pieces):03d}", cur))
            total += len(cur)
            cur = b""
    if cur and total < budget:
        pieces.append((f"{name}/{len(pieces):03d}", cur))
    return pieces


def mo_messages(path):
    """Translated strings of a gettext .mo catalog (UTF-8 ones only)."""
    data = read_bytes(path)
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if end is None:
        return []
    _, n, _orig, trans = struct.unpack(end + "4I", data[4:20])
    out = []
    for i in range(n):
        length, off = struct.unpack(end + "2I", data[trans + 8 * i: trans + 8 * i + 8])
        s = data[off: off + length]
        if i == 0 or not s:
            continue  # the header entry
        for part in s.split(b"\0"):  # plural forms
            try:
                part.decode("utf-8")
            except UnicodeDecodeError:
                return []
            out.append(part)
    return out


def translations(rng, budget_per_lang, piece_bytes=9000):
    langs = ["ar", "he", "fa", "ur", "ug", "hi", "mr", "ne", "bn", "pa", "gu", "ta", "te", "kn", "ml", "si",
             "th", "lo", "km", "my", "zh_CN", "zh_TW", "ja", "ko", "ru", "uk", "bg", "sr", "el", "ka", "hy",
             "am", "vi", "fr", "de", "es", "pt_BR", "pl", "cs", "tr", "hu", "ro", "sv", "fi", "is", "ga", "eo"]
    pieces = []
    for lang in langs:
        d = f"/usr/share/locale/{lang}/LC_MESSAGES"
        if not os.path.isdir(d):
            continue
        msgs = []
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".mo"):
                msgs.extend(mo_messages(os.path.join(d, fn)))
        if not msgs:
            continue
        rng.shuffle(msgs)
        text, n, left = b"", 0, budget_per_lang
        for m in msgs:
            text += m + (b"\n" if rng.random() < 0.7 else b" ")
            if len(text) >= piece_bytes:
                pieces.append((f"lang-{lang}/{n}", text))
                n += 1
                left -= len(text)
                text = b""
                if left <= 0:
                    break
        if text and left > 0:
            pieces.append((f"lang-{lang}/{n}", text))
    return pieces


SPECIAL_TEXTS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|tool>", "<tool|>", "<|tool_call>",
                 "<tool_call|>", "<|tool_response>", "<tool_response|>", '<|"|>', "<|think|>", "<|channel>",
                 "<channel|>", "<|turn>", "<turn|>", "<|image>", "<image|>", "<|audio>", "<audio|>",
                 "<|image|>", "<|audio|>", "<|video|>"]
LOOKALIKES = ["<|turn", "turn|>", "<|tur n>", "<<|turn>>", "<|channel|>", "<|think>", "<think|>", "<|bos|>",
              "</s>", "<s>", "<start_of_turn>", "<end_of_turn>", "<unused0>", "<unused99>", "<0x41>", "<0xZZ>",
              "[MASK]", "<|endoftext|>", "<|im_start|>", "<|", "|>", "<>", "< |turn>", "<|turn> ", "<|TURN>",
              "<|tool_response|>", "<|tool_call|>", "<tool_response>", "<b>", "</b>", "<br/>", "<div class=\"x\">"]


def special_pieces(rng):
    pieces = []
    for variant in range(8):
        parts = []
        for _ in range(900):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(SPECIAL_TEXTS))
            elif r < 0.6:
                parts.append(rng.choice(LOOKALIKES))
            elif r < 0.75:
                a, b = rng.sample(SPECIAL_TEXTS, 2)
                k = rng.randrange(1, len(a))
                parts.append(a[:k] + b)  # a special token glued after a cut-off one
            else:
                parts.append(rng.choice(["Hello", " world", "\n", "  ", "\t", "user", "model", "thought",
                                         "call:f{x:1}", "response:", "é", "中文", "🙂", "\n\n", " "]))
        text = "".join(parts).encode("utf-8")
        flags = [0, PARSE_SPECIAL, ADD_BOS | PARSE_SPECIAL, ADD_BOS][variant % 4]
        pieces.append((f"specials/{variant}", text, flags))
    # a rendered-looking chat prompt that starts with <bos>: exactly-one-BOS is tested on it separately
    chat = ("<bos><|turn>system\n<|think|>You are helpful.<turn|>\n<|turn>user\nHi <turn|> there"
            "<turn|>\n<|turn>model\n<|channel>thought\nhm<channel|>Hello!<turn|>\n").encode("utf-8")
    pieces.append(("specials/chat-like", chat, PARSE_SPECIAL))
    pieces.append(("specials/chat-like-plain", chat, 0))
    return pieces


def whitespace_pieces(rng):
    pieces = []
    ws = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\r\n\r\n", "\v", "\f",
          "\u00a0", "\u3000", "\u2003", "\u200b", " \n", "\n ", " \t ", "\n" * 7, " " * 17, "\t" * 9]
    words = ["a", "the", "x", "if", "{", "}", "0", "42", "é", "ß", "ж", "中", "—", "...", "def", "return"]
    for v in range(6):
        parts = []
        for _ in range(2500):
            parts.append(rng.choice(ws) if rng.random() < 0.55 else rng.choice(words))
        pieces.append((f"whitespace/{v}", "".join(parts).encode("utf-8"), 0))
    pieces.append(("whitespace/spaces-1..64", "".join(" " * n + "x" for n in range(1, 65)).encode(), 0))
    pieces.append(("whitespace/newlines-1..40", "".join("\n" * n + "y" for n in range(1, 41)).encode(), 0))
    pieces.append(("whitespace/tabs-1..40", "".join("\t" * n + "z" for n in range(1, 41)).encode(), 0))
    pieces.append(("whitespace/only-spaces", b" " * 3001, 0))
    pieces.append(("whitespace/only-newlines", b"\n" * 513, 0))
    return pieces


def emoji_pieces(rng):
    zwj = ["👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "👁️‍🗨️", "🧑🏿‍🤝‍🧑🏻", "❤️‍🔥", "🐻‍❄️", "👩‍❤️‍💋‍👨", "🧔🏾‍♀️"]
    flags = ["🇫🇷", "🇯🇵", "🇺🇸", "🇧🇷", "🇮🇳", "🇺🇦", "🇿🇦", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
    singles = ["🦙", "🙂", "😀", "🚀", "✅", "❤️", "☺️", "✈", "1️⃣", "#️⃣", "©️", "™", "🀄", "🃏", "𝕏", "𝒜", "𓀀", "🫠", "🪿"]
    tones = ["🏻", "🏼", "🏽", "🏾", "🏿"]
    pieces = []
    for v in range(4):
        parts = []
        for _ in range(3000):
            r = rng.random()
            if r < 0.25:
                parts.append(rng.choice(zwj))
            elif r < 0.4:
                parts.append(rng.choice(flags))
            elif r < 0.6:
                parts.append(rng.choice(singles))
            elif r < 0.7:
                parts.append(rng.choice(["👋", "👍", "🤞", "🙏"]) + rng.choice(tones))
            elif r < 0.8:
                parts.append("\u200d")
            else:
                parts.append(rng.choice([" ", "\n", "ok ", " the ", ".", ",", "😀😀😀", "é"]))
        pieces.append((f"emoji/{v}", "".join(parts).encode("utf-8"), 0))
    # combining marks, Zalgo, Hangul jamo, Indic conjuncts, bidi controls, variation selectors
    marks = [chr(c) for c in range(0x300, 0x370)]
    base = "aeiouAEIOUnc"
    zalgo = "".join(rng.choice(base) + "".join(rng.choice(marks) for _ in range(rng.randrange(0, 9)))
                    for _ in range(2500))
    pieces.append(("unicode/zalgo", zalgo.encode("utf-8"), 0))
    jamo = "".join(chr(rng.randrange(0x1100, 0x1113)) + chr(rng.randrange(0x1161, 0x1176)) +
                   (chr(rng.randrange(0x11A8, 0x11C3)) if rng.random() < 0.5 else "") for _ in range(2000))
    pieces.append(("unicode/hangul-jamo", jamo.encode("utf-8"), 0))
    misc = "".join(rng.choice(["\u200e", "\u200f", "\u202a", "\u202c", "\u2066", "\u2069", "\ufe0f", "\ufe0e",
                               "\ufeff", "\u00ad", "\u2028", "\u2029", "\u0085", "שלום", "مرحبا", "abc", " ",
                               "क्षत्रिय", "ज्ञ", "ﷺ", "ﬁ", "Å", "Å", "ǅ", "ﬀ", "\U0001F600", "\U000E0041",
                               "\U0010FFFD", "\uFFFD", "\uFFFF", "\x00", "\x01", "\x1b[31m", "\x7f"])
                   for _ in range(4000))
    pieces.append(("unicode/controls-bidi-misc", misc.encode("utf-8", "surrogatepass"), 0))
    allplanes = "".join(chr(c) for c in rng.sample(range(0x20, 0x30000), 6000)
                        if not (0xD800 <= c <= 0xDFFF))
    pieces.append(("unicode/random-code-points", allplanes.encode("utf-8"), 0))
    return pieces


def invalid_utf8_pieces(rng, prose):
    bad = [b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80",
           b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
           b"\xfc\x84\x80\x80\x80\x80", b"\xfe", b"\xff", b"\xc0\x8a", b"\xe2\x96", b"\xe2\x96\x81\x81",
           b"\xef\xbb\xbf", b"\xf4\x8f\xbf\xbf", b"\xf5", b"\xf5\x41", b"\xc2 ", b"\xe2 \x96"]
    pieces = []
    for v in range(4):
        out = bytearray()
        for _ in range(3000):
            out += rng.choice(bad) if rng.random() < 0.5 else rng.choice([b"a", b" ", b"\n", b"\xc3\xa9", b"ok", b"  "])
        pieces.append((f"invalid-utf8/{v}", bytes(out), 0))
    # real prose with random byte damage (never creating an overlong ' ' or a code point > U+10FFFF)
    for v, (name, text) in enumerate(prose[:6]):
        b = bytearray(text)
        for _ in range(len(b) // 200):
            i = rng.randrange(len(b))
            b[i] = rng.choice([0x80, 0xBF, 0xC3, 0xE2, 0xF0, 0xFF, 0x00, b[i] ^ 0x40])
        pieces.append((f"invalid-utf8/damaged-{v}", sanitize_for_llama(bytes(b)), 0))
    raw = bytes(rng.randrange(256) for _ in range(8000))
    pieces.append(("invalid-utf8/random-bytes", sanitize_for_llama(raw), 0))
    return pieces


def sanitize_for_llama(b):
    """Breaks the two byte patterns llama.cpp aborts on (see the docstring) by replacing their lead byte."""
    b = bytearray(b)
    i = 0
    while i < len(b):
        c = b[i]
        cont = lambda k: i + k < len(b) and (b[i + k] & 0xC0) == 0x80
        if c in (0xC0, 0xC1) and cont(1):
            if (((c & 0x1F) << 6) | (b[i + 1] & 0x3F)) == 0x20:
                b[i] = 0x80
        elif 0xE0 <= c <= 0xEF and cont(1) and cont(2):
            if (((c & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F)) == 0x20:
                b[i] = 0x80
        elif 0xF0 <= c <= 0xF7 and cont(1) and cont(2) and cont(3):
            cp = ((c & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F)
            if cp == 0x20 or cp > 0x10FFFF:
                b[i] = 0x80
        i += 1
    return bytes(b)


def misc_pieces(rng):
    pieces = []
    nums = " ".join(str(rng.randrange(10 ** rng.randrange(1, 20))) for _ in range(2500))
    pieces.append(("misc/numbers", nums.encode(), 0))
    floats = ", ".join(f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 12)}f}" for _ in range(1200))
    pieces.append(("misc/floats", floats.encode(), 0))
    hexd = "\n".join(" ".join(f"{rng.randrange(256):02x}" for _ in range(16)) for _ in range(500))
    pieces.append(("misc/hexdump", hexd.encode(), 0))
    import base64
    pieces.append(("misc/base64", base64.b64encode(bytes(rng.randrange(256) for _ in range(9000))), 0))
    urls = "\n".join(f"https://{rng.choice(['example.com', 'gitlab.io', 'xn--bcher-kva.de'])}/"
                     f"{'/'.join(rng.choice(['a', 'b_c', 'd-e', '%20', '?q=1&x=2', '#frag', 'ü']) for _ in range(5))}"
                     for _ in range(400))
    pieces.append(("misc/urls", urls.encode("utf-8"), 0))
    pieces.append(("misc/repeats", b"a" * 5000 + b"\n" + b"=" * 3000 + b"\n" + b"-" * 3000 + b"\n" + b"ab" * 2000, 0))
    pieces.append(("misc/long-line", (" ".join(rng.choice(["lorem", "ipsum", "dolor", "sit", "amet", "élan", "naïve"])
                                               for _ in range(6000))).encode("utf-8"), 0))
    pieces.append(("misc/empty", b"", 0))
    pieces.append(("misc/empty-bos", b"", ADD_BOS))
    pieces.append(("misc/one-space", b" ", 0))
    pieces.append(("misc/one-newline", b"\n", ADD_BOS))
    return pieces


def llama_test_inputs():
    pieces = []
    d = os.path.join(LLAMA_SRC, "models")
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".inp") and "gemma-4" not in fn:
            data = read_bytes(os.path.join(d, fn))
            for i, t in enumerate(data.split(b"\n__ggml_vocab_test__\n")):
                pieces.append((f"llama-inp/{fn[:-4]}/{i}", t, 0))
    # merge the many tiny inputs into a few pieces (separated by a line) plus a few kept alone
    merged, cur, n = [], b"", 0
    for name, t, flags in pieces:
        cur += t + b"\n"
        if len(cur) >= PIECE_BYTES:
            merged.append((f"llama-inp/{n}", cur, 0))
            cur, n = b"", n + 1
    if cur:
        merged.append((f"llama-inp/{n}", cur, 0))
    return merged + pieces[:40]


def build_corpus():
    rng = random.Random(SEED)
    L = LLAMA_SRC
    pieces = []

    def add(name, files, budget, **kw):
        for n, t in sample_files(rng, name, files, budget, **kw):
            pieces.append((n, t, 0))

    add("code-c-headers", find_files(["/usr/include"], [".h"]), 120000)
    add("code-cpp", find_files([f"{L}/src", f"{L}/common", f"{L}/tools"], [".cpp", ".hpp"]), 150000)
    add("code-cuda", find_files([f"{L}/ggml/src/ggml-cuda"], [".cu", ".cuh"]), 60000)
    add("code-metal", find_files([f"{L}/ggml/src/ggml-metal"], [".metal", ".m"]), 40000)
    add("code-glsl", find_files([f"{L}/ggml/src/ggml-vulkan"], [".comp", ".glsl"]), 30000)
    add("code-wgsl", find_files([f"{L}/ggml/src/ggml-webgpu"], [".wgsl", ".tmpl"]), 20000)
    add("code-python", find_files(["/usr/lib/python3.11"], [".py"]), 130000)
    add("code-python-llama", find_files([f"{L}/gguf-py", f"{L}/conversion", f"{L}/scripts"], [".py"]), 50000)
    add("code-js-ts", find_files([f"{L}/tools", "/usr/share/nodejs", "/usr/lib/node_modules"], [".js", ".ts", ".svelte"]), 90000)
    add("code-perl", find_files(["/usr/share/perl"], [".pm", ".pl"]), 50000)
    add("code-php", find_files(["/usr"], [".php"]), 25000)
    add("code-swift-kotlin", find_files([L], [".swift", ".kt", ".java", ".go"]), 30000)
    add("code-shell", find_files([L, "/usr/share", "/usr/lib/git-core"], [".sh", ".bash"]), 40000)
    add("code-cmake", find_files([L], ["CMakeLists.txt", ".cmake"]), 30000)
    add("code-sql", find_files(["/usr"], [".sql"]), 20000)
    add("markup-html-css", find_files(["/usr/share/doc", L], [".html", ".css"]), 40000)
    add("data-json-yaml-xml", find_files([L, "/usr/share"], [".json", ".yaml", ".yml", ".xml", ".toml"]), 50000)
    add("docs-md-rst", find_files([L, "/usr/share/doc", "/usr/lib/python3/dist-packages"], [".md", ".rst"]), 60000)
    add("docs-man-en", find_files(["/usr/share/man/man1", "/usr/share/man/man3", "/usr/share/man/man5"], [".gz"]), 50000)
    add("docs-man-translated", find_files([f"/usr/share/man/{l}" for l in ["de", "fr", "es", "pl", "ru", "ja", "zh_CN", "uk", "it", "pt_BR"]], [".gz"]), 70000)
    add("docs-readme", find_files(["/usr/share/doc"], ["README", "copyright", "NEWS", "changelog.Debian.gz"]), 40000)

    prose = []
    for n, t in translations(rng, 18000):
        pieces.append((n, t, 0))
        prose.append((n, t))
    rng2 = random.Random(SEED + 1)
    # CRLF: the same kinds of text with Windows line endings
    for i, (n, t, f) in enumerate([p for p in pieces if p[0].startswith(("code-cpp", "code-python", "lang-fr", "lang-ru", "lang-ja"))][:8]):
        pieces.append((f"crlf/{i}", t.replace(b"\n", b"\r\n"), 0))
    # a sprinkling of pieces tokenized with BOS and with special parsing too (mostly they contain no
    # special-token text, so this checks the flags do not disturb ordinary text)
    extra = []
    for n, t, f in pieces[::17]:
        extra.append((n + "+bos+special", t, ADD_BOS | PARSE_SPECIAL))
    pieces += extra
    pieces += special_pieces(rng2)
    pieces += whitespace_pieces(rng2)
    pieces += emoji_pieces(rng2)
    pieces += invalid_utf8_pieces(rng2, prose[::7])
    pieces += misc_pieces(rng2)
    pieces += llama_test_inputs()
    return pieces


def tiny_corpus(corpus):
    """A varied ~120 KB subset for the 512-token vocabulary: mostly byte-fallback, which is the point."""
    rng = random.Random(SEED + 2)
    picked = [p for p in corpus if p[0].startswith(("specials/", "whitespace/", "invalid-utf8/", "misc/"))]
    others = [p for p in corpus if not p[0].startswith(("specials/", "whitespace/", "invalid-utf8/", "misc/"))]
    picked += rng.sample(others, 12)
    return [(n, t[:6000], f) for n, t, f in picked]


# ---------------------------------------------------------------- llama-tokenize
def llama_tokenize(vocab, text, flags):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        cmd = [os.path.join(ORACLE_BIN, "llama-tokenize"), "-m", vocab, "-f", f.name, "--ids", "--log-disable",
               "--no-escape"]
        if not flags & ADD_BOS:
            cmd.append("--no-bos")
        if not flags & PARSE_SPECIAL:
            cmd.append("--no-parse-special")
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"llama-tokenize failed ({r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
        return json.loads(r.stdout.decode().strip().splitlines()[-1])
    finally:
        os.unlink(f.name)


def tokenize_all(vocab, pieces, jobs):
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        futs = [ex.submit(llama_tokenize, vocab, t, f) for _, t, f in pieces]
        out = []
        for i, fu in enumerate(futs):
            out.append(fu.result())
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{len(pieces)}", file=sys.stderr)
        return out


# ---------------------------------------------------------------- container
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def write_container(path, pieces, ids):
    out = bytearray(b"G4TOKGOLD1\n")
    out += varint(len(pieces))
    for (name, text, flags), tok in zip(pieces, ids):
        nb = name.encode()
        out += varint(len(nb)) + nb + bytes([flags]) + varint(len(text)) + text + varint(len(tok))
        for t in tok:
            out += varint(t)
    with open(path, "wb") as f:
        f.write(lzma.compress(bytes(out), preset=9 | lzma.PRESET_EXTREME))
    return len(out)


def vocab_fingerprint(path):
    sys.path.insert(0, os.path.join(LLAMA_SRC, "gguf-py"))
    import gguf  # noqa: E402  (needs numpy: run with /usr/bin/python3 if the default python lacks it)
    r = gguf.GGUFReader(path)
    tok = r.fields["tokenizer.ggml.tokens"]
    h = 0xCBF29CE484222325
    n = 0
    for i in tok.data:
        for c in bytes(tok.parts[i]) + b"\0":
            h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        n += 1
    merges = len(r.fields["tokenizer.ggml.merges"].data)
    return f"{n} {merges} {h:016x}"


# ---------------------------------------------------------------- chat
def chat_conversations():
    """(name, thinking, generation_prompt, messages); a message is (role, [("text", T) | ("image",) | ("audio",)])."""
    S = ("system", [("text", "  You are a careful assistant.\nAnswer briefly.  ")])
    U1 = ("user", [("text", "What is in this picture?"), ("image",)])
    M1 = ("model", [("text", "<|channel>thought\nThe user wants a description.<channel|>A cat on a red sofa.")])
    U2 = ("user", [("audio",), ("text", " And what does this recording say? ")])
    M2 = ("model", [("text", "It says \"hello\".")])
    U3 = ("user", [("text", "Thanks!\tSummarize both.\n")])
    multi = [U1, M1, U2, M2, U3]
    convs = []
    for think in (False, True):
        t = "think" if think else "nothink"
        convs.append((f"single-user-{t}", think, True, [("user", [("text", "Hello there")])]))
        convs.append((f"system-user-{t}", think, True, [S, ("user", [("text", "Hi")])]))
        convs.append((f"multi-turn-{t}", think, True, multi))
        convs.append((f"multi-turn-system-{t}", think, True, [S] + multi))
    convs += [
        ("developer-first", False, True, [("developer", [("text", "Be terse.")]), ("user", [("text", "Ok?")])]),
        ("system-in-middle", False, True, [("user", [("text", "a")]), ("model", [("text", "b")]),
                                           ("system", [("text", "Now answer in French.")]), ("user", [("text", "c")])]),
        ("no-generation-prompt", False, False, [S, ("user", [("text", "Q")]), ("model", [("text", "A")])]),
        ("no-generation-prompt-think", True, False, [("user", [("text", "Q")]), ("model", [("text", "A")])]),
        ("trim-whitespace", False, True, [("user", [("text", " \t\n  spaced\u00a0out \r\n\x0b\x0c")]),
                                          ("model", [("text", "\n\n  answer  \n")]), ("user", [("text", "\u3000ideographic\u3000")])]),
        ("thought-variants", False, True, [("user", [("text", "go")]),
                                           ("model", [("text", "A<|channel>x<channel|>B<|channel>y<channel|>C")]),
                                           ("user", [("text", "again")]),
                                           ("model", [("text", "pre <|channel>unterminated thought")]),
                                           ("user", [("text", "and")]),
                                           ("model", [("text", "stray close<channel|> after")]), ("user", [("text", "end")])]),
        ("media-only", False, True, [("user", [("image",)]), ("model", [("text", "An image.")]), ("user", [("audio",)])]),
        ("two-images-audio", True, True, [("user", [("image",), ("image",), ("text", "Compare these, then"), ("audio",)])]),
        ("multi-text-parts", False, True, [("user", [("text", " first part "), ("text", "second\npart "), ("text", "  ")])]),
        ("consecutive-model", False, True, [("user", [("text", "q")]), ("model", [("text", "part one")]),
                                            ("model", [("text", "part two")]), ("user", [("text", "ok")])]),
        ("special-text-in-content", False, True, [("user", [("text", "Type <turn|> or <|channel>here<channel|> or <eos>")])]),
        ("multilingual", True, True, [S, ("user", [("text", "Переведи: «Guten Tag» — 你好 🙂 مرحبا")])]),
    ]
    return convs


def chat_cases(vocab, jobs):
    revised = os.path.join(LLAMA_SRC, "models", "templates", "google-gemma-4-31B-it.jinja")
    cases = []
    for tmpl_name, tmpl_file in (("original", ""), ("revised", revised)):
        for name, think, gen, msgs in chat_conversations():
            cases.append((f"{tmpl_name}/{name}", tmpl_name, tmpl_file, think, gen, msgs))
    oracle = os.path.join(tempfile.gettempdir(), "gemma4_chat_oracle")
    src = os.path.join(HERE, "chat_oracle.cpp")
    B = ORACLE_BUILD
    cmd = (["g++", "-std=c++17", "-O1", f"-I{LLAMA_SRC}/common", f"-I{LLAMA_SRC}/include", f"-I{LLAMA_SRC}/ggml/include",
            f"-I{LLAMA_SRC}/vendor", src, "-o", oracle] +
           [f"{B}/common/libllama-common.a", f"{B}/common/libllama-common-base.a", f"{B}/src/libllama.a",
            f"{B}/ggml/src/libggml.a", f"{B}/ggml/src/libggml-cpu.a", f"{B}/ggml/src/libggml-base.a",
            "-lpthread", "-fopenmp", "-ldl"])
    print("  building", oracle, file=sys.stderr)
    subprocess.run(cmd, check=True)
    role_map = {"model": "assistant"}
    spec = []
    for _, _, tmpl_file, think, gen, msgs in cases:
        spec.append({"template_file": tmpl_file, "enable_thinking": think, "add_generation_prompt": gen,
                     "messages": [{"role": role_map.get(r, r),
                                   "parts": [{"type": p[0], "text": p[1]} if p[0] == "text" else {"type": p[0]} for p in parts]}
                                  for r, parts in msgs]})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    r = subprocess.run([oracle, vocab, f.name], capture_output=True, check=True)
    os.unlink(f.name)
    rendered = json.loads(r.stdout.decode())
    ids = tokenize_all(vocab, [(c[0], t.encode(), ADD_BOS | PARSE_SPECIAL) for c, t in zip(cases, rendered)], jobs)
    return cases, rendered, ids


def esc(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_chat(path, cases, rendered, ids):
    lines = ["# Gemma 4 chat prompts rendered by llama.cpp de3ff81 (common_chat_templates_apply via chat_oracle.cpp)",
             "# and their ids from llama-tokenize (BOS added, special tokens parsed). llama.cpp cuts the template's",
             "# leading <bos> text and adds the BOS token instead, so `rendered` lacks it. Written by",
             "# make_tokenizer_golden.py; strings are C-escaped (\\\\ \\\" \\n \\t \\r \\xNN), UTF-8 otherwise.",
             "# template: original = tokenizer.chat_template of ggml-vocab-gemma-4.gguf;",
             "#           revised = llama.cpp models/templates/google-gemma-4-31B-it.jinja", ""]
    for (name, tmpl_name, _, think, gen, msgs), text, tok in zip(cases, rendered, ids):
        lines.append(f"case {name}")
        lines.append(f"template {tmpl_name}")
        lines.append(f"thinking {int(think)}")
        lines.append(f"generation_prompt {int(gen)}")
        for role, parts in msgs:
            lines.append(f"message {role}")
            for p in parts:
                lines.append(f"text {esc(p[1])}" if p[0] == "text" else p[0])
        lines.append(f"rendered {esc(text)}")
        lines.append("ids " + " ".join(map(str, tok)))
        lines.append("end")
        lines.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main():
    try:
        import numpy  # noqa: F401  (gguf-py needs it for the tiny vocabulary's fingerprint)
    except ImportError:
        if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default=os.environ.get("GEMMA4_VOCAB", os.path.expanduser("~/.cache/gemma4/vocab/ggml-vocab-gemma-4.gguf")))
    ap.add_argument("--tiny", default=os.environ.get("GEMMA4_TINY_MODEL", "/tmp/m/gemma4-tiny-f32.gguf"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", choices=["corpus", "tiny", "chat"], action="append")
    a = ap.parse_args()
    todo = a.only or ["corpus", "tiny", "chat"]

    corpus = build_corpus()
    if "corpus" in todo:
        total = sum(len(t) for _, t, _ in corpus)
        print(f"corpus: {len(corpus)} pieces, {total} bytes", file=sys.stderr)
        ids = tokenize_all(a.vocab, corpus, a.jobs)
        raw = write_container(os.path.join(HERE, "corpus.bin.xz"), corpus, ids)
        print(f"corpus.bin.xz: {raw} bytes before xz, {sum(map(len, ids))} ids", file=sys.stderr)
    if "tiny" in todo:
        tiny = tiny_corpus(corpus)
        ids = tokenize_all(a.tiny, tiny, a.jobs)
        header = ("#vocab", vocab_fingerprint(a.tiny).encode(), 0)
        write_container(os.path.join(HERE, "tiny.bin.xz"), [header] + tiny, [[]] + ids)
        print(f"tiny.bin.xz: {len(tiny)} pieces, {sum(len(t) for _, t, _ in tiny)} bytes", file=sys.stderr)
    if "chat" in todo:
        cases, rendered, ids = chat_cases(a.vocab, a.jobs)
        write_chat(os.path.join(HERE, "chat_cases.txt"), cases, rendered, ids)
        print(f"chat_cases.txt: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
