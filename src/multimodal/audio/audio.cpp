// gemma4::Audio: WAV or raw PCM in, 16 kHz mono f32 out (down-mix, then band-limited resampling; see
// multimodal/audio/resample.h and wav.h).
#include <cmath>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gemma4/media.h"
#include "multimodal/audio/resample.h"
#include "multimodal/audio/wav.h"
#include "util/mapped_file.h"

namespace gemma4 {
namespace {

constexpr int kMinRateHz = 1000;
constexpr int kMaxRateHz = 768000;
constexpr int kMaxChannels = 64;

std::vector<float> to_16k_mono(std::span<const float> interleaved, int rate_hz, int channels, const std::string& name) {
    if (channels < 1 || channels > kMaxChannels) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: {} channels is outside 1..{}", name, channels, kMaxChannels));
    }
    if (rate_hz < kMinRateHz || rate_hz > kMaxRateHz) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: sample rate {} Hz is outside {}..{} Hz", name, rate_hz, kMinRateHz, kMaxRateHz));
    }
    if (interleaved.empty()) throw Error(ErrorCode::invalid_argument, name + ": no samples");
    if (interleaved.size() % static_cast<size_t>(channels) != 0) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: {} samples are not whole frames of {} channels", name,
                                                             interleaved.size(), channels));
    }
    for (size_t i = 0; i < interleaved.size(); ++i) {
        if (!std::isfinite(interleaved[i])) {
            throw Error(ErrorCode::invalid_argument, fmt::format("{}: sample {} (frame {}, channel {}) is {}", name, i, i / channels,
                                                                 i % channels, interleaved[i]));
        }
    }
    const std::vector<float> mono = detail::downmix(interleaved, channels);
    return detail::resample(mono, rate_hz, Audio::kSampleRateHz);
}

}  // namespace

Audio::Audio(std::vector<float> samples) : samples_(std::move(samples)) {}

Audio Audio::from_pcm_f32(std::span<const float> samples, int sample_rate_hz, int channels) {
    return Audio(to_16k_mono(samples, sample_rate_hz, channels, "audio"));
}

Audio Audio::from_memory(std::span<const uint8_t> bytes, const std::string& name) {
    const detail::PcmClip clip = detail::decode_wav(bytes, name);
    return Audio(to_16k_mono(clip.samples, clip.sample_rate_hz, clip.channels, name));
}

Audio Audio::from_file(const std::string& path) {
    const detail::MappedFile file = detail::MappedFile::open(path);
    return from_memory(std::span<const uint8_t>(file.data(), file.size_bytes()), path);
}

}  // namespace gemma4
