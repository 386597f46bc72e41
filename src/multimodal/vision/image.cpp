// gemma4::Image: decoding with stb_image (Debian's libstb), after our own check of the format.
//
// stb_image is asked for 3 components, which is what llama.cpp's mtmd helper does, so the RGB bytes
// are the same on both sides: alpha dropped (not blended), gray replicated, 16-bit PNG samples reduced
// to their high byte, a GIF's first frame. We accept only the formats the library documents, by magic
// number, before stb sees the bytes: stb also guesses TGA from a few header bytes, so random data could
// otherwise "decode". Dimensions are read first (stbi_info) and checked against Image::kMax* so that a
// small file cannot ask for gigabytes.
#include <stb_image.h>

#include <cstring>
#include <memory>
#include <string_view>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gemma4/media.h"
#include "util/mapped_file.h"

namespace gemma4 {
namespace {

// Signatures of the accepted formats (the first bytes of the file).
constexpr uint8_t kPngMagic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr uint8_t kJpegMagic[] = {0xFF, 0xD8, 0xFF};  // SOI marker, then the next marker's 0xFF

bool starts_with(std::span<const uint8_t> bytes, std::span<const uint8_t> magic) {
    return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}

bool starts_with(std::span<const uint8_t> bytes, std::string_view magic) {
    return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}

// The format's name, or nullptr when the bytes are none of the accepted formats.
const char* sniff_format(std::span<const uint8_t> bytes) {
    if (starts_with(bytes, kPngMagic)) return "PNG";
    if (starts_with(bytes, kJpegMagic)) return "JPEG";
    if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a")) return "GIF";
    if (starts_with(bytes, "BM")) return "BMP";
    // Binary netpbm: "P6" (RGB) or "P5" (gray), then whitespace.
    if (bytes.size() >= 3 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6') &&
        (bytes[2] == ' ' || bytes[2] == '\n' || bytes[2] == '\r' || bytes[2] == '\t')) {
        return bytes[1] == '6' ? "PPM" : "PGM";
    }
    return nullptr;
}

struct StbFree {
    void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

}  // namespace

Image::Image(int width, int height, std::vector<uint8_t> pixels)
    : width_(width), height_(height), pixels_(std::move(pixels)) {}

Image Image::from_rgb8(int width, int height, std::span<const uint8_t> pixels) {
    if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide ||
        static_cast<int64_t>(width) * height > kMaxPixels) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("image: {}x{} pixels is outside the accepted sizes (1..{} per side, at most {} pixels)", width,
                                height, kMaxSide, kMaxPixels));
    }
    const size_t want = static_cast<size_t>(width) * height * 3;
    if (pixels.size() != want) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("image: {}x{} RGB8 needs {} bytes, got {}", width, height, want, pixels.size()));
    }
    return Image(width, height, std::vector<uint8_t>(pixels.begin(), pixels.end()));
}

Image Image::from_memory(std::span<const uint8_t> bytes, const std::string& name) {
    if (bytes.empty()) throw Error(ErrorCode::invalid_file, name + ": empty (0 bytes), not an image");
    const char* format = sniff_format(bytes);
    if (!format) {
        throw Error(ErrorCode::invalid_file, name + ": not a PNG, JPEG, BMP, GIF or binary PPM/PGM image");
    }
    if (bytes.size() > static_cast<size_t>(INT32_MAX)) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: {} bytes is too large for the image decoder", name, bytes.size()));
    }
    const int n_bytes = static_cast<int>(bytes.size());
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(bytes.data(), n_bytes, &w, &h, &comp)) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: malformed {} header ({})", name, format, stbi_failure_reason()));
    }
    if (w <= 0 || h <= 0 || w > kMaxSide || h > kMaxSide || static_cast<int64_t>(w) * h > kMaxPixels) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: {} of {}x{} pixels is outside the accepted sizes (1..{} per side, at most {} pixels)",
                                name, format, w, h, kMaxSide, kMaxPixels));
    }
    std::unique_ptr<stbi_uc, StbFree> data(stbi_load_from_memory(bytes.data(), n_bytes, &w, &h, &comp, 3));
    if (!data) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: cannot decode the {} data ({})", name, format, stbi_failure_reason()));
    }
    const size_t n = static_cast<size_t>(w) * h * 3;
    return Image(w, h, std::vector<uint8_t>(data.get(), data.get() + n));
}

Image Image::from_file(const std::string& path) {
    const detail::MappedFile file = detail::MappedFile::open(path);
    return from_memory(std::span<const uint8_t>(file.data(), file.size_bytes()), path);
}

}  // namespace gemma4
