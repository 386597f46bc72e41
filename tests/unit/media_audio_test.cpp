// Audio: WAV decoding (PCM 8/16/24/32-bit, float 32/64, WAVE_FORMAT_EXTENSIBLE, mono and multi-channel),
// down-mixing, the band-limited resampler (against sox `rate -v`, committed by
// tests/golden/make_media_golden.py, and against analytic tones), and bad input.
//
// Resampler bounds: >= 60 dB SNR against sox on the committed tones and noise (the bound; both sides
// are linear-phase filters that pass these band-limited signals flat, so only ripple and rounding differ);
// >= 70 dB against the exact sine for pure tones inside the passband at any rate pair, the exactly
// precomputed polyphase bank and the interpolated kernel table alike; images and aliases of out-of-band
// tones at least 100 dB down (the filter's stop band is 120 dB).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <numbers>
#include <random>

#include "golden/mm/media_test_util.h"
#include "multimodal/audio/resample.h"
#include "multimodal/audio/wav.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

// A WAV file image with any fmt fields and raw data bytes.
struct WavSpec {
    uint16_t tag = 1;
    uint16_t channels = 1;
    uint32_t rate = 16000;
    uint16_t bits = 16;
    int block_align = -1;           // -1: channels * bits / 8
    int extensible_tag = -1;        // >= 0: write WAVE_FORMAT_EXTENSIBLE with this sub-format
    int64_t data_size = -1;         // -1: the real size
};

std::vector<uint8_t> make_wav(const WavSpec& s, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> b;
    auto u16 = [&](uint32_t v) { b.push_back(v & 255); b.push_back((v >> 8) & 255); };
    auto u32 = [&](uint32_t v) { u16(v & 0xFFFF); u16(v >> 16); };
    auto tag = [&](const char* t) { b.insert(b.end(), t, t + 4); };
    const int align = s.block_align >= 0 ? s.block_align : s.channels * s.bits / 8;
    tag("RIFF"); u32(0); tag("WAVE");
    tag("LIST"); u32(5); b.insert(b.end(), {'I', 'N', 'F', 'O', 'x'}); b.push_back(0);  // odd chunk + pad byte
    tag("fmt ");
    if (s.extensible_tag >= 0) {
        u32(40); u16(0xFFFE);
    } else {
        u32(16); u16(s.tag);
    }
    u16(s.channels); u32(s.rate); u32(s.rate * align); u16(align); u16(s.bits);
    if (s.extensible_tag >= 0) {
        u16(22); u16(s.bits); u32(0);
        u16(s.extensible_tag);
        const uint8_t tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
        b.insert(b.end(), tail, tail + 14);
    }
    tag("data"); u32(static_cast<uint32_t>(s.data_size >= 0 ? s.data_size : static_cast<int64_t>(data.size())));
    b.insert(b.end(), data.begin(), data.end());
    const uint32_t riff = static_cast<uint32_t>(b.size() - 8);
    std::memcpy(b.data() + 4, &riff, 4);
    return b;
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
    std::vector<uint8_t> b(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

double snr_db(std::span<const float> ours, std::span<const float> ref) {
    double s = 0, e = 0;
    for (size_t i = 0; i < std::min(ours.size(), ref.size()); ++i) {
        s += double(ref[i]) * ref[i];
        e += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
    }
    return 10.0 * std::log10(s / std::max(e, 1e-300));
}

std::vector<float> tone(int rate, double hz, int n, double phase = 0.3) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(0.5 * std::sin(2 * std::numbers::pi * hz * i / rate + phase));
    return x;
}

}  // namespace

TEST_CASE("WAV: every PCM and float encoding decodes to x / 2^(bits-1)", "[unit]") {
    // Values chosen to hit the extremes of each width.
    SECTION("8-bit unsigned") {
        const detail::PcmClip c = detail::decode_wav(make_wav({.bits = 8}, {0, 128, 255, 64}), "u8");
        CHECK(c.samples == std::vector<float>{-1.0f, 0.0f, 127.0f / 128.0f, -0.5f});
    }
    SECTION("16-bit") {
        const std::vector<int16_t> v = {-32768, 0, 32767, 16384};
        const detail::PcmClip c = detail::decode_wav(make_wav({.bits = 16}, bytes_of(v)), "s16");
        CHECK(c.samples == std::vector<float>{-1.0f, 0.0f, 32767.0f / 32768.0f, 0.5f});
    }
    SECTION("24-bit") {
        const std::vector<uint8_t> d = {0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x40, 0xFF, 0xFF, 0xFF};
        const detail::PcmClip c = detail::decode_wav(make_wav({.bits = 24}, d), "s24");
        CHECK(c.samples == std::vector<float>{-1.0f, 8388607.0f / 8388608.0f, 0.5f, -1.0f / 8388608.0f});
    }
    SECTION("32-bit, plain and extensible") {
        const std::vector<int32_t> v = {INT32_MIN, 1 << 30, -1};
        const std::vector<float> want = {-1.0f, 0.5f, static_cast<float>(-1.0 / 2147483648.0)};
        CHECK(detail::decode_wav(make_wav({.bits = 32}, bytes_of(v)), "s32").samples == want);
        CHECK(detail::decode_wav(make_wav({.bits = 32, .extensible_tag = 1}, bytes_of(v)), "s32x").samples == want);
    }
    SECTION("float 32 and 64, plain and extensible") {
        const std::vector<float> f = {-1.5f, 0.25f, 1e-8f};
        CHECK(detail::decode_wav(make_wav({.tag = 3, .bits = 32}, bytes_of(f)), "f32").samples == f);
        CHECK(detail::decode_wav(make_wav({.bits = 32, .extensible_tag = 3}, bytes_of(f)), "f32x").samples == f);
        const std::vector<double> d = {-1.5, 0.25, 1e-8};
        CHECK(detail::decode_wav(make_wav({.tag = 3, .bits = 64}, bytes_of(d)), "f64").samples == f);
    }
    SECTION("channels are interleaved; Audio averages them") {
        const std::vector<int16_t> v = {16384, -16384, 8192, 0, -32768, 32767};  // 3 channels x 2 frames
        const auto wav = make_wav({.channels = 3, .rate = 16000, .bits = 16}, bytes_of(v));
        const detail::PcmClip c = detail::decode_wav(wav, "3ch");
        CHECK(c.channels == 3);
        CHECK(c.samples.size() == 6);
        const Audio a = Audio::from_memory(wav, "3ch");
        REQUIRE(a.samples().size() == 2);
        CHECK(a.samples()[0] == Approx((0.5f - 0.5f + 0.25f) / 3.0f));
        CHECK(a.samples()[1] == Approx((0.0f - 1.0f + 32767.0f / 32768.0f) / 3.0f));
    }
}

TEST_CASE("committed WAV clips: file and memory agree; stereo is the mean of the channels", "[unit]") {
    const Audio a = Audio::from_file(kMediaDir + "/a1s_stereo.wav");
    const Audio b = Audio::from_memory(read_bytes(kMediaDir + "/a1s_stereo.wav"));
    REQUIRE(a.samples().size() == 16000);
    CHECK(std::equal(a.samples().begin(), a.samples().end(), b.samples().begin()));
    const std::vector<int16_t> pcm = synth_audio(16000, 2, 4);
    bool ok = true;
    for (size_t i = 0; i < 16000; ++i) {
        const float want = (pcm[2 * i] / 32768.0f + pcm[2 * i + 1] / 32768.0f) / 2.0f;
        ok = ok && a.samples()[i] == want;
    }
    CHECK(ok);
    CHECK(a.duration_s() == 1.0);
}

TEST_CASE("bad audio gives a clear gemma4::Error", "[unit]") {
    const std::vector<int16_t> v(100, 1000);
    const auto good = make_wav({}, bytes_of(v));
    CHECK_NOTHROW(Audio::from_memory(good));
    // A lying header: the data chunk claims more than the file has; or a partial frame.
    CHECK(code_of([&] { Audio::from_memory(make_wav({.data_size = 4000}, bytes_of(v))); }) == ErrorCode::invalid_file);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.channels = 2}, std::vector<uint8_t>(6))); }) == ErrorCode::invalid_file);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.block_align = 3}, bytes_of(v))); }) == ErrorCode::invalid_file);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.channels = 0}, bytes_of(v))); }) == ErrorCode::invalid_file);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.rate = 0}, bytes_of(v))); }) == ErrorCode::invalid_file);
    std::vector<uint8_t> cut(good.begin(), good.begin() + 30);  // inside the fmt chunk
    CHECK(code_of([&] { Audio::from_memory(cut); }) == ErrorCode::invalid_file);
    // No samples.
    CHECK(code_of([&] { Audio::from_memory(make_wav({}, {})); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { Audio::from_pcm_f32({}, 16000); }) == ErrorCode::invalid_argument);
    // Unsupported encodings: A-law, ADPCM, 12-bit PCM, 16-bit float, an unknown extensible sub-format.
    CHECK(code_of([&] { Audio::from_memory(make_wav({.tag = 6, .bits = 8}, std::vector<uint8_t>(10))); }) == ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.tag = 2, .bits = 4, .block_align = 256}, std::vector<uint8_t>(256))); }) ==
          ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.bits = 12, .block_align = 2}, bytes_of(v))); }) == ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.tag = 3, .bits = 16}, bytes_of(v))); }) == ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_memory(make_wav({.bits = 16, .extensible_tag = 2}, bytes_of(v))); }) == ErrorCode::invalid_argument);
    // NaN and infinite samples, in a file or raw.
    const std::vector<float> nan = {0.0f, std::nanf(""), 0.5f};
    CHECK(code_of([&] { Audio::from_memory(make_wav({.tag = 3, .bits = 32}, bytes_of(nan))); }) == ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_pcm_f32(nan, 16000); }) == ErrorCode::invalid_argument);
    const std::vector<float> inf = {0.0f, INFINITY};
    CHECK(code_of([&] { Audio::from_pcm_f32(inf, 16000); }) == ErrorCode::invalid_argument);
    // Not a WAV at all.
    CHECK(code_of([] { Audio::from_memory({}); }) == ErrorCode::invalid_file);
    std::mt19937 rng(3);
    std::vector<uint8_t> noise(3000);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    CHECK(code_of([&] { Audio::from_memory(noise); }) == ErrorCode::invalid_file);
    CHECK(code_of([] { Audio::from_file(kMediaDir + "/no-such.wav"); }) == ErrorCode::invalid_file);
    // Raw PCM out of range.
    const std::vector<float> x(10, 0.1f);
    CHECK(code_of([&] { Audio::from_pcm_f32(x, 500); }) == ErrorCode::invalid_argument);
    CHECK(code_of([&] { Audio::from_pcm_f32(x, 16000, 3); }) == ErrorCode::invalid_argument);  // 10 is not whole frames
    CHECK(code_of([&] { Audio::from_pcm_f32(x, 16000, 0); }) == ErrorCode::invalid_argument);
}

TEST_CASE("resampling to 16 kHz matches sox rate -v to at least 60 dB SNR on tones and noise", "[unit]") {
    for (int rate : {8000, 22050, 44100, 48000}) {
        for (const char* sig : {"tones", "noise"}) {
            const std::string name = std::to_string(rate) + "_" + sig;
            CAPTURE(name);
            const detail::PcmClip clip = detail::decode_wav(read_bytes(kMediaDir + "/rs_" + name + ".wav"), name);
            REQUIRE(clip.sample_rate_hz == rate);
            const std::vector<float> ours = detail::resample(clip.samples, rate, 16000);
            const std::vector<float> sox = detail::read_npy(kMediaGolden + "/resample/" + name + ".sox.npy").f32;
            CHECK(ours.size() == sox.size());
            const double snr = snr_db(ours, sox);
            WARN("resample " << name << " -> 16 kHz vs sox rate -v: SNR " << snr << " dB");
            CHECK(snr >= 60.0);
        }
    }
}

TEST_CASE("resampled tones equal the exact sine, at common and unusual rates; out-of-band tones vanish", "[unit]") {
    // 44101 Hz has 16000 phases (> kMaxPhases): the interpolated kernel table; the others use the exact bank.
    for (int rate : {8000, 11025, 22050, 24000, 32000, 44100, 44101, 48000, 96000}) {
        const int n = rate / 2;
        const double nyq_min = 0.5 * std::min(rate, 16000);
        for (double hz : {100.0, 997.0, 0.9 * nyq_min}) {
            CAPTURE(rate, hz);
            const std::vector<float> out = detail::resample(tone(rate, hz, n), rate, 16000);
            CHECK(static_cast<int64_t>(out.size()) == (int64_t{n} * 16000 + rate / 2) / rate);
            // Away from the edges (the filter needs K input samples on each side).
            const int margin = 2 * detail::resampler_half_taps(rate, 16000) * 16000 / rate + 2;
            REQUIRE(static_cast<int>(out.size()) > 2 * margin);
            const std::vector<float> want = tone(16000, hz, static_cast<int>(out.size()));
            const std::span<const float> o(out.data() + margin, out.size() - 2 * margin);
            const std::span<const float> w(want.data() + margin, want.size() - 2 * margin);
            CHECK(snr_db(o, w) >= 70.0);
        }
        if (rate > 16000) {
            // A tone between 8 kHz and the source's Nyquist frequency must not alias into the output.
            const double hz = 0.5 * (8000.0 + 0.5 * rate);
            const std::vector<float> out = detail::resample(tone(rate, hz, n), rate, 16000);
            const int margin = 2 * detail::resampler_half_taps(rate, 16000) * 16000 / rate + 2;
            double e = 0;
            for (size_t i = margin; i + margin < out.size(); ++i) e += double(out[i]) * out[i];
            const double rms = std::sqrt(e / (out.size() - 2 * margin));
            CAPTURE(rate, hz, rms);
            CHECK(20 * std::log10(rms / (0.5 / std::sqrt(2.0))) <= -100.0);
        }
    }
    // Equal rates copy; output length rounds like sox.
    const std::vector<float> x = tone(16000, 440.0, 1000);
    CHECK(detail::resample(x, 16000, 16000) == x);
    CHECK(detail::resample(std::vector<float>(1001, 0.0f), 48000, 16000).size() == 334);
    CHECK(detail::resample(std::vector<float>(7, 0.0f), 48000, 16000).size() == 2);
}

TEST_CASE("Audio::from_pcm_f32 down-mixes then resamples", "[unit]") {
    const int rate = 48000;
    std::vector<float> stereo;
    const std::vector<float> l = tone(rate, 440.0, rate), r = tone(rate, 440.0, rate, 1.3);
    for (int i = 0; i < rate; ++i) {
        stereo.push_back(l[i]);
        stereo.push_back(r[i]);
    }
    const Audio a = Audio::from_pcm_f32(stereo, rate, 2);
    const std::vector<float> mono = detail::downmix(stereo, 2);
    const std::vector<float> want = detail::resample(mono, rate, 16000);
    REQUIRE(a.samples().size() == want.size());
    CHECK(std::equal(want.begin(), want.end(), a.samples().begin()));
    CHECK(a.samples().size() == 16000);
}

TEST_CASE("mutated WAV files never crash: they decode or throw gemma4::Error", "[unit]") {
    const std::vector<uint8_t> base = read_bytes(kMediaDir + "/a0.1s_stereo.wav");
    std::mt19937 rng(11);
    int errors = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        std::vector<uint8_t> b = base;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) b[rng() % 64] = static_cast<uint8_t>(rng());  // the headers live in the first 44 bytes
        if (rng() % 3 == 0) b.resize(rng() % b.size());
        try {
            const Audio a = Audio::from_memory(b, "mutated.wav");
            CHECK(!a.samples().empty());
        } catch (const Error&) {
            ++errors;
        }
    }
    CHECK(errors > 0);
}
