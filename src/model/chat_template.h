// ChatTemplate: renders a Gemma 4 conversation into prompt text, the way the model's Jinja template
// (`tokenizer.chat_template`) does under llama.cpp, without a Jinja engine. Spec: shared/spec/gemma4.md §4.5.
//
// Grammar (tools left out; thinking = the template's enable_thinking):
//
//   <bos>
//   [<|turn>system\n {THINK if thinking} {leading system/developer text, trimmed} <turn|>\n]
//                                     (present if thinking is on or the first message is system/developer)
//   per remaining message:  <|turn>ROLE\n {parts} <turn|>\n
//       ROLE: user | model (for assistant/model) | system (for system and developer: llama.cpp maps
//             developer to system before rendering)
//       text part: trimmed (ASCII whitespace, as llama.cpp's Jinja `trim`); in model messages every
//             `<|channel>...<channel|>` thought is removed first (the template's strip_thinking)
//       image part: IMAGE   audio part: AUDIO
//   [<|turn>model\n  + (if thinking is off) <|channel>thought\n<channel|>]     (generation prompt)
//
// The known Gemma 4 templates differ in three places, so the renderer reads them from the template text:
//   THINK  "<|think|>" (the original release, as in llama.cpp's models/ggml-vocab-gemma-4.gguf) or
//          "<|think|>\n" (the later revision: llama.cpp models/templates/google-gemma-4-31B-it*.jinja)
//   IMAGE  "\n\n<|image|>\n\n" (original) or "<|image|>" (revision); AUDIO is "<|audio|>" in both
//   a model message that directly follows another model message continues the same turn without a new
//          "<|turn>model\n" (google-gemma-4-31B-it.jinja only: `continue_same_model_turn`)
// A template is accepted when it is byte-identical to one of those three, or when it carries every literal
// the grammar above relies on (then support().known is false and the reason says so). Anything else is
// reported as unsupported and render() throws: the renderer does not guess. Tool declarations, tool calls
// and tool responses are not rendered (optional for v1).
//
// Rendered prompts keep the template's own text apart from message content (RenderedPrompt::segments), so
// that content is tokenized without parsing control tokens: a user typing "<turn|>" cannot close a turn.
// Every content segment is bounded by a newline or a special token in the grammar, so tokenizing the
// segments separately gives the same ids as tokenizing the whole text whenever the content holds no
// control-token text (which is what llama.cpp does: it parses specials in the whole prompt).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gemma4 {

class GgufFile;
class Tokenizer;

enum class ChatRole { system, developer, user, model };

/// One piece of message content: text, or the placeholder of one image / one audio clip.
struct ContentPart {
    enum class Kind { text, image, audio };
    Kind kind = Kind::text;
    std::string text;  // Kind::text only

    static ContentPart from_text(std::string text) { return {Kind::text, std::move(text)}; }
    static ContentPart image() { return {Kind::image, {}}; }
    static ContentPart audio() { return {Kind::audio, {}}; }
};

struct ChatMessage {
    ChatRole role = ChatRole::user;
    std::vector<ContentPart> content;

    static ChatMessage text(ChatRole role, std::string text) { return {role, {ContentPart::from_text(std::move(text))}}; }
};

struct ChatRenderOptions {
    bool thinking = false;              ///< the template's enable_thinking
    bool add_generation_prompt = true;  ///< end with the opening of a model turn
};

/// What the renderer understood of a template.
struct TemplateSupport {
    bool supported = false;  ///< render() works
    bool known = false;      ///< byte-identical to a known Gemma 4 template
    std::string name;        ///< which known template, or "" when not known
    std::string reason;      ///< one line: why (un)supported, and the dialect choices made
};

/// Prompt text as pieces: template text (special = true: tokenize with parse_special) and message content
/// (special = false: tokenize without it). Placeholders are template text.
struct RenderedPrompt {
    struct Segment {
        std::string text;
        bool special;
    };
    std::vector<Segment> segments;

    /// All segments concatenated.
    std::string text() const;
    /// Ids: template segments with parse_special, content segments without; BOS comes from the rendered
    /// `<bos>` text, exactly once.
    std::vector<int32_t> tokenize(const Tokenizer& tokenizer) const;
};

/// Immutable; const methods may be called from several threads.
class ChatTemplate {
public:
    /// The built-in grammar with the original release's choices (used when a file has no template).
    ChatTemplate();
    /// Reads `tokenizer.chat_template` (absent: the built-in grammar) and the BOS token text. Never throws
    /// for an unsupported template; check support(). Throws Error(invalid_file) for malformed metadata.
    static ChatTemplate from_gguf(const GgufFile& file);
    /// Analyses Jinja source text. `bos_text` is what the template's bos_token renders as.
    static ChatTemplate from_source(std::string_view source, std::string bos_text = "<bos>");

    const TemplateSupport& support() const { return support_; }

    /// Renders the conversation. Throws Error(unsupported_model) with support().reason when the template is
    /// not supported; Error(invalid_argument) for an empty conversation or media in a leading system message.
    RenderedPrompt render(std::span<const ChatMessage> messages, const ChatRenderOptions& options) const;

private:
    TemplateSupport support_;
    std::string bos_text_ = "<bos>";
    std::string think_ = "<|think|>";
    std::string image_ = "\n\n<|image|>\n\n";
    std::string audio_ = "<|audio|>";
    bool continue_model_turn_ = false;
};

namespace detail {
/// llama.cpp's Jinja `trim`: strips ' ', \t, \n, \v, \f, \r at both ends.
std::string_view chat_trim(std::string_view s);
/// The templates' strip_thinking macro: drops every "<|channel>...<channel|>" span (and an unterminated
/// "<|channel>..." at the end), then trims.
std::string strip_thinking(std::string_view text);
/// 64-bit FNV-1a of the template text (identifies the known templates).
uint64_t template_hash(std::string_view source);
}  // namespace detail

}  // namespace gemma4
