#include "multimodal/audio/wav.h"

#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "gemma4/error.h"

namespace gemma4::detail {
namespace {

constexpr uint16_t kTagPcm = 1;
constexpr uint16_t kTagFloat = 3;
constexpr uint16_t kTagExtensible = 0xFFFE;
constexpr size_t kFmtBytes = 16;            // the fields every fmt chunk has
constexpr size_t kFmtExtensibleBytes = 40;  // plus cbSize, valid bits, channel mask, sub-format GUID
// The sub-format GUID of WAVE_FORMAT_EXTENSIBLE is {tag}-0000-0010-8000-00AA00389B71: bytes 2..15 fixed.
constexpr uint8_t kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
constexpr int kMinRateHz = 1000;
constexpr int kMaxRateHz = 768000;
constexpr int kMaxChannels = 64;

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}

const char* tag_name(uint16_t tag) {
    switch (tag) {
        case 2: return " (Microsoft ADPCM)";
        case 6: return " (A-law)";
        case 7: return " (mu-law)";
        case 0x11: return " (IMA ADPCM)";
        case 0x55: return " (MPEG layer 3)";
        default: return "";
    }
}

struct Format {
    uint16_t tag = 0;       // kTagPcm or kTagFloat after resolving EXTENSIBLE
    int channels = 0;
    int rate = 0;
    int block_align = 0;
    int container_bytes = 0;
};

Format parse_fmt(const uint8_t* p, size_t size, const std::string& name) {
    if (size < kFmtBytes) throw Error(ErrorCode::invalid_file, fmt::format("{}: fmt chunk of {} bytes is too short (16 needed)", name, size));
    Format f;
    uint16_t tag = u16(p);
    const int channels = u16(p + 2);
    const uint32_t rate = u32(p + 4);
    const int block_align = u16(p + 12);
    const int bits = u16(p + 14);
    if (tag == kTagExtensible) {
        if (size < kFmtExtensibleBytes) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes is too short ({} needed)",
                                                             name, size, kFmtExtensibleBytes));
        }
        const int valid_bits = u16(p + 18);
        if (valid_bits > bits) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: {} valid bits in a {}-bit container", name, valid_bits, bits));
        }
        if (std::memcmp(p + 26, kGuidTail, sizeof kGuidTail) != 0) {
            throw Error(ErrorCode::invalid_argument, name + ": unsupported WAVE_FORMAT_EXTENSIBLE sub-format (not PCM or IEEE float)");
        }
        tag = u16(p + 24);
    }
    if (tag != kTagPcm && tag != kTagFloat) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: unsupported WAV encoding: format tag {}{}; supported are PCM 8/16/24/32-bit and IEEE float 32/64-bit",
                                name, tag, tag_name(tag)));
    }
    if (channels == 0) throw Error(ErrorCode::invalid_file, name + ": the fmt chunk declares 0 channels");
    if (rate == 0) throw Error(ErrorCode::invalid_file, name + ": the fmt chunk declares a sample rate of 0 Hz");
    if (channels > kMaxChannels) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: {} channels (at most {} supported)", name, channels, kMaxChannels));
    }
    if (rate < kMinRateHz || rate > kMaxRateHz) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: sample rate {} Hz is outside {}..{} Hz", name, rate, kMinRateHz, kMaxRateHz));
    }
    const bool int_ok = tag == kTagPcm && (bits == 8 || bits == 16 || bits == 24 || bits == 32);
    const bool float_ok = tag == kTagFloat && (bits == 32 || bits == 64);
    if (!int_ok && !float_ok) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: unsupported {}-bit {} samples", name, bits, tag == kTagPcm ? "PCM" : "float"));
    }
    f.tag = tag;
    f.channels = channels;
    f.rate = static_cast<int>(rate);
    f.container_bytes = bits / 8;
    f.block_align = block_align;
    if (block_align != channels * f.container_bytes) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: block align {} does not match {} channels of {}-bit samples ({} bytes)",
                                                         name, block_align, channels, bits, channels * f.container_bytes));
    }
    return f;
}

float sample_at(const uint8_t* p, const Format& f) {
    if (f.tag == kTagFloat) {
        if (f.container_bytes == 4) {
            float v;
            std::memcpy(&v, p, 4);  // little-endian host (x86-64)
            return v;
        }
        double v;
        std::memcpy(&v, p, 8);
        return static_cast<float>(v);
    }
    switch (f.container_bytes) {
        case 1: return (static_cast<float>(p[0]) - 128.0f) / 128.0f;
        case 2: return static_cast<float>(static_cast<int16_t>(u16(p))) / 32768.0f;
        case 3: {
            // Sign-extend the 24-bit value from the top byte.
            const int32_t v = static_cast<int32_t>((static_cast<uint32_t>(p[0]) << 8) | (static_cast<uint32_t>(p[1]) << 16) |
                                                   (static_cast<uint32_t>(p[2]) << 24)) >> 8;
            return static_cast<float>(v) / 8388608.0f;
        }
        default: return static_cast<float>(static_cast<double>(static_cast<int32_t>(u32(p))) / 2147483648.0);
    }
}

// A chunk id for messages: non-printable bytes as '?'.
std::string printable(std::string id) {
    for (char& c : id) {
        if (c < 0x20 || c > 0x7E) c = '?';
    }
    return id;
}

}  // namespace

bool looks_like_wav(std::span<const uint8_t> bytes) {
    return bytes.size() >= 12 && std::memcmp(bytes.data(), "RIFF", 4) == 0 && std::memcmp(bytes.data() + 8, "WAVE", 4) == 0;
}

PcmClip decode_wav(std::span<const uint8_t> bytes, const std::string& name) {
    if (bytes.empty()) throw Error(ErrorCode::invalid_file, name + ": empty (0 bytes), not a WAV file");
    if (!looks_like_wav(bytes)) throw Error(ErrorCode::invalid_file, name + ": not a WAV file (no RIFF/WAVE header)");
    std::optional<Format> format;
    size_t at = 12;
    while (true) {
        if (bytes.size() - at < 8) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: no {} chunk before the end of the file", name, format ? "data" : "fmt"));
        }
        const uint8_t* head = bytes.data() + at;
        const std::string id(reinterpret_cast<const char*>(head), 4);
        const uint64_t size = u32(head + 4);
        const size_t body = at + 8;
        const size_t left = bytes.size() - body;
        if (id == "data") {
            if (!format) throw Error(ErrorCode::invalid_file, name + ": data chunk before the fmt chunk");
            if (size > left) {
                throw Error(ErrorCode::invalid_file, fmt::format("{}: the data chunk declares {} bytes but only {} follow "
                                                                 "(truncated, or a lying header)", name, size, left));
            }
            if (size % format->block_align != 0) {
                throw Error(ErrorCode::invalid_file, fmt::format("{}: data chunk of {} bytes is not a whole number of {}-byte frames",
                                                                 name, size, format->block_align));
            }
            if (size == 0) throw Error(ErrorCode::invalid_argument, name + ": the WAV file has no samples");
            PcmClip clip;
            clip.sample_rate_hz = format->rate;
            clip.channels = format->channels;
            const size_t n = size / format->container_bytes;
            clip.samples.resize(n);
            for (size_t i = 0; i < n; ++i) clip.samples[i] = sample_at(bytes.data() + body + i * format->container_bytes, *format);
            return clip;
        }
        if (size > left) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: chunk '{}' declares {} bytes but only {} follow", name,
                                                             printable(id), size, left));
        }
        if (id == "fmt ") {
            if (format) throw Error(ErrorCode::invalid_file, name + ": two fmt chunks");
            format = parse_fmt(bytes.data() + body, size, name);
        }
        at = body + size + (size & 1);  // chunks are padded to an even size
        if (at > bytes.size()) at = bytes.size();
    }
}

}  // namespace gemma4::detail
