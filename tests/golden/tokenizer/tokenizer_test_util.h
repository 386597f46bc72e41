// Helpers shared by tests/unit/tokenizer_test.cpp, tests/unit/chat_template_test.cpp and
// bench/kernels/tokenizer_bench.cpp: locating the real Gemma 4 vocabulary, reading the goldens of
// make_tokenizer_golden.py, and building small GGUF files in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "model/tokenizer.h"

namespace gemma4::test {

/// This folder: from the test suites' GEMMA4_TEST_DATA_DIR, or (benchmarks) from this header's own path.
inline std::string tokenizer_golden_dir() {
#ifdef GEMMA4_TEST_DATA_DIR
    return std::string(GEMMA4_TEST_DATA_DIR) + "/golden/tokenizer";
#else
    return std::filesystem::path(__FILE__).parent_path().string();
#endif
}

/// The real vocabulary: $GEMMA4_VOCAB, else what scripts/fetch-vocab.sh caches in
/// $HOME/.cache/gemma4/vocab. Empty when absent (tests then skip with a warning).
inline std::string real_vocab_path() {
    if (const char* env = std::getenv("GEMMA4_VOCAB"); env && *env) {
        return std::filesystem::exists(env) ? std::string(env) : std::string();
    }
    const char* home = std::getenv("HOME");
    if (!home) return {};
    const std::string p = std::string(home) + "/.cache/gemma4/vocab/ggml-vocab-gemma-4.gguf";
    return std::filesystem::exists(p) ? p : std::string();
}

inline constexpr const char* kNoVocabMessage =
    "real Gemma 4 vocabulary not found: run scripts/fetch-vocab.sh or set GEMMA4_VOCAB (test skipped)";

/// The real vocabulary's GGUF and tokenizer, loaded once per test binary; nullptr when absent.
struct RealVocab {
    GgufFile file;
    Tokenizer tokenizer;
};
inline const RealVocab* real_vocab() {
    static const std::unique_ptr<RealVocab> vocab = []() -> std::unique_ptr<RealVocab> {
        const std::string path = real_vocab_path();
        if (path.empty()) return nullptr;
        GgufFile f = GgufFile::open(path);
        Tokenizer t = Tokenizer::from_gguf(f);
        return std::make_unique<RealVocab>(RealVocab{std::move(f), std::move(t)});
    }();
    return vocab.get();
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Decompresses an .xz golden with the xz tool (present on every Debian system: dpkg depends on it).
inline std::string read_xz(const std::string& path) {
    if (!std::filesystem::exists(path)) throw std::runtime_error("missing golden " + path);
    const std::string cmd = "xz -dc '" + path + "'";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
    if (!pipe) throw std::runtime_error("cannot run " + cmd);
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
    if (pclose(pipe.release()) != 0 || out.empty()) throw std::runtime_error(cmd + " failed");
    return out;
}

/// One piece of a .bin golden (format in make_tokenizer_golden.py).
struct GoldenPiece {
    std::string name;
    bool add_bos = false;
    bool parse_special = false;
    std::string text;
    std::vector<int32_t> ids;
};

inline std::vector<GoldenPiece> read_golden_container(const std::string& path) {
    const std::string data = read_xz(path);
    constexpr std::string_view kMagic = "G4TOKGOLD1\n";
    if (data.compare(0, kMagic.size(), kMagic) != 0) throw std::runtime_error(path + ": bad magic");
    size_t pos = kMagic.size();
    const auto varint = [&]() {
        uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
            if (pos >= data.size() || shift > 63) throw std::runtime_error(path + ": truncated varint");
            const uint8_t b = static_cast<uint8_t>(data[pos++]);
            v |= static_cast<uint64_t>(b & 0x7F) << shift;
            if (!(b & 0x80)) return v;
        }
    };
    const auto bytes = [&](uint64_t n) {
        if (n > data.size() - pos) throw std::runtime_error(path + ": truncated");
        std::string s = data.substr(pos, n);
        pos += n;
        return s;
    };
    std::vector<GoldenPiece> out(varint());
    for (GoldenPiece& p : out) {
        p.name = bytes(varint());
        const uint8_t flags = static_cast<uint8_t>(bytes(1)[0]);
        p.add_bos = flags & 1;
        p.parse_special = flags & 2;
        p.text = bytes(varint());
        p.ids.resize(varint());
        for (int32_t& id : p.ids) id = static_cast<int32_t>(varint());
    }
    return out;
}

/// What llama.cpp feeds its BPE for raw bytes: each byte that does not start a sequence of the lenient form
/// (lead byte, then the right number of 10xxxxxx bytes) becomes U+FFFD; other sequences are re-encoded
/// canonically. A deliberately simple second implementation for the round-trip check.
inline std::string llama_sanitized(std::string_view s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<uint8_t>(s[i]);
        int need = b < 0x80 ? 0 : b < 0xC0 ? -1 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : b < 0xF8 ? 3 : -1;
        uint32_t cp = need == 0 ? b : need == 1 ? (b & 0x1F) : need == 2 ? (b & 0x0F) : (b & 0x07);
        bool ok = need >= 0 && i + need < s.size();
        for (int k = 1; ok && k <= need; ++k) {
            const auto c = static_cast<uint8_t>(s[i + k]);
            ok = (c & 0xC0) == 0x80;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (!ok || cp > 0x10FFFF) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        i += static_cast<size_t>(need) + 1;
    }
    return out;
}

/// A GGUF v3 file with metadata only, built in memory for tokenizer tests.
class MiniGguf {
public:
    MiniGguf& str(const std::string& key, std::string_view value) {
        key_(key, 8);
        str_(value);
        ++n_kv_;
        return *this;
    }
    MiniGguf& u32(const std::string& key, uint32_t value) {
        key_(key, 4);
        raw(&value, 4);
        ++n_kv_;
        return *this;
    }
    MiniGguf& boolean(const std::string& key, bool value) {
        key_(key, 7);
        const uint8_t b = value;
        raw(&b, 1);
        ++n_kv_;
        return *this;
    }
    MiniGguf& strings(const std::string& key, const std::vector<std::string>& values) {
        key_(key, 9);
        const uint32_t type = 8;
        raw(&type, 4);
        const uint64_t n = values.size();
        raw(&n, 8);
        for (const auto& v : values) str_(v);
        ++n_kv_;
        return *this;
    }
    MiniGguf& i32s(const std::string& key, const std::vector<int32_t>& values) {
        key_(key, 9);
        const uint32_t type = 5;
        raw(&type, 4);
        const uint64_t n = values.size();
        raw(&n, 8);
        raw(values.data(), values.size() * 4);
        ++n_kv_;
        return *this;
    }
    GgufFile build(const std::string& name = "mini.gguf") const {
        std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
        const auto put = [&](const void* p, size_t n) {
            out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
        };
        const uint32_t version = 3;
        const uint64_t n_tensors = 0;
        put(&version, 4);
        put(&n_tensors, 8);
        put(&n_kv_, 8);
        out.insert(out.end(), body_.begin(), body_.end());
        while (out.size() % 32) out.push_back(0);
        return GgufFile::from_bytes(std::move(out), name);
    }

private:
    void raw(const void* p, size_t n) {
        body_.insert(body_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    }
    void str_(std::string_view s) {
        const uint64_t n = s.size();
        raw(&n, 8);
        raw(s.data(), s.size());
    }
    void key_(const std::string& key, uint32_t type) {
        str_(key);
        raw(&type, 4);
    }
    std::vector<uint8_t> body_;
    uint64_t n_kv_ = 0;
};

/// A small Gemma-4-style vocabulary: the 24 special tokens of the real one (same types), 256 byte tokens,
/// and `normal` tokens; `merges` as "left right" strings.
inline MiniGguf mini_vocab(const std::vector<std::string>& normal, const std::vector<std::string>& merges) {
    std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>", "<|think|>",
                                       "<|image|>", "<|audio|>", "<|channel>", "<channel|>", "<|tool_response>", "<|\"|>"};
    std::vector<int32_t> types = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4};
    char buf[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        types.push_back(6);
    }
    for (const auto& t : normal) {
        tokens.push_back(t);
        types.push_back(1);
    }
    MiniGguf g;
    g.str("general.architecture", "gemma4")
        .str("tokenizer.ggml.model", "gemma4")
        .strings("tokenizer.ggml.tokens", tokens)
        .i32s("tokenizer.ggml.token_type", types)
        .strings("tokenizer.ggml.merges", merges)
        .u32("tokenizer.ggml.bos_token_id", 2)
        .u32("tokenizer.ggml.eos_token_id", 1)
        .boolean("tokenizer.ggml.add_bos_token", true);
    return g;
}

/// Id of the first normal token in mini_vocab().
inline constexpr int32_t kMiniFirstNormal = 14 + 256;

}  // namespace gemma4::test
