// Placement of media in a rendered chat prompt (multimodal/placement.h): placeholders in the template's text
// become <|image> N soft tokens <image|> / <|audio> M soft tokens <audio|>, in order; placeholders typed in
// message content do not; counts and kinds must match.
#include <catch2/catch.hpp>

#include "gguf/gguf_file.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "multimodal/placement.h"

using namespace gemma4;

namespace {

const Tokenizer& tiny_tokenizer() {
    static const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(std::string(GEMMA4_TEST_DATA_DIR) + "/models/gemma4-tiny-f32.gguf"));
    return t;
}

std::shared_ptr<const MediaEmbeddings> media(MediaEmbeddings::Kind kind, int n) {
    return std::make_shared<const MediaEmbeddings>(MediaEmbeddings{kind, n, 4, 0, 0, std::vector<float>(size_t(n) * 4, 1.0f)});
}

}  // namespace

TEST_CASE("placeholders in template text expand to marker-wrapped soft tokens", "[unit]") {
    const Tokenizer& tok = tiny_tokenizer();
    const MediaMarkers mk = MediaMarkers::find(tok);
    ChatMessage msg{ChatRole::user, {ContentPart::from_text("look <|image|> here"), ContentPart::image(),
                                     ContentPart::from_text("and listen"), ContentPart::audio()}};
    // The built-in grammar (the original release's dialect: the image placeholder has blank lines around it).
    const RenderedPrompt r = ChatTemplate().render(std::span<const ChatMessage>(&msg, 1), {});
    const std::vector<std::shared_ptr<const MediaEmbeddings>> items = {media(MediaEmbeddings::Kind::image, 3),
                                                                       media(MediaEmbeddings::Kind::audio, 2)};
    const MediaSequence seq = tokenize_with_media(r, tok, mk, items, true);
    REQUIRE(seq.blocks.size() == 2);
    CHECK(seq.ids.front() == tok.bos_id());
    CHECK(std::count(seq.ids.begin(), seq.ids.end(), tok.bos_id()) == 1);
    const size_t i = seq.blocks[0].offset, a = seq.blocks[1].offset;
    CHECK(seq.ids[i - 1] == mk.image_begin);
    CHECK(seq.ids[i + 3] == mk.image_end);
    CHECK(seq.ids[a - 1] == mk.audio_begin);
    CHECK(seq.ids[a + 2] == mk.audio_end);
    CHECK(std::count(seq.ids.begin(), seq.ids.end(), -1) == 5);
    // The user's literal "<|image|>" is content: tokenized as text, not a media slot.
    const std::vector<int32_t> literal = tok.encode("<|image|>", false, true);
    CHECK(std::search(seq.ids.begin(), seq.ids.end(), literal.begin(), literal.end()) == seq.ids.end());
    // Without media the rest of the ids are what RenderedPrompt::tokenize gives.
    ChatMessage plain = ChatMessage::text(ChatRole::user, "hello");
    const RenderedPrompt rp = ChatTemplate().render(std::span<const ChatMessage>(&plain, 1), {});
    CHECK(tokenize_with_media(rp, tok, mk, {}, true).ids == rp.tokenize(tok));

    // Counts and kinds must match.
    CHECK_THROWS_AS(tokenize_with_media(r, tok, mk, std::vector<std::shared_ptr<const MediaEmbeddings>>{items[0]}, true), Error);
    using Items = std::vector<std::shared_ptr<const MediaEmbeddings>>;
    CHECK_THROWS_AS(tokenize_with_media(r, tok, mk, Items{items[1], items[0]}, true), Error);
    CHECK_THROWS_AS(tokenize_with_media(r, tok, mk, Items{items[0], items[1], items[1]}, true), Error);
}
