// ChatTemplate implementation: template recognition and the renderer for the grammar in chat_template.h.
#include "model/chat_template.h"

#include <array>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "model/tokenizer.h"

namespace gemma4 {
namespace {

// The Gemma 4 templates this renderer reproduces exactly, by FNV-1a hash of their text (all from the
// llama.cpp source at commit de3ff81, which node-llama-cpp 3.22.1 ships).
struct KnownTemplate {
    uint64_t hash;
    size_t n_bytes;
    const char* name;
};
constexpr std::array<KnownTemplate, 3> kKnownTemplates = {{
    {0xe26fce6b275972dfull, 12045, "gemma-4 original (models/ggml-vocab-gemma-4.gguf)"},
    {0xe5340ed712edbd88ull, 16448, "gemma-4 revised (models/templates/google-gemma-4-31B-it.jinja)"},
    {0x013a78594270bf0full, 12752, "gemma-4 revised, interleaved (models/templates/google-gemma-4-31B-it-interleaved.jinja)"},
}};

// Literals (as written in the Jinja source) that the grammar in chat_template.h relies on.
constexpr std::array<std::string_view, 11> kRequiredLiterals = {
    "bos_token",
    "messages[0]['role'] in ['system', 'developer']",
    "messages[0]['content'] | trim",
    "'<|turn>system\\n'",
    "'model' if message['role'] == 'assistant' else message['role']",
    "'<|turn>' + role + '\\n'",
    "item['text'] | trim",
    "strip_thinking",
    "'<turn|>\\n'",
    "'<|turn>model\\n'",
    "'<|channel>thought\\n<channel|>'",
};
// Dialect literals: the first one found wins (the longer form first, since the shorter is its prefix).
constexpr std::array<std::string_view, 2> kThinkLiterals = {"'<|think|>\\n'", "'<|think|>'"};
constexpr std::array<std::string_view, 2> kThinkTexts = {"<|think|>\n", "<|think|>"};
constexpr std::array<std::string_view, 2> kImageLiterals = {"'\\n\\n<|image|>\\n\\n'", "'<|image|>'"};
constexpr std::array<std::string_view, 2> kImageTexts = {"\n\n<|image|>\n\n", "<|image|>"};
constexpr std::string_view kAudioLiteral = "'<|audio|>'";
constexpr std::string_view kAudioText = "<|audio|>";
constexpr std::string_view kContinueTurnMarker = "continue_same_model_turn";

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;  // FNV-1a 64-bit parameters
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

std::string escape_for_reason(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string_view role_name(ChatRole role) {
    switch (role) {
        case ChatRole::user: return "user";
        case ChatRole::model: return "model";
        case ChatRole::system:
        case ChatRole::developer: return "system";  // llama.cpp maps developer to system
    }
    return "user";
}

}  // namespace

namespace detail {

std::string_view chat_trim(std::string_view s) {
    constexpr std::string_view kSpace = " \t\n\v\f\r";
    const size_t b = s.find_first_not_of(kSpace);
    if (b == std::string_view::npos) return {};
    const size_t e = s.find_last_not_of(kSpace);
    return s.substr(b, e - b + 1);
}

std::string strip_thinking(std::string_view text) {
    constexpr std::string_view kOpen = "<|channel>";
    constexpr std::string_view kClose = "<channel|>";
    std::string out;
    size_t pos = 0;
    while (true) {
        const size_t close = text.find(kClose, pos);
        const std::string_view part = text.substr(pos, close == std::string_view::npos ? std::string_view::npos : close - pos);
        out.append(part.substr(0, part.find(kOpen)));
        if (close == std::string_view::npos) break;
        pos = close + kClose.size();
    }
    return std::string(chat_trim(out));
}

uint64_t template_hash(std::string_view source) {
    uint64_t h = kFnvOffset;
    for (char c : source) {
        h ^= static_cast<uint8_t>(c);
        h *= kFnvPrime;
    }
    return h;
}

}  // namespace detail

std::string RenderedPrompt::text() const {
    std::string out;
    for (const Segment& s : segments) out += s.text;
    return out;
}

std::vector<int32_t> RenderedPrompt::tokenize(const Tokenizer& tokenizer) const {
    std::vector<int32_t> ids;
    for (const Segment& s : segments) {
        const std::vector<int32_t> part = tokenizer.encode(s.text, false, s.special);
        ids.insert(ids.end(), part.begin(), part.end());
    }
    if (ids.empty() || ids.front() != tokenizer.bos_id()) ids.insert(ids.begin(), tokenizer.bos_id());
    return ids;
}

ChatTemplate::ChatTemplate() {
    support_.supported = true;
    support_.reason = "built-in Gemma 4 grammar (original release: think \"<|think|>\", image \"\\n\\n<|image|>\\n\\n\")";
}

ChatTemplate ChatTemplate::from_gguf(const GgufFile& file) {
    std::string bos_text = "<bos>";
    if (file.has("tokenizer.ggml.bos_token_id") && file.has("tokenizer.ggml.tokens")) {
        const auto& tokens = file.get_string_array("tokenizer.ggml.tokens");
        const int64_t bos = file.get<int64_t>("tokenizer.ggml.bos_token_id");
        if (bos < 0 || bos >= static_cast<int64_t>(tokens.size())) {
            file.fail_key("tokenizer.ggml.bos_token_id", fmt::format("{} is outside the vocabulary", bos));
        }
        bos_text = std::string(tokens[static_cast<size_t>(bos)]);
    }
    if (!file.has("tokenizer.chat_template")) {
        ChatTemplate t;
        t.bos_text_ = bos_text;
        t.support_.reason = "no tokenizer.chat_template in the file; " + t.support_.reason;
        return t;
    }
    return from_source(file.get<std::string_view>("tokenizer.chat_template"), bos_text);
}

ChatTemplate ChatTemplate::from_source(std::string_view source, std::string bos_text) {
    ChatTemplate t;
    t.bos_text_ = std::move(bos_text);
    TemplateSupport& s = t.support_;
    s = {};

    const uint64_t hash = detail::template_hash(source);
    for (const KnownTemplate& k : kKnownTemplates) {
        if (k.hash == hash && k.n_bytes == source.size()) {
            s.known = true;
            s.name = k.name;
        }
    }

    std::vector<std::string_view> missing;
    for (std::string_view lit : kRequiredLiterals) {
        if (source.find(lit) == std::string_view::npos) missing.push_back(lit);
    }
    int think = -1, image = -1;
    for (size_t i = 0; i < kThinkLiterals.size() && think < 0; ++i) {
        if (source.find(kThinkLiterals[i]) != std::string_view::npos) think = static_cast<int>(i);
    }
    for (size_t i = 0; i < kImageLiterals.size() && image < 0; ++i) {
        if (source.find(kImageLiterals[i]) != std::string_view::npos) image = static_cast<int>(i);
    }
    if (think < 0) missing.push_back(kThinkLiterals[1]);
    if (image < 0) missing.push_back(kImageLiterals[1]);
    if (source.find(kAudioLiteral) == std::string_view::npos) missing.push_back(kAudioLiteral);

    if (!missing.empty()) {
        std::string list;
        for (std::string_view m : missing) list += fmt::format("{}{}", list.empty() ? "" : ", ", m);
        s.reason = fmt::format("not a Gemma 4 chat template this renderer understands (hash {:016x}, {} bytes): "
                               "it lacks {}",
                               hash, source.size(), list);
        return t;
    }
    t.think_ = kThinkTexts[think];
    t.image_ = kImageTexts[image];
    t.audio_ = kAudioText;
    t.continue_model_turn_ = source.find(kContinueTurnMarker) != std::string_view::npos;
    s.supported = true;
    const std::string dialect = fmt::format("think \"{}\", image \"{}\", audio \"{}\", consecutive model messages {}",
                                            escape_for_reason(t.think_), escape_for_reason(t.image_), t.audio_,
                                            t.continue_model_turn_ ? "share one turn" : "are separate turns");
    if (s.known) {
        s.reason = fmt::format("identical to the known {}; {}", s.name, dialect);
    } else {
        s.reason = fmt::format("not byte-identical to a known Gemma 4 template (hash {:016x}, {} bytes) but has "
                               "all the literals of the core grammar; rendering {} (anything else the template "
                               "does differently, and tools, is not reproduced)",
                               hash, source.size(), dialect);
    }
    return t;
}

RenderedPrompt ChatTemplate::render(std::span<const ChatMessage> messages, const ChatRenderOptions& options) const {
    if (!support_.supported) throw Error(ErrorCode::unsupported_model, "chat template: " + support_.reason);
    if (messages.empty()) throw Error(ErrorCode::invalid_argument, "chat template: the conversation has no messages");

    RenderedPrompt out;
    const auto special = [&](std::string_view text) {
        if (text.empty()) return;
        if (!out.segments.empty() && out.segments.back().special) {
            out.segments.back().text += text;
        } else {
            out.segments.push_back({std::string(text), true});
        }
    };
    const auto content = [&](std::string_view text) {
        if (!text.empty()) out.segments.push_back({std::string(text), false});
    };

    special(bos_text_);
    const bool leading_system = messages[0].role == ChatRole::system || messages[0].role == ChatRole::developer;
    if (options.thinking || leading_system) {
        special("<|turn>system\n");
        if (options.thinking) special(think_);
        if (leading_system) {
            std::string text;
            for (const ContentPart& p : messages[0].content) {
                if (p.kind != ContentPart::Kind::text) {
                    throw Error(ErrorCode::invalid_argument,
                                "chat template: the leading system message may hold text only (no image or audio)");
                }
                text += p.text;
            }
            content(detail::chat_trim(text));
        }
        special("<turn|>\n");
    }

    const size_t first = leading_system ? 1 : 0;
    for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        const bool continues = continue_model_turn_ && m.role == ChatRole::model && i > first &&
                               messages[i - 1].role == ChatRole::model;
        if (!continues) {
            special("<|turn>");
            special(role_name(m.role));
            special("\n");
        }
        for (const ContentPart& p : m.content) {
            switch (p.kind) {
                case ContentPart::Kind::text:
                    if (m.role == ChatRole::model) {
                        content(detail::strip_thinking(p.text));
                    } else {
                        content(detail::chat_trim(p.text));
                    }
                    break;
                case ContentPart::Kind::image: special(image_); break;
                case ContentPart::Kind::audio: special(audio_); break;
            }
        }
        special("<turn|>\n");
    }

    if (options.add_generation_prompt) {
        special("<|turn>model\n");
        if (!options.thinking) special("<|channel>thought\n<channel|>");
    }
    return out;
}

}  // namespace gemma4
