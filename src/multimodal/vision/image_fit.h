// Image preprocessing for the encoder-free vision projector (spec §5.2, §5.3): the target size of each
// ImageFit policy, a Pillow-compatible bicubic resize, the black letterbox, and the patch vectors.
//
// llama.cpp fit (llama.cpp tools/mtmd, dyn_size preprocessor + img_tool; all sizes in f32 arithmetic as
// there, so that the token counts agree exactly):
//   W' = max(P, round(W / P) * P), H' likewise (round half away from zero), P = patch size (48);
//   if W' H' > max_tokens P^2:  b = sqrt(H W / (max_tokens P^2)), W' = max(P, floor(W / b / P) P), H' likewise;
//   else if W' H' < min_tokens P^2: b = sqrt(min_tokens P^2 / (H W)), W' = ceil(W b / P) P, H' likewise.
//   The image is resized, keeping its aspect ratio, to (min(ceil(W s), W'), min(ceil(H s), H')) with
//   s = min(W'/W, H'/H), and pasted at ((W' - w) / 2, (H' - h) / 2) on a black W' x H' canvas.
// HF fit (transformers' Gemma 4 image processor): f = sqrt(T P^2 / (W H)), W' = floor(W f / P) P,
//   H' likewise; if exactly one side is 0 it becomes P and the other min(floor(long / short) P, T P).
//   The image is resized to exactly W' x H'.
//
// Resize: Pillow's separable antialiased resampling (libImaging/Resample.c) with its bicubic kernel
// (a = -0.5): for each output pixel the kernel is stretched by the scale factor when shrinking, its
// weights normalised to sum 1, then stored as fixed-point integers with 22 fractional bits; the
// horizontal pass runs first, each pass rounds to 8 bits. Results are bit-identical to Pillow (and to
// llama.cpp, which ports the same code); tests/unit/media_image_test.cpp checks against Pillow.
//
// Patch vectors: patch i covers grid column i % (W'/P) and row i / (W'/P); its P*P*3 values are in
// CHW order (c * P * P + r * P + col, the order the GGUF weights were permuted to), each
// (u8 / 255 - mean[c]) / std[c].
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "gemma4/media.h"

namespace gemma4::detail {

struct ImageSize {
    int width = 0;
    int height = 0;
};

/// The canvas size W' x H' (multiples of `patch_px`) an image of width x height gets under `options`.
/// Throws Error(invalid_argument) for options out of range (min_tokens < 1, max_tokens < min_tokens,
/// max_tokens > max_tokens_limit). The grid sides are not checked here (see Projector::encode_image).
ImageSize fit_size(int width, int height, const ImageOptions& options, int patch_px, int64_t max_tokens_limit);

/// Pillow-compatible antialiased bicubic resize of RGB8 pixels. src: [src_h][src_w][3].
std::vector<uint8_t> resize_bicubic(const uint8_t* src, int src_w, int src_h, int dst_w, int dst_h);

/// The image on its W' x H' canvas, as `fit` prescribes (resized, and for llama_cpp letterboxed on black).
std::vector<uint8_t> fit_image(const Image& image, ImageFit fit, ImageSize canvas);

/// Patch vectors: [n_patches][3 * patch_px * patch_px], see the header comment. rgb: [height][width][3]
/// with width and height multiples of patch_px.
std::vector<float> patchify(const uint8_t* rgb, int width, int height, int patch_px, const std::array<float, 3>& mean,
                            const std::array<float, 3>& std_dev);

}  // namespace gemma4::detail
