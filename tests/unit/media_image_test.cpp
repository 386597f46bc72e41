// Images: decoding (PNG, JPEG, BMP, GIF, PPM/PGM; alpha dropped, gray expanded), bad files, the token-budget
// fits, the Pillow-compatible bicubic resize (against Pillow 9.4 itself, committed by
// tests/golden/make_media_golden.py) and the CHW patch layout.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "golden/mm/media_test_util.h"
#include "multimodal/vision/image_fit.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

std::vector<uint8_t> to_vec(std::span<const uint8_t> s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

TEST_CASE("images decode the same from every lossless format, from files and from memory", "[unit]") {
    const Image png = Image::from_file(kMediaDir + "/rgb.png");
    REQUIRE(png.width() == 100);
    REQUIRE(png.height() == 70);
    CHECK(to_vec(png.rgb8()) == synth_image(100, 70, 5));
    for (const char* f : {"rgb.bmp", "rgb.ppm"}) {
        CAPTURE(f);
        const Image img = Image::from_file(kMediaDir + "/" + f);
        CHECK(img.width() == 100);
        CHECK(img.height() == 70);
        CHECK(to_vec(img.rgb8()) == to_vec(png.rgb8()));
    }
    const std::vector<uint8_t> bytes = read_bytes(kMediaDir + "/rgb.png");
    CHECK(to_vec(Image::from_memory(bytes).rgb8()) == to_vec(png.rgb8()));
}

TEST_CASE("alpha is dropped and gray is expanded to RGB", "[unit]") {
    const Image rgba = Image::from_file(kMediaDir + "/rgba.png");
    CHECK(to_vec(rgba.rgb8()) == synth_image(100, 70, 5));  // the RGB of the RGBA file, not blended
    for (const char* f : {"gray.png", "gray.pgm"}) {
        CAPTURE(f);
        const Image g = Image::from_file(kMediaDir + "/" + f);
        REQUIRE(g.width() == 120);
        REQUIRE(g.height() == 90);
        const std::vector<uint8_t> want = synth_image(120, 90, 4);
        bool ok = true;
        for (size_t i = 0; i < size_t(120) * 90; ++i) {
            const uint8_t v = want[i * 3];  // the script saved the R channel as gray
            ok = ok && g.rgb8()[i * 3] == v && g.rgb8()[i * 3 + 1] == v && g.rgb8()[i * 3 + 2] == v;
        }
        CHECK(ok);
    }
}

TEST_CASE("JPEG and GIF decode", "[unit]") {
    const Image jpg = Image::from_file(kMediaDir + "/photo.jpg");
    REQUIRE(jpg.width() == 160);
    REQUIRE(jpg.height() == 120);
    // Lossy: close to the source on average (the noisy quarter costs the most).
    const std::vector<uint8_t> src = synth_image(160, 120, 6);
    double err = 0;
    for (size_t i = 0; i < src.size(); ++i) err += std::abs(int(jpg.rgb8()[i]) - int(src[i]));
    CHECK(err / src.size() < 20.0);
    const Image gif = Image::from_file(kMediaDir + "/anim.gif");  // two frames: the first is used
    CHECK(gif.width() == 90);
    CHECK(gif.height() == 60);
    const std::vector<uint8_t> f0 = synth_image(90, 60, 7), f1 = synth_image(90, 60, 8);
    double e0 = 0, e1 = 0;
    for (size_t i = 0; i < f0.size(); ++i) {
        e0 += std::abs(int(gif.rgb8()[i]) - int(f0[i]));
        e1 += std::abs(int(gif.rgb8()[i]) - int(f1[i]));
    }
    CHECK(e0 < e1);
}

TEST_CASE("bad image files give a clear gemma4::Error", "[unit]") {
    const std::vector<uint8_t> png = read_bytes(kMediaDir + "/47x95.png");
    // Truncated PNGs: inside the signature, the header, the image data, and just before IEND.
    for (size_t keep : {size_t{4}, size_t{20}, size_t{40}, png.size() / 2, png.size() - 13}) {
        CAPTURE(keep);
        const std::vector<uint8_t> cut(png.begin(), png.begin() + keep);
        CHECK(code_of([&] { Image::from_memory(cut, "cut.png"); }) == ErrorCode::invalid_file);
    }
    CHECK(code_of([&] { Image::from_memory({}, "empty"); }) == ErrorCode::invalid_file);
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        std::vector<uint8_t> noise(1 + rng() % 5000);
        for (auto& b : noise) b = static_cast<uint8_t>(rng());
        CAPTURE(trial);
        CHECK(code_of([&] { Image::from_memory(noise, "noise"); }) == ErrorCode::invalid_file);
    }
    const std::string ascii_ppm = "P3\n2 1\n255\n255 0 0 0 255 0\n";  // text netpbm: not supported
    CHECK(code_of([&] { Image::from_memory(std::vector<uint8_t>(ascii_ppm.begin(), ascii_ppm.end()), "a.ppm"); }) ==
          ErrorCode::invalid_file);
    CHECK(code_of([&] { Image::from_file(kMediaDir + "/no-such-file.png"); }) == ErrorCode::invalid_file);
    // A header claiming an enormous size: refused before any allocation.
    std::vector<uint8_t> huge = png;
    const uint8_t big[4] = {0x00, 0x40, 0x00, 0x00};  // IHDR width 4194304 (big-endian, at byte 16)
    std::copy(big, big + 4, huge.begin() + 16);
    CHECK(code_of([&] { Image::from_memory(huge, "huge.png"); }) != ErrorCode::out_of_memory);
    // Raw pixels of the wrong size or shape.
    CHECK(code_of([] { Image::from_rgb8(2, 2, std::vector<uint8_t>(11)); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { Image::from_rgb8(0, 2, {}); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { Image::from_rgb8(Image::kMaxSide + 1, 1, std::vector<uint8_t>(3 * (Image::kMaxSide + 1))); }) ==
          ErrorCode::invalid_argument);
}

TEST_CASE("token budgets: llama.cpp's fit and the HF fit", "[unit]") {
    using detail::fit_size;
    const auto tokens = [](detail::ImageSize s) { return (s.width / 48) * (s.height / 48); };
    // The spec's example (§7 item 18): 1234x567 is 312 tokens under llama.cpp's policy, 264 under HF's.
    CHECK(tokens(fit_size(1234, 567, {}, 48, 1120)) == 312);
    CHECK(tokens(fit_size(1234, 567, {.fit = ImageFit::hf, .max_tokens = 280}, 48, 1120)) == 264);
    // Small images are scaled up to the minimum, large ones down to the maximum.
    for (auto [w, h] : {std::pair{1, 1}, {47, 95}, {48, 48}, {640, 480}, {4000, 3000}, {3, 2000}, {10000, 200}}) {
        CAPTURE(w, h);
        const detail::ImageSize s = fit_size(w, h, {}, 48, 1120);
        CHECK(s.width % 48 == 0);
        CHECK(s.height % 48 == 0);
        CHECK(tokens(s) >= 70);
        CHECK(tokens(s) <= 1120);
        const detail::ImageSize small = fit_size(w, h, {.min_tokens = 4, .max_tokens = 64}, 48, 1120);
        CHECK(tokens(small) <= 64);
        const detail::ImageSize hf = fit_size(w, h, {.fit = ImageFit::hf, .max_tokens = 280}, 48, 1120);
        CHECK(tokens(hf) >= 1);
        CHECK(tokens(hf) <= 280);
    }
    // An extreme aspect ratio keeps one row of patches, so the grid is wider than the position tables;
    // Projector::encode_image rejects it (tests/model/multimodal_test.cpp).
    CHECK(fit_size(100000, 1, {}, 48, 1120).width / 48 > 1120);
    // Options out of range.
    CHECK(code_of([] { fit_size(10, 10, {.max_tokens = 1121}, 48, 1120); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { fit_size(10, 10, {.max_tokens = 0}, 48, 1120); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { fit_size(10, 10, {.min_tokens = 0}, 48, 1120); }) == ErrorCode::invalid_argument);
    CHECK(code_of([] { fit_size(10, 10, {.min_tokens = 100, .max_tokens = 99}, 48, 1120); }) == ErrorCode::invalid_argument);
}

TEST_CASE("bicubic resize is bit-identical to Pillow", "[unit]") {
    std::ifstream in(kMediaGolden + "/pillow.txt");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        std::string source, file;
        int w = 0, h = 0;
        ss >> source >> w >> h >> file;
        CAPTURE(source, w, h);
        const Image src = load_image(source);
        const Image want = Image::from_file(kMediaGolden + "/pillow/" + file);
        REQUIRE(want.width() == w);
        REQUIRE(want.height() == h);
        const std::vector<uint8_t> got = detail::resize_bicubic(src.rgb8().data(), src.width(), src.height(), w, h);
        size_t differ = 0;
        int max_diff = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            const int d = std::abs(int(got[i]) - int(want.rgb8()[i]));
            differ += d != 0;
            max_diff = std::max(max_diff, d);
        }
        INFO(differ << " of " << got.size() << " values differ, by at most " << max_diff);
        CHECK(differ == 0);
        ++n;
    }
    CHECK(n >= 8);
}

TEST_CASE("llama.cpp's fit letterboxes on black; the HF fit fills the canvas", "[unit]") {
    // 47x95 -> canvas 288x576: s = min(288/47, 576/95) = 6.063, inner 285x576 centred at x = 1.
    const Image img = Image::from_file(kMediaDir + "/47x95.png");
    const detail::ImageSize canvas = detail::fit_size(47, 95, {}, 48, 1120);
    REQUIRE(canvas.width == 288);
    REQUIRE(canvas.height == 576);
    const std::vector<uint8_t> out = detail::fit_image(img, ImageFit::llama_cpp, canvas);
    const std::vector<uint8_t> inner = detail::resize_bicubic(img.rgb8().data(), 47, 95, 285, 576);
    bool border_black = true, inner_same = true;
    for (int y = 0; y < 576; ++y) {
        for (int x = 0; x < 288; ++x) {
            for (int c = 0; c < 3; ++c) {
                const uint8_t v = out[(size_t(y) * 288 + x) * 3 + c];
                if (x < 1 || x >= 286) border_black = border_black && v == 0;
                else inner_same = inner_same && v == inner[(size_t(y) * 285 + x - 1) * 3 + c];
            }
        }
    }
    CHECK(border_black);
    CHECK(inner_same);
    const std::vector<uint8_t> hf = detail::fit_image(img, ImageFit::hf, canvas);
    CHECK(hf == detail::resize_bicubic(img.rgb8().data(), 47, 95, 288, 576));
}

TEST_CASE("patch vectors are in CHW order, raster order over the grid, scaled to [0, 1]", "[unit]") {
    // A 4x2 image with 2-pixel patches: a grid of 2x1 patches of 2*2*3 values.
    std::vector<uint8_t> px(4 * 2 * 3);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 10);
    const auto v = detail::patchify(px.data(), 4, 2, 2, {0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f});
    REQUIRE(v.size() == 2 * 12);
    for (int p = 0; p < 2; ++p) {
        for (int c = 0; c < 3; ++c) {
            for (int r = 0; r < 2; ++r) {
                for (int col = 0; col < 2; ++col) {
                    const int x = p * 2 + col, y = r;
                    CHECK(v[p * 12 + c * 4 + r * 2 + col] == static_cast<float>(px[(y * 4 + x) * 3 + c]) / 255.0f);
                }
            }
        }
    }
    // Mean and std are applied per channel.
    const auto w = detail::patchify(px.data(), 4, 2, 2, {0.5f, 0.0f, 0.0f}, {2.0f, 1.0f, 1.0f});
    CHECK(w[0] == (static_cast<float>(px[0]) / 255.0f - 0.5f) / 2.0f);
}

TEST_CASE("mutated image files never crash: they decode or throw gemma4::Error", "[unit]") {
    std::mt19937 rng(13);
    for (const char* f : {"47x95.png", "photo.jpg", "anim.gif", "rgb.bmp", "gray.pgm"}) {
        CAPTURE(f);
        const std::vector<uint8_t> base = read_bytes(kMediaDir + "/" + f);
        for (int trial = 0; trial < 300; ++trial) {
            std::vector<uint8_t> b = base;
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int e = 0; e < edits; ++e) b[rng() % std::min<size_t>(b.size(), 512)] = static_cast<uint8_t>(rng());
            if (rng() % 3 == 0) b.resize(rng() % b.size());
            try {
                const Image img = Image::from_memory(b, f);
                CHECK(img.rgb8().size() == size_t(img.width()) * img.height() * 3);
            } catch (const Error&) {
            }
        }
    }
}
