// gemma4/model.h: opening a Gemma 4 GGUF and creating sessions.
//
//   auto model   = gemma4::Model::open("gemma-4-12b-it-Q4_K_M.gguf", {.device = gemma4::Device::cuda(0)});
//   auto session = model.new_session({.context_tokens = 32768});
//
// A Model is immutable after open() and may be shared across threads; each Session is used by one
// thread at a time. Model and Session are movable, not copyable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gemma4/media.h"

namespace gemma4 {

class Session;

/// Where the forward pass runs.
struct Device {
    enum class Kind { cpu, cuda };
    Kind kind = Kind::cpu;
    int index = 0;

    static Device cpu() { return {Kind::cpu, 0}; }
    static Device cuda(int index = 0) { return {Kind::cuda, index}; }
    /// CUDA device 0 if this build has CUDA and a GPU is present, else the CPU.
    static Device best_available();
    /// Parses "cpu", "cuda", "cuda:1" or "auto". Throws Error(invalid_argument) otherwise.
    static Device parse(std::string_view text);
};

/// KV-cache element type.
enum class KvType { f16, f32 };

/// Log messages from the library (loading progress, warnings). Never called concurrently.
enum class LogLevel { debug, info, warning };
using LogCallback = std::function<void(LogLevel, std::string_view)>;

struct ModelOptions {
    Device device = Device::cpu();
    std::string mmproj;          ///< optional projector GGUF for images and audio (arch clip, gemma4uv/gemma4ua)
    int threads = 0;             ///< CPU threads; 0 = all hardware threads
    LogCallback log;             ///< default: silent
    /// Called with the fraction loaded (0..1) while weights are read or uploaded.
    std::function<void(float)> on_progress;
};

struct SessionOptions {
    int context_tokens = 8192;    ///< the most tokens the session holds (clamped to the model's)
    KvType kv_type = KvType::f16;
    int batch_tokens = 512;       ///< prompt tokens per forward pass
    bool thinking = false;        ///< chat: enable the thought channel
    std::string system_prompt;    ///< chat: optional system turn
};

/// What a loaded model is.
struct ModelInfo {
    std::string name;
    std::string file_type;        ///< "Q4_K_M", "F16", ...
    int n_layers = 0;
    int d_model = 0;
    int vocab_size = 0;
    int context_tokens = 0;       ///< training context length
    uint64_t n_params = 0;
    uint64_t file_bytes = 0;
    std::string device;           ///< "cpu (16 threads)", "cuda:0 NVIDIA H100 ..."
    bool has_vision = false;
    bool has_audio = false;
};

class Model {
public:
    /// Opens and validates a Gemma 4 text GGUF (and the projector, if given: its output width must be the
    /// model's d_model). Weights are memory-mapped,
    /// never copied whole into RAM; a GPU device gets them uploaded once, as stored.
    /// Throws Error: invalid_file (unreadable/corrupt), unsupported_model (not a Gemma 4 model this
    /// engine runs), device_error / out_of_memory (GPU).
    static Model open(const std::string& path, const ModelOptions& options = {});

    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;
    ~Model();

    const ModelInfo& info() const;
    Session new_session(const SessionOptions& options = {}) const;

    /// Memory right now. device_used is what the GPU reports in use for all processes (cudaMemGetInfo:
    /// weights, KV pages, scratch, the CUDA context and cuBLAS workspace of this process, and anything
    /// other processes hold); kv_reserved is the KV-cache memory held by this model's sessions.
    struct MemoryUse {
        uint64_t device_used = 0;   ///< 0 on the CPU
        uint64_t device_total = 0;  ///< 0 on the CPU
        uint64_t kv_reserved = 0;   ///< bytes of KV pages (in use and kept for reuse)
    };
    MemoryUse memory_use() const;

    /// Runs an image or an audio clip through the projector (ModelOptions::mmproj) on the model's device:
    /// the soft tokens Session::add_image / add_audio insert. Throws Error(invalid_argument) when the
    /// model was opened without a projector (or one without that modality), for ImageOptions out of range,
    /// or an image whose patch grid would exceed the projector's position tables (extreme aspect ratios).
    MediaEmbeddings encode_image(const Image& image, const ImageOptions& options = {}) const;
    MediaEmbeddings encode_audio(const Audio& audio) const;

    /// Tokenizer access: encode text (BOS added when `add_bos`; special-token texts parsed when
    /// `parse_special`), and the text of one token.
    std::vector<int32_t> tokenize(std::string_view text, bool add_bos, bool parse_special) const;
    std::string detokenize(const std::vector<int32_t>& tokens) const;

    struct Impl;

private:
    explicit Model(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
    friend class Session;
};

}  // namespace gemma4
