// The projector on hand-built GGUF files (GgufWriter): a miniature gemma4uv/gemma4ua projector (2-pixel
// patches, width 8, 4 positions per side, 6-value soft tokens) against a float64 implementation of spec
// §5.3/§5.4 written here from the spec, with f32 and with f16 weights; and every way a projector file can
// be wrong.
//
// Tolerance: rel L2 <= 1e-5 (f32 arithmetic over a few dozen values per dot product and three LayerNorms
// of 8-12 values: ~1e-6; f16 weights are converted exactly, so the bound is the same).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "cpu/cpu_backend.h"
#include "gguf/gguf_writer.h"
#include "multimodal/projector.h"
#include "quant/fp16.h"

using namespace gemma4;

namespace {

constexpr int kPatch = 2, kScale = 1, kDv = 8, kPos = 4, kDm = 6, kFrame = 640;
constexpr int kPv = 3 * kPatch * kPatch;

struct Weights {
    std::vector<float> n1w, n1b, pe, pb, n2w, n2b, pos, n3w, n3b, proj, aproj;
};

std::vector<float> rnd(size_t n, std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

Weights make_weights(uint32_t seed) {
    std::mt19937 rng(seed);
    Weights w;
    w.n1w = rnd(kPv, rng, 0.5f, 1.5f);
    w.n1b = rnd(kPv, rng, -0.2f, 0.2f);
    w.pe = rnd(size_t(kDv) * kPv, rng, -0.5f, 0.5f);  // [d_vision rows][kPv]
    w.pb = rnd(kDv, rng, -0.2f, 0.2f);
    w.n2w = rnd(kDv, rng, 0.5f, 1.5f);
    w.n2b = rnd(kDv, rng, -0.2f, 0.2f);
    w.pos = rnd(size_t(2) * kPos * kDv, rng, -1.0f, 1.0f);  // [2][kPos][d_vision]
    w.n3w = rnd(kDv, rng, 0.5f, 1.5f);
    w.n3b = rnd(kDv, rng, -0.2f, 0.2f);
    w.proj = rnd(size_t(kDm) * kDv, rng, -0.5f, 0.5f);       // [d_model rows][d_vision]
    w.aproj = rnd(size_t(kDm) * kFrame, rng, -0.1f, 0.1f);   // [d_model rows][640]
    return w;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

std::vector<uint8_t> f16_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = f32_to_f16(v[i]);
        std::memcpy(b.data() + 2 * i, &h, 2);
    }
    return b;
}

// Rounds every value through f16, so the reference sees what an f16 file holds.
void round_f16(std::vector<float>& v) {
    for (auto& x : v) x = f16_to_f32(f32_to_f16(x));
}

struct Build {
    std::string arch = "clip";
    std::string vision_type = "gemma4uv";
    std::string audio_type = "gemma4ua";
    bool vision = true, audio = true, f16 = false;
    int audio_d_model = kDm;
    std::string skip;                           // a tensor to leave out
    std::vector<int64_t> patch_embd_shape = {kPv, kDv};
};

std::string write_projector(const Weights& w, const Build& b, const std::string& name) {
    GgufWriter g;
    g.add_string("general.architecture", b.arch);
    g.add("clip.has_vision_encoder", b.vision);
    g.add("clip.has_audio_encoder", b.audio);
    g.add_string("clip.vision.projector_type", b.vision_type);
    g.add_string("clip.audio.projector_type", b.audio_type);
    g.add<uint32_t>("clip.vision.patch_size", kPatch);
    g.add<uint32_t>("clip.vision.projector.scale_factor", kScale);
    g.add<uint32_t>("clip.vision.embedding_length", kDv);
    g.add_array<float>("clip.vision.image_mean", {0.0f, 0.0f, 0.0f});
    g.add_array<float>("clip.vision.image_std", {1.0f, 1.0f, 1.0f});
    g.add<float>("clip.vision.attention.layer_norm_epsilon", 1e-6f);
    const auto vec = [&](const char* n, const std::vector<float>& v, std::vector<int64_t> ne) {
        if (b.skip != n) g.add_tensor(n, GgmlType::F32, ne, f32_bytes(v));
    };
    const auto mat = [&](const char* n, const std::vector<float>& v, std::vector<int64_t> ne) {
        if (b.skip == n) return;
        if (b.f16) g.add_tensor(n, GgmlType::F16, ne, f16_bytes(v));
        else g.add_tensor(n, GgmlType::F32, ne, f32_bytes(v));
    };
    if (b.vision) {
        vec("v.patch_norm.1.weight", w.n1w, {kPv});
        vec("v.patch_norm.1.bias", w.n1b, {kPv});
        std::vector<float> pe = w.pe;
        pe.resize(b.patch_embd_shape[0] * b.patch_embd_shape[1]);
        mat("v.patch_embd.weight", pe, b.patch_embd_shape);
        vec("v.patch_embd.bias", w.pb, {kDv});
        vec("v.patch_norm.2.weight", w.n2w, {kDv});
        vec("v.patch_norm.2.bias", w.n2b, {kDv});
        mat("v.position_embd.weight", w.pos, {kDv, kPos, 2});  // f16 in f16 files: converted at load
        vec("v.patch_norm.3.weight", w.n3w, {kDv});
        vec("v.patch_norm.3.bias", w.n3b, {kDv});
        mat("mm.input_projection.weight", w.proj, {kDv, kDm});
    }
    if (b.audio) {
        std::vector<float> a = w.aproj;
        a.resize(size_t(b.audio_d_model) * kFrame);
        mat("mm.a.input_projection.weight", a, {kFrame, b.audio_d_model});
    }
    const std::string path = (std::filesystem::temp_directory_path() / ("gemma4-mmproj-" + name + ".gguf")).string();
    g.write(path);
    return path;
}

// ---- the float64 reference (spec §5.3, §5.4)

std::vector<double> layer_norm(std::vector<double> v, const std::vector<float>& w, const std::vector<float>& b) {
    double mean = 0, var = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) var += (x - mean) * (x - mean);
    var /= v.size();
    for (size_t i = 0; i < v.size(); ++i) v[i] = (v[i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i];
    return v;
}

std::vector<double> rms(std::vector<double> v) {
    double s = 0;
    for (double x : v) s += x * x;
    const double k = 1.0 / std::sqrt(s / v.size() + 1e-6);
    for (auto& x : v) x *= k;
    return v;
}

std::vector<double> matvec(const std::vector<float>& m, int rows, const std::vector<double>& x) {
    std::vector<double> y(rows, 0.0);
    for (int r = 0; r < rows; ++r)
        for (size_t i = 0; i < x.size(); ++i) y[r] += double(m[r * x.size() + i]) * x[i];
    return y;
}

// An image that needs no resizing (a multiple of the patch size within the budget), patch by patch.
std::vector<double> reference_image(const Weights& w, const std::vector<uint8_t>& rgb, int width, int height) {
    const int gw = width / kPatch, gh = height / kPatch;
    std::vector<double> out;
    for (int py = 0; py < gh; ++py) {
        for (int px = 0; px < gw; ++px) {
            std::vector<double> p(kPv);
            for (int c = 0; c < 3; ++c)
                for (int r = 0; r < kPatch; ++r)
                    for (int q = 0; q < kPatch; ++q)
                        p[c * kPatch * kPatch + r * kPatch + q] = rgb[((py * kPatch + r) * width + px * kPatch + q) * 3 + c] / 255.0;
            std::vector<double> h = matvec(w.pe, kDv, layer_norm(p, w.n1w, w.n1b));
            for (int i = 0; i < kDv; ++i) h[i] += w.pb[i];
            h = layer_norm(h, w.n2w, w.n2b);
            for (int i = 0; i < kDv; ++i) h[i] += w.pos[px * kDv + i] + w.pos[(kPos + py) * kDv + i];
            const std::vector<double> e = matvec(w.proj, kDm, rms(layer_norm(h, w.n3w, w.n3b)));
            out.insert(out.end(), e.begin(), e.end());
        }
    }
    return out;
}

double rel(const std::vector<float>& got, const std::vector<double>& want) {
    double d = 0, n = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        d += (got[i] - want[i]) * (got[i] - want[i]);
        n += want[i] * want[i];
    }
    return std::sqrt(d / n);
}

ErrorCode open_error(const std::string& path, cpu::Backend& be) {
    try {
        Projector p(path, be);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    FAIL("no error");
    return ErrorCode::invalid_argument;
}

}  // namespace

TEST_CASE("projector stacks equal a float64 reference, with f32 and f16 weights", "[unit]") {
    cpu::Backend be(2);
    for (bool f16 : {false, true}) {
        CAPTURE(f16);
        Weights w = make_weights(11);
        const std::string path = write_projector(w, {.f16 = f16}, f16 ? "f16" : "f32");
        const Projector p(path, be);
        if (f16) {
            round_f16(w.pe);
            round_f16(w.pos);
            round_f16(w.proj);
            round_f16(w.aproj);
        }
        CHECK(p.config().patch_px == kPatch);
        CHECK(p.config().n_pos == kPos);
        CHECK(p.config().d_model == kDm);
        // 8x6 pixels: a 4x3 grid of 2-pixel patches, no resize (8/2 * 6/2 = 12 tokens, inside 1..16).
        std::mt19937 rng(3);
        std::vector<uint8_t> px(8 * 6 * 3);
        for (auto& v : px) v = static_cast<uint8_t>(rng());
        const MediaEmbeddings e = p.encode_image(Image::from_rgb8(8, 6, px), {.min_tokens = 1, .max_tokens = 16});
        REQUIRE(e.n_tokens == 12);
        CHECK(e.grid_width == 4);
        CHECK(e.grid_height == 3);
        CHECK(rel(e.values, reference_image(w, px, 8, 6)) <= 1e-5);

        // Audio: 1000 samples = 2 frames, the second zero-padded; an all-zero frame gives zeros.
        std::vector<float> s = rnd(1000, rng, -0.5f, 0.5f);
        s.resize(1920, 0.0f);  // a third, silent frame
        const MediaEmbeddings a = p.encode_audio(Audio::from_pcm_f32(s, 16000));
        REQUIRE(a.n_tokens == 3);
        std::vector<double> want;
        for (int t = 0; t < 3; ++t) {
            std::vector<double> f(kFrame, 0.0);
            for (int i = 0; i < kFrame; ++i) f[i] = s[t * kFrame + i];
            const auto y = matvec(w.aproj, kDm, rms(f));
            want.insert(want.end(), y.begin(), y.end());
        }
        CHECK(rel(a.values, want) <= 1e-5);
        for (int i = 0; i < kDm; ++i) CHECK(a.values[2 * kDm + i] == 0.0f);
        std::filesystem::remove(path);
    }
}

TEST_CASE("projector files that are wrong are refused with a clear error", "[unit]") {
    cpu::Backend be(1);
    const Weights w = make_weights(5);
    const auto check = [&](const Build& b, ErrorCode code, const char* name) {
        CAPTURE(name);
        const std::string path = write_projector(w, b, name);
        CHECK(open_error(path, be) == code);
        std::filesystem::remove(path);
    };
    check({.arch = "gemma4"}, ErrorCode::unsupported_model, "arch");
    check({.vision_type = "gemma4v"}, ErrorCode::unsupported_model, "vision-type");
    check({.audio_type = "whisper"}, ErrorCode::unsupported_model, "audio-type");
    check({.vision = false, .audio = false}, ErrorCode::invalid_file, "neither");
    check({.audio_d_model = kDm + 1}, ErrorCode::invalid_file, "widths");
    check({.skip = "v.patch_norm.3.bias"}, ErrorCode::invalid_file, "missing");
    check({.patch_embd_shape = {kPv, kDv + 1}}, ErrorCode::invalid_file, "shape");
    // One modality only: the other is refused at encode time.
    const std::string path = write_projector(w, {.audio = false}, "vision-only");
    const Projector p(path, be);
    CHECK(p.config().has_vision);
    CHECK_FALSE(p.config().has_audio);
    CHECK_THROWS_AS(p.encode_audio(Audio::from_pcm_f32(std::vector<float>(10, 0.1f), 16000)), Error);
    std::filesystem::remove(path);
}
