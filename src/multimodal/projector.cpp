#include "multimodal/projector.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "model/weights.h"
#include "multimodal/vision/image_fit.h"
#include "quant/formats.h"

namespace gemma4 {
namespace {

constexpr std::string_view kVisionType = "gemma4uv";
constexpr std::string_view kAudioType = "gemma4ua";

// Backend scratch freed on scope exit (also when an op throws).
class Scratch {
public:
    Scratch(Backend& backend, size_t bytes) : backend_(backend), p_(backend.alloc(bytes)) {}
    ~Scratch() { backend_.free(p_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <class T>
    T* as(size_t byte_offset = 0) const {
        return reinterpret_cast<T*>(static_cast<char*>(p_) + byte_offset);
    }

private:
    Backend& backend_;
    void* p_;
};

size_t align_up(size_t n) {
    constexpr size_t kAlign = 256;
    return (n + kAlign - 1) / kAlign * kAlign;
}

std::string projector_type(const GgufFile& f, std::string_view modality_key) {
    if (f.has(modality_key)) return std::string(f.get<std::string_view>(modality_key));
    if (f.has("clip.projector_type")) return std::string(f.get<std::string_view>("clip.projector_type"));
    f.fail_key(modality_key, "missing (the projector type)");
}

}  // namespace

Projector::~Projector() = default;

const float* Projector::table_f32(const GgufTensorInfo& t) {
    if (t.type == GgmlType::F32) return static_cast<const float*>(backend_.upload_weights(t.data, t.n_bytes));
    if (!ggml_type_info(t.type).supported || t.type == GgmlType::Q8_K) {
        throw Error(ErrorCode::unsupported_model, fmt::format("{}: tensor '{}' has type {}, which this engine cannot read",
                                                              file_.path(), t.name, ggml_type_info(t.type).name));
    }
    auto host = std::make_unique<std::vector<float>>(static_cast<size_t>(t.n_elements()));
    const int64_t row = t.ne[0];
    for (int64_t r = 0; r < t.n_rows(); ++r) dequantize_row(t.type, t.data + r * t.row_bytes(), host->data() + r * row, row);
    const float* p = static_cast<const float*>(backend_.upload_weights(host->data(), host->size() * sizeof(float)));
    if (backend_.weights_in_host_memory()) converted_.push_back(std::move(host));  // the CPU uses it in place
    return p;
}

const float* Projector::vector_f32(const std::string& name, int64_t n) {
    const GgufTensorInfo& t = file_.tensor(name);
    if (t.n_dims != 1 || t.ne[0] != n) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor '{}' has shape {}, expected [{}]", file_.path(), name,
                                                         t.shape_string(), n));
    }
    return table_f32(t);
}

WeightMatrix Projector::matrix(const std::string& name, int64_t d_in, int64_t d_out) {
    return load_weight_matrix(file_, name, d_in, d_out,
                              [this](const GgufTensorInfo& t) { return backend_.upload_weights(t.data, t.n_bytes); });
}

Projector::Projector(const std::string& path, Backend& backend) : file_(GgufFile::open(path)), backend_(backend) {
    const GgufFile& f = file_;
    const std::string arch(f.get<std::string_view>("general.architecture"));
    if (arch != "clip") {
        throw Error(ErrorCode::unsupported_model,
                    fmt::format("{}: general.architecture is '{}', not 'clip': not a multimodal projector", f.path(), arch));
    }
    ProjectorConfig& c = config_;
    c.has_vision = f.get_or<bool>("clip.has_vision_encoder", false);
    c.has_audio = f.get_or<bool>("clip.has_audio_encoder", false);
    if (!c.has_vision && !c.has_audio) {
        throw Error(ErrorCode::invalid_file, f.path() + ": the projector has neither a vision nor an audio part");
    }
    const auto check_type = [&](std::string_view key, std::string_view want) {
        const std::string type = projector_type(f, key);
        if (type != want) {
            throw Error(ErrorCode::unsupported_model,
                        fmt::format("{}: projector type '{}' is not supported (this engine runs the encoder-free Gemma 4 12B "
                                    "projector: vision '{}', audio '{}')", f.path(), type, kVisionType, kAudioType));
        }
    };

    int64_t d_model = -1;
    const auto out_width = [&](const WeightMatrix& w, const char* name) {
        if (d_model >= 0 && w.d_out != d_model) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: {} projects to {} values but the other projection to {}",
                                                             f.path(), name, w.d_out, d_model));
        }
        d_model = w.d_out;
    };

    if (c.has_vision) {
        check_type("clip.vision.projector_type", kVisionType);
        const int patch_size = f.get<int32_t>("clip.vision.patch_size");
        const int scale = f.get_or<int32_t>("clip.vision.projector.scale_factor", kPatchScaleDefault);
        if (patch_size <= 0 || scale <= 0 || patch_size * scale > 1024) {
            f.fail_key("clip.vision.patch_size", fmt::format("patch size {} x scale factor {} is out of range", patch_size, scale));
        }
        c.patch_px = patch_size * scale;
        c.d_vision = f.get<int32_t>("clip.vision.embedding_length");
        if (c.d_vision <= 0) f.fail_key("clip.vision.embedding_length", "must be positive");
        for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
            if (!f.has(key)) continue;
            const std::vector<float> v = f.get_array<float>(key);
            if (v.size() != 3) f.fail_key(key, fmt::format("has {} values, expected 3 (R, G, B)", v.size()));
            auto& dst = std::string_view(key).ends_with("mean") ? c.image_mean : c.image_std;
            for (int i = 0; i < 3; ++i) {
                if (!std::isfinite(v[i]) || (&dst == &c.image_std && v[i] == 0.0f)) f.fail_key(key, "has a non-finite or zero value");
                dst[i] = v[i];
            }
        }
        c.layer_norm_eps = kLayerNormEps;
        c.vision_rms_eps = f.get_or<float>("clip.vision.attention.layer_norm_epsilon", 1e-6f);
        if (!(c.vision_rms_eps > 0.0f && c.vision_rms_eps < 1.0f)) {
            f.fail_key("clip.vision.attention.layer_norm_epsilon", "must be in (0, 1)");
        }

        const int64_t pv = c.patch_values();
        const int64_t dv = c.d_vision;
        norm1_w_ = vector_f32("v.patch_norm.1.weight", pv);
        norm1_b_ = vector_f32("v.patch_norm.1.bias", pv);
        patch_embd_ = matrix("v.patch_embd.weight", pv, dv);
        patch_bias_ = vector_f32("v.patch_embd.bias", dv);
        norm2_w_ = vector_f32("v.patch_norm.2.weight", dv);
        norm2_b_ = vector_f32("v.patch_norm.2.bias", dv);
        norm3_w_ = vector_f32("v.patch_norm.3.weight", dv);
        norm3_b_ = vector_f32("v.patch_norm.3.bias", dv);
        const GgufTensorInfo& pos = f.tensor("v.position_embd.weight");
        if (pos.n_dims != 3 || pos.ne[0] != dv || pos.ne[2] != 2) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor 'v.position_embd.weight' has shape {}, expected [{}, N, 2]",
                                                             f.path(), pos.shape_string(), dv));
        }
        c.n_pos = static_cast<int>(pos.ne[1]);
        pos_x_ = table_f32(pos);
        pos_y_ = pos_x_ + static_cast<size_t>(c.n_pos) * dv;
        const GgufTensorInfo& proj = f.tensor("mm.input_projection.weight");
        vision_proj_ = matrix("mm.input_projection.weight", dv, proj.ne[1]);
        out_width(vision_proj_, "mm.input_projection.weight");
    }
    if (c.has_audio) {
        check_type("clip.audio.projector_type", kAudioType);
        c.audio_frame = kAudioFrameSamples;
        c.audio_rms_eps = kAudioRmsEps;
        const GgufTensorInfo& proj = f.tensor("mm.a.input_projection.weight");
        audio_proj_ = matrix("mm.a.input_projection.weight", c.audio_frame, proj.ne[1]);
        out_width(audio_proj_, "mm.a.input_projection.weight");
    }
    c.d_model = static_cast<int>(d_model);
}

uint64_t Projector::n_params() const {
    uint64_t n = 0;
    for (const auto& t : file_.tensors()) n += static_cast<uint64_t>(t.n_elements());
    return n;
}

std::vector<float> Projector::image_patches(const Image& image, const ImageOptions& options, int& grid_w, int& grid_h) const {
    const ProjectorConfig& c = config_;
    if (!c.has_vision) throw Error(ErrorCode::invalid_argument, path() + ": this projector has no vision part (no images)");
    // Budgets beyond n_pos^2 tokens could never be used (every grid side must stay within the tables).
    const int64_t budget_limit = std::min<int64_t>(kMaxImageTokens, static_cast<int64_t>(c.n_pos) * c.n_pos);
    const detail::ImageSize canvas = detail::fit_size(image.width(), image.height(), options, c.patch_px, budget_limit);
    grid_w = canvas.width / c.patch_px;
    grid_h = canvas.height / c.patch_px;
    if (grid_w < 1 || grid_h < 1 || grid_w > c.n_pos || grid_h > c.n_pos) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("image: {}x{} fits a grid of {}x{} patches of {} pixels, beyond the projector's position "
                                "tables ({} per side): the aspect ratio is too extreme", image.width(), image.height(), grid_w,
                                grid_h, c.patch_px, c.n_pos));
    }
    const std::vector<uint8_t> rgb = detail::fit_image(image, options.fit, canvas);
    return detail::patchify(rgb.data(), canvas.width, canvas.height, c.patch_px, c.image_mean, c.image_std);
}

MediaEmbeddings Projector::encode_image(const Image& image, const ImageOptions& options) const {
    const ProjectorConfig& c = config_;
    int grid_w = 0, grid_h = 0;
    const std::vector<float> patches = image_patches(image, options, grid_w, grid_h);
    const int n_tokens = grid_w * grid_h;
    const int pv = c.patch_values();
    const int dv = c.d_vision;

    MediaEmbeddings out;
    out.kind = MediaEmbeddings::Kind::image;
    out.n_tokens = n_tokens;
    out.d_model = c.d_model;
    out.grid_width = grid_w;
    out.grid_height = grid_h;
    out.values.resize(static_cast<size_t>(n_tokens) * c.d_model);

    const size_t rows = static_cast<size_t>(std::min(kEncodeRows, n_tokens));
    const size_t off_h = align_up(rows * pv * sizeof(float));
    const size_t off_ids = off_h + align_up(rows * dv * sizeof(float));
    const size_t off_out = off_ids + 2 * align_up(rows * sizeof(int32_t));
    const Scratch s(backend_, off_out + rows * c.d_model * sizeof(float));
    float* x = s.as<float>();
    float* h = s.as<float>(off_h);
    int32_t* ids_x = s.as<int32_t>(off_ids);
    int32_t* ids_y = s.as<int32_t>(off_ids + align_up(rows * sizeof(int32_t)));
    float* y = s.as<float>(off_out);
    std::vector<int32_t> host_x(rows), host_y(rows);

    for (int r0 = 0; r0 < n_tokens; r0 += kEncodeRows) {
        const int n = std::min(kEncodeRows, n_tokens - r0);
        for (int i = 0; i < n; ++i) {
            host_x[i] = (r0 + i) % grid_w;  // patch column: the X table
            host_y[i] = (r0 + i) / grid_w;  // patch row: the Y table
        }
        backend_.upload(x, patches.data() + static_cast<size_t>(r0) * pv, sizeof(float) * n * pv);
        backend_.upload(ids_x, host_x.data(), sizeof(int32_t) * n);
        backend_.upload(ids_y, host_y.data(), sizeof(int32_t) * n);
        backend_.layer_norm(x, norm1_w_, norm1_b_, n, pv, c.layer_norm_eps, x);
        backend_.matmul(patch_embd_, x, n, h);
        backend_.add_bias(h, patch_bias_, n, dv);
        backend_.layer_norm(h, norm2_w_, norm2_b_, n, dv, c.layer_norm_eps, h);
        backend_.add_rows(h, pos_x_, ids_x, n, dv);
        backend_.add_rows(h, pos_y_, ids_y, n, dv);
        backend_.layer_norm(h, norm3_w_, norm3_b_, n, dv, c.layer_norm_eps, h);
        backend_.rms_norm(h, nullptr, n, dv, c.vision_rms_eps, h);
        backend_.matmul(vision_proj_, h, n, y);
        backend_.download(out.values.data() + static_cast<size_t>(r0) * c.d_model, y, sizeof(float) * n * c.d_model);
    }
    return out;
}

MediaEmbeddings Projector::encode_audio(const Audio& audio) const {
    const ProjectorConfig& c = config_;
    if (!c.has_audio) throw Error(ErrorCode::invalid_argument, path() + ": this projector has no audio part (no audio)");
    const std::span<const float> samples = audio.samples();
    if (samples.empty()) throw Error(ErrorCode::invalid_argument, "audio: no samples");
    const int64_t n_frames64 = (static_cast<int64_t>(samples.size()) + c.audio_frame - 1) / c.audio_frame;
    if (n_frames64 > INT32_MAX / c.d_model) {
        throw Error(ErrorCode::invalid_argument, fmt::format("audio: {:.1f} s is too long", audio.duration_s()));
    }
    const int n_tokens = static_cast<int>(n_frames64);

    MediaEmbeddings out;
    out.kind = MediaEmbeddings::Kind::audio;
    out.n_tokens = n_tokens;
    out.d_model = c.d_model;
    out.values.resize(static_cast<size_t>(n_tokens) * c.d_model);

    const size_t rows = static_cast<size_t>(std::min(kEncodeRows, n_tokens));
    const size_t off_out = align_up(rows * c.audio_frame * sizeof(float));
    const Scratch s(backend_, off_out + rows * c.d_model * sizeof(float));
    float* x = s.as<float>();
    float* y = s.as<float>(off_out);
    std::vector<float> frames(rows * c.audio_frame);

    for (int r0 = 0; r0 < n_tokens; r0 += kEncodeRows) {
        const int n = std::min(kEncodeRows, n_tokens - r0);
        // Frame t holds samples [640 t, 640 t + 640); the last one is zero-padded.
        const size_t first = static_cast<size_t>(r0) * c.audio_frame;
        const size_t avail = std::min(samples.size() - first, static_cast<size_t>(n) * c.audio_frame);
        std::fill(frames.begin(), frames.end(), 0.0f);
        std::copy_n(samples.data() + first, avail, frames.begin());
        backend_.upload(x, frames.data(), sizeof(float) * n * c.audio_frame);
        backend_.rms_norm(x, nullptr, n, c.audio_frame, c.audio_rms_eps, x);
        backend_.matmul(audio_proj_, x, n, y);
        backend_.download(out.values.data() + static_cast<size_t>(r0) * c.d_model, y, sizeof(float) * n * c.d_model);
    }
    return out;
}

}  // namespace gemma4
