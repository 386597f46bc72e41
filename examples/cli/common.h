// Options shared by the model-running subcommands (generate, chat, logits): model loading with a
// progress bar, session options and sampler flags.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "gemma4/gemma4.h"

namespace gemma4::cli {

/// --model F --device cpu|cuda|cuda:N|auto --threads N --mmproj F [--quiet]
Model open_model(Args& args);
/// --ctx N --batch N --kv f16|f32 --system TEXT --think
SessionOptions session_options(Args& args);
/// The media of a prompt: --image F / --audio F (repeatable, kept in command-line order) and the image
/// options --image-min-tokens N, --image-max-tokens N, --image-fit llama|hf.
struct MediaInput {
    bool is_image = true;
    std::string path;
};
struct MediaArgs {
    std::vector<MediaInput> items;
    ImageOptions image;
};
MediaArgs media_args(Args& args);
/// The prompt's text around the media: items.size() + 1 pieces. Media go where the prompt has the marker
/// "<__media__>" (one per item, in order) or, if it has none, all before the prompt: the convention of
/// the oracle's gemma4-dump (llama.cpp's mtmd), so that both see the same sequence. Throws UsageError when
/// the prompt has markers but not one per item. Without items the prompt is one piece, as is.
std::vector<std::string> split_at_media_markers(const std::string& prompt, size_t n_items);
/// Decodes a file (Image/Audio::from_file) and runs it through the projector.
MediaEmbeddings encode_media(const Model& model, const MediaInput& item, const ImageOptions& image);

/// --greedy | --temp T --top-k K --top-p P --min-p P --repeat-penalty R --repeat-window N --seed S
/// (defaults: Gemma 4's recommended temp 1.0, top-k 64, top-p 0.95)
Sampler sampler_from(Args& args);

extern const char* const kModelOptionsHelp;
extern const char* const kSessionOptionsHelp;
extern const char* const kSamplerOptionsHelp;
extern const char* const kMediaOptionsHelp;
/// The marker that places media in a prompt ("<__media__>", llama.cpp's mtmd_default_marker()).
extern const char* const kMediaMarker;

}  // namespace gemma4::cli
