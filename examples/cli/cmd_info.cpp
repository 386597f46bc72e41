// gemma4 info MODEL.gguf: what a GGUF file holds, as this engine reads it.
#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "cli.h"
#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "model/config.h"

namespace gemma4::cli {
namespace {

constexpr const char* kUsage =
    "usage: gemma4 info MODEL.gguf\n\n"
    "Prints the architecture, the parsed Gemma 4 config (or the projector's), tensor counts by type,\n"
    "the parameter count and the file size. Exit code 1 for a file that is not a Gemma 4 text model\n"
    "or projector.\n";

std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) { b /= 1024.0; ++u; }
    return fmt::format("{:.2f} {}", b, units[u]);
}

void print_tensor_summary(const GgufFile& f) {
    std::map<std::string, int> by_type;
    int64_t params = 0;
    for (const auto& t : f.tensors()) {
        by_type[ggml_type_info(t.type).name]++;
        params += t.n_elements();
    }
    std::string types;
    for (const auto& [name, n] : by_type) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, name);
    fmt::print("tensors           {} ({})\n", f.tensors().size(), types);
    fmt::print("parameters        {} ({:.3f} B)\n", params, params / 1e9);
    fmt::print("file size         {} bytes ({})\n", f.file_bytes(), human_bytes(static_cast<double>(f.file_bytes())));
}

std::string layer_list(const ModelConfig& c, bool sliding) {
    std::string s;
    for (int l = 0; l < c.n_layers; ++l) {
        if (c.layers[l].sliding == sliding) s += fmt::format("{}{}", s.empty() ? "" : ",", l);
    }
    return s.empty() ? "none" : s;
}

void print_text_model(const GgufFile& f) {
    const ModelConfig c = ModelConfig::from_gguf(f);
    const LayerConfig* swa = nullptr;
    const LayerConfig* full = nullptr;
    for (const auto& l : c.layers) {
        const LayerConfig*& first = l.sliding ? swa : full;
        if (!first) first = &l;
    }
    fmt::print("architecture      {}\n", c.architecture);
    if (!c.name.empty()) fmt::print("name              {}\n", c.name);
    fmt::print("file type         {}\n", file_type_name(c.file_type));
    fmt::print("layers            {} ({} sliding, {} full)\n", c.n_layers, c.n_sliding_layers(), c.n_full_layers());
    fmt::print("full layers       {}\n", layer_list(c, false));
    fmt::print("d_model           {}\n", c.d_model);
    fmt::print("d_ff              {}\n", c.max_d_ff());
    fmt::print("query heads       {}\n", c.layers[0].n_heads);
    if (swa) {
        fmt::print("sliding layers    head_dim {}, kv heads {}, window {}, rope base {:g}, rope dims {}, attn_v {}\n",
                   swa->head_dim, swa->n_kv_heads, c.sliding_window, swa->rope_base, swa->rope_dims,
                   swa->has_v_proj ? "yes" : "no (K = V)");
    }
    if (full) {
        fmt::print("full layers       head_dim {}, kv heads {}, rope base {:g}, rope dims {}, attn_v {}{}\n", full->head_dim,
                   full->n_kv_heads, full->rope_base, full->rope_dims, full->has_v_proj ? "yes" : "no (K = V)",
                   f.find_tensor("rope_freqs.weight") ? ", rope_freqs" : "");
    }
    fmt::print("rms eps           {:g}\n", c.rms_eps);
    fmt::print("final softcap     {:g}\n", c.final_softcap);
    fmt::print("layer out scale   {}\n", c.has_layer_output_scale ? "yes" : "no");
    fmt::print("vocab size        {}\n", c.vocab_size);
    fmt::print("context length    {}\n", c.context_tokens);
    fmt::print("tokenizer         {}\n", f.get_or<std::string>("tokenizer.ggml.model", "(none)"));
    fmt::print("chat template     {}\n", f.has("tokenizer.chat_template") ? "yes" : "no");
    print_tensor_summary(f);
}

void print_projector(const GgufFile& f) {
    const bool vision = f.get_or<bool>("clip.has_vision_encoder", false);
    const bool audio = f.get_or<bool>("clip.has_audio_encoder", false);
    const std::string vtype = vision ? f.get_or<std::string>("clip.vision.projector_type", f.get_or<std::string>("clip.projector_type", "")) : "";
    const std::string atype = audio ? f.get_or<std::string>("clip.audio.projector_type", f.get_or<std::string>("clip.projector_type", "")) : "";
    if ((vision && vtype != "gemma4uv") || (audio && atype != "gemma4ua") || (!vision && !audio)) {
        throw Error(ErrorCode::unsupported_model,
                    fmt::format("{}: projector types vision '{}' / audio '{}' are not Gemma 4's (gemma4uv / gemma4ua)", f.path(),
                                vtype, atype));
    }
    fmt::print("architecture      clip (Gemma 4 multimodal projector)\n");
    if (f.has("general.name")) fmt::print("name              {}\n", f.get<std::string>("general.name"));
    if (vision) {
        fmt::print("vision            {}: patch {} x merge {}, embedding {}, projection {}\n", vtype,
                   f.get_or<int>("clip.vision.patch_size", 0), f.get_or<int>("clip.vision.projector.scale_factor", 3),
                   f.get_or<int>("clip.vision.embedding_length", 0), f.get_or<int>("clip.vision.projection_dim", 0));
    }
    if (audio) {
        fmt::print("audio             {}: frame {} samples, projection {}\n", atype,
                   f.get_or<int>("clip.audio.embedding_length", 0), f.get_or<int>("clip.audio.projection_dim", 0));
    }
    print_tensor_summary(f);
}

int run_info(Args& args) {
    auto pos = args.positionals();
    args.finish();
    if (pos.size() != 1) throw UsageError("expected exactly one MODEL.gguf");
    const GgufFile f = GgufFile::open(pos[0]);
    const std::string arch = f.get_or<std::string>("general.architecture", "");
    if (arch == "clip") {
        print_projector(f);
    } else {
        print_text_model(f);
    }
    return 0;
}

const bool kRegistered = register_command({"info", "print a GGUF model's architecture, config and tensors", kUsage, run_info});

}  // namespace
}  // namespace gemma4::cli
