// Model: opening a GGUF, building the backend and weights, and the tokenizer entry points.
#include <thread>

#include <fmt/format.h>

#include "api/model_impl.h"
#include "gemma4/error.h"

#ifdef GEMMA4_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace gemma4 {

Device Device::best_available() {
#ifdef GEMMA4_HAVE_CUDA
    if (cuda::device_count() > 0) return cuda(0);
#endif
    return cpu();
}

Device Device::parse(std::string_view text) {
    if (text == "cpu") return cpu();
    if (text == "auto") return best_available();
    if (text == "cuda") return cuda(0);
    if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
        int index = 0;
        for (char c : text.substr(5)) {
            if (c < '0' || c > '9' || index > 1000) {
                throw Error(ErrorCode::invalid_argument, fmt::format("bad device '{}' (cpu, cuda, cuda:N or auto)", text));
            }
            index = index * 10 + (c - '0');
        }
        return cuda(index);
    }
    throw Error(ErrorCode::invalid_argument, fmt::format("bad device '{}' (cpu, cuda, cuda:N or auto)", text));
}

Model::Model(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

namespace {

int resolve_threads(int threads) {
    return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

Model::Impl::Impl(const std::string& path, const ModelOptions& o)
    : options(o),
      file(GgufFile::open(path)),
      config(ModelConfig::from_gguf(file)),
      tokenizer(Tokenizer::from_gguf(file)),
      chat_template(ChatTemplate::from_gguf(file)),
      backend(make_backend(o.device, resolve_threads(o.threads))) {
    if (tokenizer.vocab_size() != config.vocab_size) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: the tokenizer has {} tokens but token_embd has {} rows", path,
                                                         tokenizer.vocab_size(), config.vocab_size));
    }
    if (!chat_template.support().supported) {
        log(LogLevel::warning, "chat template: " + chat_template.support().reason + " (chat turns will fail; raw use works)");
    }
    log(LogLevel::info, fmt::format("{}: {} layers, d_model {}, vocab {}, on {}", path, config.n_layers, config.d_model,
                                    config.vocab_size, backend->name()));
    weights = ModelWeights::load(file, config, *backend, options.on_progress);
    if (!options.mmproj.empty()) {
        projector = std::make_unique<Projector>(options.mmproj, *backend);
        const ProjectorConfig& pc = projector->config();
        if (pc.d_model != config.d_model) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: the projector makes {}-value soft tokens but {} has d_model {}: "
                                                             "they do not belong together", options.mmproj, pc.d_model, path,
                                                             config.d_model));
        }
        media_markers = MediaMarkers::find(tokenizer);
        info.has_vision = pc.has_vision;
        info.has_audio = pc.has_audio;
        log(LogLevel::info, fmt::format("{}: projector{}{}, d_model {}", options.mmproj,
                                        pc.has_vision ? fmt::format(", vision: {}-pixel patches, width {}, {} positions per side",
                                                                    pc.patch_px, pc.d_vision, pc.n_pos) : "",
                                        pc.has_audio ? fmt::format(", audio: {}-sample frames", pc.audio_frame) : "", pc.d_model));
    }
    kv_pools = std::make_unique<KvPools>(*backend);
    for (size_t l = 0; l < weights.layers.size(); ++l) {
        log(LogLevel::debug, fmt::format("layer {}: layer_output_scale {}", l, weights.layers[l].output_scale));
    }
    info.name = config.name;
    info.file_type = file_type_name(config.file_type);
    info.n_layers = config.n_layers;
    info.d_model = config.d_model;
    info.vocab_size = config.vocab_size;
    info.context_tokens = config.context_tokens;
    for (const auto& t : file.tensors()) info.n_params += static_cast<uint64_t>(t.n_elements());
    info.file_bytes = file.file_bytes();
    info.device = backend->name();
}

const Projector& Model::Impl::require_projector() const {
    if (!projector) {
        throw Error(ErrorCode::invalid_argument, "images and audio need a projector: open the model with ModelOptions::mmproj "
                                                 "(the CLI's --mmproj)");
    }
    return *projector;
}

Model Model::open(const std::string& path, const ModelOptions& options) {
    return Model(std::make_shared<Impl>(path, options));
}

const ModelInfo& Model::info() const { return impl_->info; }

Model::MemoryUse Model::memory_use() const {
    MemoryUse m;
    impl_->backend->device_memory(m.device_used, m.device_total);
    m.kv_reserved = impl_->kv_pools->bytes_reserved();
    return m;
}

MediaEmbeddings Model::encode_image(const Image& image, const ImageOptions& options) const {
    return impl_->require_projector().encode_image(image, options);
}

MediaEmbeddings Model::encode_audio(const Audio& audio) const { return impl_->require_projector().encode_audio(audio); }

std::vector<int32_t> Model::tokenize(std::string_view text, bool add_bos, bool parse_special) const {
    return impl_->tokenizer.encode(text, add_bos, parse_special);
}

std::string Model::detokenize(const std::vector<int32_t>& tokens) const { return impl_->tokenizer.decode(tokens); }

}  // namespace gemma4
