#include "multimodal/vision/image_fit.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gemma4/error.h"

namespace gemma4::detail {
namespace {

// ---- sizes

// llama.cpp's calc_size_preserved_ratio, f32 arithmetic as there. Products in 64 bits (llama.cpp's int
// would overflow for sides above ~46000; the results agree wherever it does not).
ImageSize fit_llama_cpp(int width, int height, int min_tokens, int max_tokens, int patch) {
    const float f = static_cast<float>(patch);
    const auto round_by = [&](float x) { return static_cast<int>(std::round(x / f)) * patch; };
    const auto ceil_by = [&](float x) { return static_cast<int>(std::ceil(x / f)) * patch; };
    const auto floor_by = [&](float x) { return static_cast<int>(std::floor(x / f)) * patch; };
    const int64_t area = static_cast<int64_t>(patch) * patch;
    const int64_t max_px = max_tokens * area;
    const int64_t min_px = min_tokens * area;

    int w = std::max(patch, round_by(static_cast<float>(width)));
    int h = std::max(patch, round_by(static_cast<float>(height)));
    if (static_cast<int64_t>(w) * h > max_px) {
        const float beta = std::sqrt(static_cast<float>(height) * static_cast<float>(width) / static_cast<float>(max_px));
        h = std::max(patch, floor_by(static_cast<float>(height) / beta));
        w = std::max(patch, floor_by(static_cast<float>(width) / beta));
    } else if (static_cast<int64_t>(w) * h < min_px) {
        const float beta = std::sqrt(static_cast<float>(min_px) / (static_cast<float>(height) * static_cast<float>(width)));
        h = ceil_by(static_cast<float>(height) * beta);
        w = ceil_by(static_cast<float>(width) * beta);
    }
    return {w, h};
}

// transformers' Gemma 4 image processor (get_resize_size), in f64 as Python computes it.
ImageSize fit_hf(int width, int height, int budget, int patch) {
    const double factor = std::sqrt(static_cast<double>(budget) * patch * patch / (static_cast<double>(width) * height));
    int w = static_cast<int>(std::floor(width * factor / patch)) * patch;
    int h = static_cast<int>(std::floor(height * factor / patch)) * patch;
    if (w == 0 && h != 0) {
        w = patch;
        h = std::min(static_cast<int>(std::floor(static_cast<double>(height) / width)) * patch, budget * patch);
    } else if (h == 0 && w != 0) {
        h = patch;
        w = std::min(static_cast<int>(std::floor(static_cast<double>(width) / height)) * patch, budget * patch);
    }
    return {w, h};
}

// ---- Pillow's resampling

constexpr int kPrecisionBits = 32 - 8 - 2;  // fixed-point fraction: 8 bits of pixel and 2 of headroom in an int32
constexpr double kBicubicSupport = 2.0;     // the kernel is zero outside [-2, 2]
constexpr double kBicubicA = -0.5;          // Pillow's (and Keys') a; PyTorch and ggml use -0.75

double bicubic(double x) {
    x = std::abs(x);
    if (x < 1.0) return ((kBicubicA + 2.0) * x - (kBicubicA + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * kBicubicA;
    return 0.0;
}

// Per output pixel: the first input pixel, how many contribute, and their fixed-point weights.
struct Taps {
    int ksize = 0;
    std::vector<int> first, count;  // [out]
    std::vector<int32_t> weights;   // [out][ksize]
};

Taps precompute_taps(int in_size, int out_size) {
    const double scale = static_cast<double>(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking (antialiasing)
    const double support = kBicubicSupport * filterscale;
    Taps t;
    t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    t.first.resize(out_size);
    t.count.resize(out_size);
    t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0);
    std::vector<double> w(t.ksize);
    const double inv_filterscale = 1.0 / filterscale;  // Pillow multiplies by the reciprocal (same bits)
    const double one = std::ldexp(1.0, kPrecisionBits);
    for (int o = 0; o < out_size; ++o) {
        const double center = (o + 0.5) * scale;
        const int lo = std::max(0, static_cast<int>(center - support + 0.5));
        const int hi = std::min(in_size, static_cast<int>(center + support + 0.5));
        const int n = hi - lo;
        double sum = 0.0;
        for (int i = 0; i < n; ++i) {
            w[i] = bicubic((i + lo - center + 0.5) * inv_filterscale);
            sum += w[i];
        }
        for (int i = 0; i < n; ++i) {
            const double v = sum != 0.0 ? w[i] / sum : w[i];
            // Pillow rounds half away from zero by adding +-0.5 and truncating.
            t.weights[static_cast<size_t>(o) * t.ksize + i] = static_cast<int32_t>(v * one + (v < 0.0 ? -0.5 : 0.5));
        }
        t.first[o] = lo;
        t.count[o] = n;
    }
    return t;
}

uint8_t clip8(int32_t fixed) {
    const int32_t v = fixed >> kPrecisionBits;  // arithmetic shift: floor for negatives, clipped to 0 below
    return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// Resamples along x: [h][in_w][3] -> [h][out_w][3].
std::vector<uint8_t> resample_x(const uint8_t* src, int in_w, int h, int out_w) {
    const Taps t = precompute_taps(in_w, out_w);
    std::vector<uint8_t> out(static_cast<size_t>(out_w) * h * 3);
    for (int y = 0; y < h; ++y) {
        const uint8_t* row = src + static_cast<size_t>(y) * in_w * 3;
        uint8_t* dst = out.data() + static_cast<size_t>(y) * out_w * 3;
        for (int o = 0; o < out_w; ++o) {
            const int32_t* k = t.weights.data() + static_cast<size_t>(o) * t.ksize;
            const uint8_t* p = row + static_cast<size_t>(t.first[o]) * 3;
            int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
            for (int i = 0; i < t.count[o]; ++i) {
                for (int c = 0; c < 3; ++c) acc[c] += p[i * 3 + c] * k[i];
            }
            for (int c = 0; c < 3; ++c) dst[o * 3 + c] = clip8(acc[c]);
        }
    }
    return out;
}

// Resamples along y: [in_h][w][3] -> [out_h][w][3], whole rows at a time.
std::vector<uint8_t> resample_y(const uint8_t* src, int w, int in_h, int out_h) {
    const Taps t = precompute_taps(in_h, out_h);
    const size_t row_bytes = static_cast<size_t>(w) * 3;
    std::vector<uint8_t> out(row_bytes * out_h);
    std::vector<int32_t> acc(row_bytes);
    for (int o = 0; o < out_h; ++o) {
        const int32_t* k = t.weights.data() + static_cast<size_t>(o) * t.ksize;
        std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
        for (int i = 0; i < t.count[o]; ++i) {
            const uint8_t* row = src + static_cast<size_t>(t.first[o] + i) * row_bytes;
            for (size_t j = 0; j < row_bytes; ++j) acc[j] += row[j] * k[i];
        }
        uint8_t* dst = out.data() + static_cast<size_t>(o) * row_bytes;
        for (size_t j = 0; j < row_bytes; ++j) dst[j] = clip8(acc[j]);
    }
    return out;
}

}  // namespace

ImageSize fit_size(int width, int height, const ImageOptions& options, int patch_px, int64_t max_tokens_limit) {
    if (width <= 0 || height <= 0) {
        throw Error(ErrorCode::invalid_argument, fmt::format("image: bad size {}x{}", width, height));
    }
    if (options.max_tokens < 1 || options.max_tokens > max_tokens_limit) {
        throw Error(ErrorCode::invalid_argument, fmt::format("image options: max_tokens {} is outside 1..{} (the square of the "
                                                             "projector's position table)", options.max_tokens, max_tokens_limit));
    }
    if (options.fit == ImageFit::llama_cpp) {
        if (options.min_tokens < 1 || options.min_tokens > options.max_tokens) {
            throw Error(ErrorCode::invalid_argument, fmt::format("image options: min_tokens {} is outside 1..max_tokens ({})",
                                                                 options.min_tokens, options.max_tokens));
        }
        return fit_llama_cpp(width, height, options.min_tokens, options.max_tokens, patch_px);
    }
    return fit_hf(width, height, options.max_tokens, patch_px);
}

std::vector<uint8_t> resize_bicubic(const uint8_t* src, int src_w, int src_h, int dst_w, int dst_h) {
    if (dst_w == src_w && dst_h == src_h) return std::vector<uint8_t>(src, src + static_cast<size_t>(src_w) * src_h * 3);
    if (dst_w == src_w) return resample_y(src, src_w, src_h, dst_h);
    std::vector<uint8_t> x = resample_x(src, src_w, src_h, dst_w);
    if (dst_h == src_h) return x;
    return resample_y(x.data(), dst_w, src_h, dst_h);
}

std::vector<uint8_t> fit_image(const Image& image, ImageFit fit, ImageSize canvas) {
    const int w = image.width(), h = image.height();
    const uint8_t* src = image.rgb8().data();
    if (fit == ImageFit::hf || (canvas.width == w && canvas.height == h)) {
        return resize_bicubic(src, w, h, canvas.width, canvas.height);
    }
    // llama.cpp: keep the aspect ratio (f32 arithmetic as there), centre on black.
    const float scale = std::min(static_cast<float>(canvas.width) / static_cast<float>(w),
                                 static_cast<float>(canvas.height) / static_cast<float>(h));
    const int inner_w = std::min(static_cast<int>(std::ceil(static_cast<float>(w) * scale)), canvas.width);
    const int inner_h = std::min(static_cast<int>(std::ceil(static_cast<float>(h) * scale)), canvas.height);
    const std::vector<uint8_t> inner = resize_bicubic(src, w, h, inner_w, inner_h);
    std::vector<uint8_t> out(static_cast<size_t>(canvas.width) * canvas.height * 3, 0);
    const int x0 = (canvas.width - inner_w) / 2;
    const int y0 = (canvas.height - inner_h) / 2;
    for (int y = 0; y < inner_h; ++y) {
        std::copy_n(inner.data() + static_cast<size_t>(y) * inner_w * 3, static_cast<size_t>(inner_w) * 3,
                    out.data() + (static_cast<size_t>(y + y0) * canvas.width + x0) * 3);
    }
    return out;
}

std::vector<float> patchify(const uint8_t* rgb, int width, int height, int patch_px, const std::array<float, 3>& mean,
                            const std::array<float, 3>& std_dev) {
    const int grid_w = width / patch_px;
    const int grid_h = height / patch_px;
    const size_t patch_values = static_cast<size_t>(3) * patch_px * patch_px;
    std::vector<float> out(static_cast<size_t>(grid_w) * grid_h * patch_values);
    for (int py = 0; py < grid_h; ++py) {
        for (int px = 0; px < grid_w; ++px) {
            float* p = out.data() + (static_cast<size_t>(py) * grid_w + px) * patch_values;
            for (int c = 0; c < 3; ++c) {
                for (int r = 0; r < patch_px; ++r) {
                    const uint8_t* row = rgb + (static_cast<size_t>(py * patch_px + r) * width + px * patch_px) * 3 + c;
                    float* dst = p + (static_cast<size_t>(c) * patch_px + r) * patch_px;
                    // As llama.cpp: u8 / 255 in f32, then (v - mean) / std.
                    for (int col = 0; col < patch_px; ++col) dst[col] = (static_cast<float>(row[col * 3]) / 255.0f - mean[c]) / std_dev[c];
                }
            }
        }
    }
    return out;
}

}  // namespace gemma4::detail
