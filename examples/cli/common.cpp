#include "common.h"

#include <chrono>
#include <cstdio>
#include <unistd.h>

#include <fmt/format.h>

namespace gemma4::cli {

const char* const kModelOptionsHelp =
    "  --model F          Gemma 4 GGUF (text model)\n"
    "  --device D         cpu, cuda, cuda:N or auto (default auto)\n"
    "  --threads N        CPU threads (default: all)\n"
    "  --quiet            no progress bar or statistics on stderr\n";
const char* const kSessionOptionsHelp =
    "  --ctx N            context tokens (default 8192)\n"
    "  --batch N          prompt tokens per forward pass (default 512)\n"
    "  --kv f16|f32       KV-cache type (default f16)\n";
const char* const kSamplerOptionsHelp =
    "  --greedy           always the most likely token\n"
    "  --temp T           temperature (default 1.0; 0 = greedy)\n"
    "  --top-k K          (default 64; 0 = off)\n"
    "  --top-p P          (default 0.95; 1 = off)\n"
    "  --min-p P          (default 0 = off)\n"
    "  --repeat-penalty R (default 1 = off)\n"
    "  --repeat-window N  tokens the penalty looks back (default 64)\n"
    "  --seed S           random seed (default 0)\n";

const char* const kMediaOptionsHelp =
    "  --mmproj F         projector GGUF: needed for images and audio\n"
    "  --image F          image (PNG, JPEG, BMP, GIF, PPM/PGM); repeatable\n"
    "  --audio F          audio (WAV: PCM 8/16/24/32-bit or float; resampled to 16 kHz mono); repeatable\n"
    "                     media go where the prompt has <__media__> (one per --image/--audio, in\n"
    "                     command-line order), or before the prompt if it has no marker\n"
    "  --image-min-tokens N  fewest soft tokens per image (default 70; llama fit only)\n"
    "  --image-max-tokens N  most soft tokens per image (default 1120)\n"
    "  --image-fit F      llama (llama.cpp's: round to 48 px, pad with black; default) or hf (floor, squash)\n";
const char* const kMediaMarker = "<__media__>";

std::vector<std::pair<std::string, std::string>> Args::ordered_values(std::initializer_list<std::string_view> names) {
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i < argv_.size(); ++i) {
        if (used_[i]) continue;
        for (std::string_view name : names) {
            const std::string prefix = std::string(name) + "=";
            if (argv_[i] == name) {
                if (i + 1 >= argv_.size()) throw UsageError(fmt::format("option {} needs a value", name));
                used_[i] = used_[i + 1] = true;
                out.emplace_back(std::string(name), argv_[i + 1]);
                ++i;
                break;
            }
            if (argv_[i].rfind(prefix, 0) == 0) {
                used_[i] = true;
                out.emplace_back(std::string(name), argv_[i].substr(prefix.size()));
                break;
            }
        }
    }
    return out;
}

MediaArgs media_args(Args& args) {
    MediaArgs m;
    for (auto& [name, value] : args.ordered_values({"--image", "--audio"})) m.items.push_back({name == "--image", value});
    m.image.min_tokens = static_cast<int>(args.integer("--image-min-tokens", m.image.min_tokens));
    m.image.max_tokens = static_cast<int>(args.integer("--image-max-tokens", m.image.max_tokens));
    const std::string fit = args.value("--image-fit").value_or("llama");
    if (fit == "llama") m.image.fit = ImageFit::llama_cpp;
    else if (fit == "hf") m.image.fit = ImageFit::hf;
    else throw UsageError("--image-fit must be llama or hf");
    return m;
}

std::vector<std::string> split_at_media_markers(const std::string& prompt, size_t n_items) {
    if (n_items == 0) return {prompt};
    const std::string marker = kMediaMarker;
    std::vector<std::string> pieces;
    size_t from = 0;
    for (size_t at = prompt.find(marker); at != std::string::npos; at = prompt.find(marker, from)) {
        pieces.push_back(prompt.substr(from, at - from));
        from = at + marker.size();
    }
    pieces.push_back(prompt.substr(from));
    if (pieces.size() == 1) {
        pieces.assign(n_items, "");  // no marker: every item before the prompt
        pieces.push_back(prompt);
    } else if (pieces.size() != n_items + 1) {
        throw UsageError(fmt::format("the prompt has {} {} markers but {} --image/--audio were given", pieces.size() - 1, marker,
                                     n_items));
    }
    return pieces;
}

MediaEmbeddings encode_media(const Model& model, const MediaInput& item, const ImageOptions& image) {
    return item.is_image ? model.encode_image(Image::from_file(item.path), image) : model.encode_audio(Audio::from_file(item.path));
}

Model open_model(Args& args) {
    const std::string path = args.required("--model");
    const bool quiet = args.flag("--quiet");
    ModelOptions opt;
    opt.device = Device::parse(args.value("--device").value_or("auto"));
    opt.threads = static_cast<int>(args.integer("--threads", 0));
    opt.mmproj = args.value("--mmproj").value_or("");
    const bool tty = isatty(fileno(stderr));
    if (!quiet) {
        auto last = std::make_shared<int>(-1);
        opt.on_progress = [last, tty](float f) {
            const int pct = static_cast<int>(f * 100.0f);
            if (pct == *last) return;
            *last = pct;
            if (tty) {
                const int width = 40;
                const int filled = pct * width / 100;
                std::fprintf(stderr, "\rloading [%s%s] %3d%%", std::string(filled, '#').c_str(),
                             std::string(width - filled, ' ').c_str(), pct);
                if (pct == 100) std::fputc('\n', stderr);
            } else if (pct % 25 == 0) {
                std::fprintf(stderr, "loading %d%%\n", pct);
            }
        };
    }
    const auto t0 = std::chrono::steady_clock::now();
    Model model = Model::open(path, opt);
    if (!quiet) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const ModelInfo& i = model.info();
        std::fprintf(stderr, "%s\n", fmt::format("model: {} ({}, {} layers, {:.2f} B params) on {}, loaded in {:.2f} s",
                                                 i.name.empty() ? path : i.name, i.file_type, i.n_layers, i.n_params / 1e9,
                                                 i.device, s).c_str());
    }
    return model;
}

SessionOptions session_options(Args& args) {
    SessionOptions o;
    o.context_tokens = static_cast<int>(args.integer("--ctx", 8192));
    o.batch_tokens = static_cast<int>(args.integer("--batch", 512));
    const std::string kv = args.value("--kv").value_or("f16");
    if (kv == "f16") o.kv_type = KvType::f16;
    else if (kv == "f32") o.kv_type = KvType::f32;
    else throw UsageError("--kv must be f16 or f32");
    o.system_prompt = args.value("--system").value_or("");
    o.thinking = args.flag("--think");
    return o;
}

Sampler sampler_from(Args& args) {
    SamplerOptions s;
    s.temperature = static_cast<float>(args.number("--temp", 1.0));
    s.top_k = static_cast<int>(args.integer("--top-k", 64));
    s.top_p = static_cast<float>(args.number("--top-p", 0.95));
    s.min_p = static_cast<float>(args.number("--min-p", 0.0));
    s.repetition_penalty = static_cast<float>(args.number("--repeat-penalty", 1.0));
    s.repetition_window = static_cast<int>(args.integer("--repeat-window", 64));
    s.seed = static_cast<uint64_t>(args.integer("--seed", 0));
    if (args.flag("--greedy")) s.temperature = 0.0f;
    return Sampler::with(s);
}

}  // namespace gemma4::cli
