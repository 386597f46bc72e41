#include "multimodal/placement.h"

#include <string_view>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "model/tokenizer.h"

namespace gemma4 {
namespace {

constexpr std::string_view kImagePlaceholder = "<|image|>";
constexpr std::string_view kAudioPlaceholder = "<|audio|>";

const char* kind_name(MediaEmbeddings::Kind kind) { return kind == MediaEmbeddings::Kind::image ? "image" : "audio"; }

}  // namespace

MediaMarkers MediaMarkers::find(const Tokenizer& tokenizer) {
    MediaMarkers m;
    const auto need = [&](std::string_view text) {
        const auto id = tokenizer.find(text);
        if (!id) {
            throw Error(ErrorCode::unsupported_model, fmt::format("the vocabulary has no '{}' token, so it cannot take media", text));
        }
        return *id;
    };
    m.image_begin = need("<|image>");
    m.image_end = need("<image|>");
    m.audio_begin = need("<|audio>");
    m.audio_end = need("<audio|>");
    return m;
}

void MediaSequence::append_media(std::shared_ptr<const MediaEmbeddings> media, const MediaMarkers& markers) {
    const bool image = media->kind == MediaEmbeddings::Kind::image;
    ids.push_back(image ? markers.image_begin : markers.audio_begin);
    blocks.push_back({ids.size(), media});
    ids.insert(ids.end(), static_cast<size_t>(media->n_tokens), -1);
    ids.push_back(image ? markers.image_end : markers.audio_end);
}

MediaSequence tokenize_with_media(const RenderedPrompt& prompt, const Tokenizer& tokenizer, const MediaMarkers& markers,
                                  std::span<const std::shared_ptr<const MediaEmbeddings>> media, bool add_bos) {
    MediaSequence seq;
    size_t next = 0;
    const auto take = [&](MediaEmbeddings::Kind kind) {
        if (next >= media.size()) {
            throw Error(ErrorCode::invalid_argument,
                        fmt::format("the prompt has more media placeholders than the {} media items given", media.size()));
        }
        if (media[next]->kind != kind) {
            throw Error(ErrorCode::invalid_argument, fmt::format("media item {} is {}, but its placeholder is for {}", next,
                                                                 kind_name(media[next]->kind), kind_name(kind)));
        }
        seq.append_media(media[next++], markers);
    };
    for (const RenderedPrompt::Segment& s : prompt.segments) {
        if (!s.special) {
            seq.append_text(tokenizer.encode(s.text, false, false));
            continue;
        }
        std::string_view rest = s.text;
        while (!rest.empty()) {
            const size_t at_image = rest.find(kImagePlaceholder);
            const size_t at_audio = rest.find(kAudioPlaceholder);
            const size_t at = std::min(at_image, at_audio);
            seq.append_text(tokenizer.encode(rest.substr(0, at), false, true));
            if (at == std::string_view::npos) break;
            const bool image = at == at_image;
            take(image ? MediaEmbeddings::Kind::image : MediaEmbeddings::Kind::audio);
            rest.remove_prefix(at + (image ? kImagePlaceholder.size() : kAudioPlaceholder.size()));
        }
    }
    if (next != media.size()) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("the prompt has {} media placeholders but {} media items were given", next, media.size()));
    }
    if (add_bos && (seq.ids.empty() || seq.ids.front() != tokenizer.bos_id())) {
        seq.ids.insert(seq.ids.begin(), tokenizer.bos_id());
        for (auto& b : seq.blocks) ++b.offset;
    }
    return seq;
}

}  // namespace gemma4
