// Shared by the media tests (tests/unit/media_*_test.cpp, tests/model/multimodal_test.cpp): the committed
// multimodal goldens of tests/golden/make_media_golden.py, and the synthetic media it also makes.
//
// synth_image / synth_audio mirror the script's functions of the same names with integer arithmetic only,
// so both produce the same bytes: the large inputs (a 4000x3000 image, 31 s clips) are regenerated here
// instead of being committed, and the oracle saw them as PNG / 16-bit WAV files.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "gemma4/gemma4.h"
#include "util/npy.h"

namespace gemma4::test {

/// The code of the gemma4::Error that `f` throws (the test fails if it throws none).
inline ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    FAIL("no gemma4::Error thrown");
    return ErrorCode::invalid_argument;
}

inline const std::string kMediaGolden = std::string(GEMMA4_TEST_DATA_DIR) + "/golden/mm";
inline const std::string kMediaDir = kMediaGolden + "/media";

inline std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// uint8 [h][w][3]: rings (R), 16-pixel blocks with hashed noise in the lower-right quarter (G), a ramp (B).
inline std::vector<uint8_t> synth_image(int w, int h, int64_t seed) {
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
    for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
            const int64_t r = (((x * x + y * y) * (seed + 1)) >> 10) & 255;
            int64_t g = (((x >> 4) ^ (y >> 4)) * 37 + seed * 11) & 255;
            if (2 * x >= w && 2 * y >= h) g = ((x * 73856093) ^ (y * 19349663) ^ (seed * 83492791)) & 255;
            const int64_t b = ((x * 255) / std::max(w - 1, 1) + (y * 255) / std::max(h - 1, 1)) >> 1;
            uint8_t* p = px.data() + (static_cast<size_t>(y) * w + x) * 3;
            p[0] = static_cast<uint8_t>(r);
            p[1] = static_cast<uint8_t>(g);
            p[2] = static_cast<uint8_t>(b);
        }
    }
    return px;
}

/// int16 [n][channels]: a triangle wave with a stepped envelope plus hashed noise; every 7th second (from the
/// 4th) silent.
inline std::vector<int16_t> synth_audio(int64_t n, int channels, int64_t seed) {
    std::vector<int16_t> out(static_cast<size_t>(n) * channels);
    for (int c = 0; c < channels; ++c) {
        const int64_t f = 440 + 220 * c + 37 * seed;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t phase = (i * f * 65536 / 16000) & 65535;
            const int64_t tri = std::abs(phase - 32768);
            const int64_t env = (i / 8000) % 4 + 1;
            uint64_t h = (static_cast<uint64_t>(i) * 2654435761u + seed * 97 + c * 7919) & 0xFFFFFFFFu;
            h ^= h >> 15;
            h = (h * 2246822519u) & 0xFFFFFFFFu;
            h ^= h >> 13;
            const int64_t noise = static_cast<int64_t>(h & 4095) - 2048;
            int64_t s = ((tri * env) >> 2) - 4096 * env + noise;
            if ((i / 16000) % 7 == 3) s = 0;
            out[static_cast<size_t>(i) * channels + c] = static_cast<int16_t>(s);
        }
    }
    return out;
}

/// A 16-bit PCM WAV file image.
inline std::vector<uint8_t> wav16(const std::vector<int16_t>& pcm, int channels, int rate) {
    std::vector<uint8_t> b;
    auto u16 = [&](uint32_t v) { b.push_back(v & 255); b.push_back((v >> 8) & 255); };
    auto u32 = [&](uint32_t v) { u16(v & 0xFFFF); u16(v >> 16); };
    auto tag = [&](const char* s) { b.insert(b.end(), s, s + 4); };
    const uint32_t data_bytes = static_cast<uint32_t>(pcm.size() * 2);
    tag("RIFF"); u32(36 + data_bytes); tag("WAVE");
    tag("fmt "); u32(16); u16(1); u16(channels); u32(rate); u32(rate * channels * 2); u16(channels * 2); u16(16);
    tag("data"); u32(data_bytes);
    for (int16_t s : pcm) u16(static_cast<uint16_t>(s));
    return b;
}

struct MediaCase {
    std::string name, kind, source;
    int n_tokens = 0;
    bool image() const { return kind == "image"; }
};

inline std::vector<MediaCase> media_cases() {
    std::ifstream in(kMediaGolden + "/cases.txt");
    std::vector<MediaCase> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        MediaCase c;
        ss >> c.name >> c.kind >> c.source >> c.n_tokens;
        out.push_back(c);
    }
    return out;
}

/// Splits "synth_image:W:H:SEED" into its numbers (empty if `source` is a file name).
inline std::vector<int64_t> synth_args(const std::string& source, const std::string& prefix) {
    if (source.rfind(prefix + ":", 0) != 0) return {};
    std::vector<int64_t> v;
    std::stringstream ss(source.substr(prefix.size() + 1));
    std::string item;
    while (std::getline(ss, item, ':')) v.push_back(std::stoll(item));
    return v;
}

/// The image of a case source (a file in mm/media/ or synth_image:W:H:SEED).
inline Image load_image(const std::string& source) {
    const auto s = synth_args(source, "synth_image");
    if (s.empty()) return Image::from_file(kMediaDir + "/" + source);
    const auto px = synth_image(static_cast<int>(s[0]), static_cast<int>(s[1]), s[2]);
    return Image::from_rgb8(static_cast<int>(s[0]), static_cast<int>(s[1]), px);
}

/// The audio of a case source (a WAV in mm/media/ or synth_audio:FRAMES:CHANNELS:SEED at 16 kHz, via WAV bytes).
inline Audio load_audio(const std::string& source) {
    const auto s = synth_args(source, "synth_audio");
    if (s.empty()) return Audio::from_file(kMediaDir + "/" + source);
    const int channels = static_cast<int>(s[1]);
    return Audio::from_memory(wav16(synth_audio(s[0], channels, s[2]), channels, 16000), source);
}

/// |a - b| / |b| over all values.
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
    double d2 = 0, b2 = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        d2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        b2 += double(b[i]) * b[i];
    }
    return b2 > 0 ? std::sqrt(d2 / b2) : std::sqrt(d2);
}

/// The stored rows of a case: rows[] of the full [n_tokens][d] array.
inline std::vector<float> pick_rows(const std::vector<float>& all, const std::vector<int32_t>& rows, size_t d) {
    std::vector<float> out;
    for (int32_t r : rows) out.insert(out.end(), all.begin() + r * d, all.begin() + (r + 1) * d);
    return out;
}

}  // namespace gemma4::test
