// Projector: the encoder-free Gemma 4 multimodal projector (spec §5), loaded from its GGUF (general.
// architecture "clip", projector types "gemma4uv" for vision and "gemma4ua" for audio), and the two
// embedding stacks, run on a Backend so that they work on the CPU and on CUDA alike.
//
// Keys read: clip.has_vision_encoder / clip.has_audio_encoder; clip.vision.projector_type and
// clip.audio.projector_type (or clip.projector_type); clip.vision.patch_size (16) times
// clip.vision.projector.scale_factor (default 3) = the 48-pixel patch; clip.vision.embedding_length
// (d_vision); clip.vision.image_mean / image_std (default 0 / 1); clip.vision.attention.layer_norm_epsilon
// (the RMS norm's eps, 1e-6). As in llama.cpp, the LayerNorm eps is PyTorch's default 1e-5, the audio RMS
// eps is 1e-6 and the audio frame is 640 samples (clip.audio.num_mel_bins is a meaningless 128).
//
// Tensors (ggml shapes), all checked at load:
//   v.patch_norm.1.{weight,bias} [3 P^2]        v.patch_embd.weight [3 P^2, d_vision], .bias [d_vision]
//   v.patch_norm.2.{weight,bias} [d_vision]     v.position_embd.weight [d_vision, n_pos, 2] (X, Y tables)
//   v.patch_norm.3.{weight,bias} [d_vision]     mm.input_projection.weight [d_vision, d_model]
//   mm.a.input_projection.weight [640, d_model]
// Matrices may be any type Backend::matmul runs; vectors and the position table are used as f32
// (f16/bf16 ones are converted once at load).
//
// Image, per 48x48 patch p (CHW, 3 P^2 values in [0, 1]):
//   h = LN(p; norm1) -> W_patch h + b -> LN(.; norm2) -> + PosX[col] + PosY[row] -> LN(.; norm3)
//   -> rms(.) (no weight) -> W_proj .                                         (d_model values)
// Audio, per 640-sample frame s (16 kHz, the last one zero-padded):  W_audio rms(s)   (d_model values)
// Rows are independent, so both run in chunks of kEncodeRows rows through scratch the call allocates.
//
// Thread safety: encode_* are const and may be called from several threads only if the backend
// allows concurrent use (the same rule as for sessions).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gemma4/media.h"
#include "gguf/gguf_file.h"

namespace gemma4 {

struct ProjectorConfig {
    bool has_vision = false;
    bool has_audio = false;
    // vision
    int patch_px = 0;                 // 48
    int d_vision = 0;                 // hidden width of the vision stack (3840 in the 12B)
    int n_pos = 0;                    // rows of each position table (1120): the grid side limit
    std::array<float, 3> image_mean{0.0f, 0.0f, 0.0f};
    std::array<float, 3> image_std{1.0f, 1.0f, 1.0f};
    float layer_norm_eps = 1e-5f;
    float vision_rms_eps = 1e-6f;
    // audio
    int audio_frame = 640;            // samples per soft token at 16 kHz (40 ms)
    float audio_rms_eps = 1e-6f;
    // output
    int d_model = 0;                  // width of the soft tokens (the text model's d_model)

    int patch_values() const { return 3 * patch_px * patch_px; }
};

class Projector {
public:
    static constexpr int kEncodeRows = 512;          // rows per pass through the stacks
    static constexpr int kMaxImageTokens = 16384;    // largest ImageOptions::max_tokens (a 113 MiB canvas)
    static constexpr int kPatchScaleDefault = 3;     // clip.vision.projector.scale_factor when absent
    static constexpr float kLayerNormEps = 1e-5f;    // PyTorch's LayerNorm default (not in the GGUF)
    static constexpr float kAudioRmsEps = 1e-6f;     // llama.cpp overrides the GGUF's value with this
    static constexpr int kAudioFrameSamples = 640;   // 40 ms at 16 kHz

    /// Opens and validates the projector GGUF and hands its weights to `backend` (which must outlive
    /// the Projector). Throws Error(invalid_file) for a malformed file or tensor, Error(unsupported_model)
    /// for another architecture or projector type, or weights of a type the backend cannot multiply.
    Projector(const std::string& path, Backend& backend);
    ~Projector();
    Projector(const Projector&) = delete;
    Projector& operator=(const Projector&) = delete;

    const ProjectorConfig& config() const { return config_; }
    const std::string& path() const { return file_.path(); }
    uint64_t n_params() const;

    /// Soft tokens of an image. Throws Error(invalid_argument) when the projector has no vision part,
    /// the options are out of range or the image's patch grid would exceed the position tables.
    MediaEmbeddings encode_image(const Image& image, const ImageOptions& options) const;
    /// Soft tokens of an audio clip: ceil(n_samples / 640). Throws Error(invalid_argument) when the
    /// projector has no audio part.
    MediaEmbeddings encode_audio(const Audio& audio) const;

    /// The preprocessed patch vectors of an image ([n_tokens][3 P^2], CHW) and its grid: what
    /// encode_image feeds the stack (for tests and tracing).
    std::vector<float> image_patches(const Image& image, const ImageOptions& options, int& grid_w, int& grid_h) const;

private:
    const float* table_f32(const GgufTensorInfo& t);  // the tensor as f32 backend memory (converted if needed)
    const float* vector_f32(const std::string& name, int64_t n);
    WeightMatrix matrix(const std::string& name, int64_t d_in, int64_t d_out);

    GgufFile file_;
    Backend& backend_;
    ProjectorConfig config_;
    std::vector<std::unique_ptr<std::vector<float>>> converted_;  // f32 copies of non-f32 vectors, kept where the
                                                                  // backend uses host memory in place (CPU)
    // vision
    const float* norm1_w_ = nullptr;
    const float* norm1_b_ = nullptr;
    WeightMatrix patch_embd_;
    const float* patch_bias_ = nullptr;
    const float* norm2_w_ = nullptr;
    const float* norm2_b_ = nullptr;
    const float* pos_x_ = nullptr;  // [n_pos][d_vision]
    const float* pos_y_ = nullptr;  // [n_pos][d_vision]
    const float* norm3_w_ = nullptr;
    const float* norm3_b_ = nullptr;
    WeightMatrix vision_proj_;
    // audio
    WeightMatrix audio_proj_;
};

}  // namespace gemma4
