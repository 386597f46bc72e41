// gemma4/media.h: images and audio clips as plain values, and what the projector makes of them.
//
//   session.add_image(gemma4::Image::from_file("cat.jpg"));
//   session.add_image(gemma4::Image::from_rgb8(width, height, pixels));
//   session.add_audio(gemma4::Audio::from_pcm_f32(samples, /*sample_rate_hz=*/44100));
//
// Gemma 4 12B has no vision or audio encoder: the projector (the "mmproj" GGUF given to Model::open)
// turns every 48x48 RGB patch of an image into one soft token, and every 40 ms (640 samples at 16 kHz)
// of audio into one. Image and Audio only hold decoded data: an Image is 8-bit RGB at its own size (it
// is resized when it is encoded), an Audio is 16 kHz mono f32 (converted when it is made).
//
// Image, Audio and MediaEmbeddings are copyable values with no hidden state; they may be shared across
// threads. Errors throw gemma4::Error: invalid_file for a missing, unreadable, truncated or malformed
// file; invalid_argument for a well-formed input this library does not take (an unsupported encoding,
// NaN samples, sizes out of range).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gemma4 {

/// An 8-bit RGB image: height rows of width pixels, 3 bytes (R, G, B) per pixel, no padding.
class Image {
public:
    /// Largest accepted width or height, and pixel count (a 16384 x 16384 image is 768 MiB decoded).
    static constexpr int kMaxSide = 1 << 20;
    static constexpr int64_t kMaxPixels = int64_t{1} << 28;

    /// Decodes a PNG, JPEG (baseline or progressive), BMP, GIF (the first frame) or binary PPM/PGM file.
    /// Alpha is dropped (not blended), gray is expanded to RGB, 16-bit samples keep their high byte.
    static Image from_file(const std::string& path);
    /// The same from bytes in memory; `name` is used in error messages.
    static Image from_memory(std::span<const uint8_t> bytes, const std::string& name = "image");
    /// Copies `pixels`: exactly width * height * 3 bytes, row-major RGB.
    static Image from_rgb8(int width, int height, std::span<const uint8_t> pixels);

    int width() const { return width_; }
    int height() const { return height_; }
    /// [height][width][3] bytes.
    std::span<const uint8_t> rgb8() const { return pixels_; }

private:
    Image(int width, int height, std::vector<uint8_t> pixels);
    int width_ = 0;
    int height_ = 0;
    std::vector<uint8_t> pixels_;
};

/// A mono audio clip at 16 kHz, f32 samples nominally in [-1, 1] (not normalized further).
class Audio {
public:
    static constexpr int kSampleRateHz = 16000;

    /// Decodes a WAV file: PCM 8 (unsigned), 16, 24 or 32-bit, or IEEE float 32/64-bit, plain or
    /// WAVE_FORMAT_EXTENSIBLE, any number of channels and any sample rate from 1 kHz to 768 kHz.
    /// Integer samples become x / 2^(bits-1) (8-bit: (x - 128) / 128). Channels are averaged to
    /// mono, then the clip is resampled to 16 kHz by a band-limited (Kaiser-windowed sinc) filter.
    static Audio from_file(const std::string& path);
    /// The same from bytes in memory; `name` is used in error messages.
    static Audio from_memory(std::span<const uint8_t> bytes, const std::string& name = "audio");
    /// Interleaved samples: n_frames * channels values. Down-mixed and resampled as above.
    /// Throws Error(invalid_argument) for no samples, a non-finite sample, channels outside 1..64 or a
    /// rate outside 1 kHz..768 kHz.
    static Audio from_pcm_f32(std::span<const float> samples, int sample_rate_hz, int channels = 1);

    /// 16 kHz mono samples.
    std::span<const float> samples() const { return samples_; }
    double duration_s() const { return static_cast<double>(samples_.size()) / kSampleRateHz; }

private:
    explicit Audio(std::vector<float> samples);
    std::vector<float> samples_;
};

/// How an image is fitted to the 48-pixel patch grid.
enum class ImageFit {
    /// llama.cpp's policy (the default, for parity with it): each side rounded to a multiple of 48,
    /// then scaled down or up (keeping the aspect ratio) into [min_tokens, max_tokens] patches, the
    /// image resized with Pillow's antialiased bicubic filter and centred on a black canvas.
    llama_cpp,
    /// Hugging Face's processor (the training reference): scaled to at most max_tokens patches, each
    /// side floored to a multiple of 48 and the image resized to exactly that size (no padding).
    hf,
};

struct ImageOptions {
    ImageFit fit = ImageFit::llama_cpp;
    int min_tokens = 70;    ///< llama_cpp fit only: small images are scaled up to at least this many
    int max_tokens = 1120;  ///< both fits: the token budget (1120: the most Gemma 4 was trained with; <= 16384)
};

/// What the projector made of one image or audio clip: n_tokens soft tokens of d_model values, the
/// rows the decoder consumes in place of token embeddings (not scaled by sqrt(d_model)).
struct MediaEmbeddings {
    enum class Kind { image, audio };
    Kind kind = Kind::image;
    int n_tokens = 0;
    int d_model = 0;
    int grid_width = 0;   ///< image: patches per row (n_tokens = grid_width * grid_height); audio: 0
    int grid_height = 0;
    std::vector<float> values;  ///< [n_tokens][d_model]
};

}  // namespace gemma4
