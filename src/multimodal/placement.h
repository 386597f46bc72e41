// Placement of media in the token stream (spec §5.5).
//
// An image becomes `<|image>` + N soft tokens + `<image|>`, an audio clip `<|audio>` + M soft tokens +
// `<audio|>`: the markers are ordinary text tokens, the soft tokens are marked -1 in the id stream and
// take their rows from the projector output; one position each, no extra newlines.
//
// In a rendered chat prompt, the template writes a placeholder where a message has an image or audio
// part: "<|image|>" (possibly inside "\n\n<|image|>\n\n") and "<|audio|>". tokenize_with_media() expands
// each placeholder found in the template's own text (never in message content, so a user typing
// "<|image|>" cannot claim a media slot) into the next media block, in order; the text around it is
// tokenized as RenderedPrompt::tokenize does (template text with special tokens parsed, content without).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gemma4/media.h"
#include "model/chat_template.h"

namespace gemma4 {

class Tokenizer;

/// The marker token ids of a vocabulary.
struct MediaMarkers {
    int32_t image_begin = -1;  // <|image>
    int32_t image_end = -1;    // <image|>
    int32_t audio_begin = -1;  // <|audio>
    int32_t audio_end = -1;    // <audio|>

    /// Looks the markers up by text. Throws Error(unsupported_model) naming a missing one.
    static MediaMarkers find(const Tokenizer& tokenizer);
};

/// Token ids with media: -1 marks a soft token; blocks say which media fill them.
struct MediaSequence {
    struct Block {
        size_t offset = 0;  // index in ids of the block's first soft token
        std::shared_ptr<const MediaEmbeddings> media;
    };
    std::vector<int32_t> ids;
    std::vector<Block> blocks;

    void append_text(std::span<const int32_t> tokens) { ids.insert(ids.end(), tokens.begin(), tokens.end()); }
    /// Appends the marker-wrapped block of `media`.
    void append_media(std::shared_ptr<const MediaEmbeddings> media, const MediaMarkers& markers);
};

/// Tokenizes `prompt`, expanding its placeholders into `media` (in order; kinds must match). add_bos: the
/// result starts with BOS exactly once (the rendered "<bos>" text or an inserted one). Throws
/// Error(invalid_argument) when the placeholders and the media differ in number or kind.
MediaSequence tokenize_with_media(const RenderedPrompt& prompt, const Tokenizer& tokenizer, const MediaMarkers& markers,
                                  std::span<const std::shared_ptr<const MediaEmbeddings>> media, bool add_bos);

}  // namespace gemma4
