// ChatTemplate: the grammar of shared/spec/gemma4.md §4.5 built by hand, template recognition, and parity
// with llama.cpp: tests/golden/tokenizer/chat_cases.txt holds conversations rendered by llama.cpp's own chat
// pipeline (Jinja engine + Gemma 4 handler) and the ids llama-tokenize gives the rendered text.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "gemma4/error.h"
#include "golden/tokenizer/tokenizer_test_util.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

using gemma4::ChatMessage;
using gemma4::ChatRenderOptions;
using gemma4::ChatRole;
using gemma4::ChatTemplate;
using gemma4::ContentPart;
using gemma4::ErrorCode;
using namespace gemma4::test;
using Ids = std::vector<int32_t>;

namespace {

// Every literal the renderer needs, in a stand-in "template" (not Jinja that would run; only scanned).
std::string marker_template(bool revised) {
    std::string s =
        "{{ bos_token }} messages[0]['role'] in ['system', 'developer'] messages[0]['content'] | trim "
        "'<|turn>system\\n' 'model' if message['role'] == 'assistant' else message['role'] "
        "'<|turn>' + role + '\\n' item['text'] | trim strip_thinking '<turn|>\\n' '<|turn>model\\n' "
        "'<|channel>thought\\n<channel|>' '<|audio|>' ";
    s += revised ? "'<|think|>\\n' '<|image|>' continue_same_model_turn" : "'<|think|>' '\\n\\n<|image|>\\n\\n'";
    return s;
}

std::vector<ChatMessage> sample_conversation() {
    return {
        ChatMessage::text(ChatRole::system, "  Sys \n"),
        {ChatRole::user, {ContentPart::from_text("Hi "), ContentPart::image()}},
        ChatMessage::text(ChatRole::model, "<|channel>thought\nx<channel|>Ans"),
        {ChatRole::user, {ContentPart::audio(), ContentPart::from_text("Q")}},
    };
}

std::string unescape(std::string_view s) {
    if (s.size() < 2 || s.front() != '"' || s.back() != '"') throw std::runtime_error("bad string literal");
    std::string out;
    for (size_t i = 1; i + 1 < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        const char c = s[++i];
        switch (c) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'x': out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)); i += 2; break;
            default: out += c;
        }
    }
    return out;
}

struct ChatCase {
    std::string name, template_name;
    ChatRenderOptions options;
    std::vector<ChatMessage> messages;
    std::string rendered;
    Ids ids;
};

std::vector<ChatCase> read_chat_cases(const std::string& path) {
    std::istringstream in(read_file(path));
    std::vector<ChatCase> cases;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const size_t sp = line.find(' ');
        const std::string key = line.substr(0, sp);
        const std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
        if (key == "case") {
            cases.emplace_back();
            cases.back().name = rest;
            continue;
        }
        ChatCase& c = cases.back();
        if (key == "template") {
            c.template_name = rest;
        } else if (key == "thinking") {
            c.options.thinking = rest == "1";
        } else if (key == "generation_prompt") {
            c.options.add_generation_prompt = rest == "1";
        } else if (key == "message") {
            const ChatRole role = rest == "system" ? ChatRole::system : rest == "developer" ? ChatRole::developer
                                : rest == "model"  ? ChatRole::model  : ChatRole::user;
            c.messages.push_back({role, {}});
        } else if (key == "text") {
            c.messages.back().content.push_back(ContentPart::from_text(unescape(rest)));
        } else if (key == "image") {
            c.messages.back().content.push_back(ContentPart::image());
        } else if (key == "audio") {
            c.messages.back().content.push_back(ContentPart::audio());
        } else if (key == "rendered") {
            c.rendered = unescape(rest);
        } else if (key == "ids") {
            std::istringstream ids(rest);
            int32_t id;
            while (ids >> id) c.ids.push_back(id);
        }
    }
    return cases;
}

}  // namespace

TEST_CASE("chat template: helpers trim and strip_thinking", "[unit][tokenizer]") {
    using gemma4::detail::chat_trim;
    using gemma4::detail::strip_thinking;
    CHECK(chat_trim(" \t\n\v\f\rx y\r\n ") == "x y");
    CHECK(chat_trim("\xC2\xA0x\xC2\xA0") == "\xC2\xA0x\xC2\xA0");  // llama.cpp's trim is ASCII only
    CHECK(chat_trim("   ").empty());
    CHECK(strip_thinking("<|channel>thought\nhm<channel|>Answer ") == "Answer");
    CHECK(strip_thinking("A<|channel>x<channel|>B<|channel>y<channel|>C") == "ABC");
    CHECK(strip_thinking("pre <|channel>never closed") == "pre");
    CHECK(strip_thinking("stray<channel|> close") == "stray close");
    CHECK(strip_thinking("plain") == "plain");
}

TEST_CASE("chat template: the grammar of the spec, both dialects", "[unit][tokenizer]") {
    const auto msgs = sample_conversation();
    SECTION("original release (the real vocabulary's template)") {
        const ChatTemplate t = ChatTemplate::from_source(marker_template(false));
        REQUIRE(t.support().supported);
        CHECK_FALSE(t.support().known);
        CHECK(t.render(msgs, {.thinking = false}).text() ==
              "<bos><|turn>system\nSys<turn|>\n"
              "<|turn>user\nHi\n\n<|image|>\n\n<turn|>\n"
              "<|turn>model\nAns<turn|>\n"
              "<|turn>user\n<|audio|>Q<turn|>\n"
              "<|turn>model\n<|channel>thought\n<channel|>");
        CHECK(t.render(msgs, {.thinking = true}).text() ==
              "<bos><|turn>system\n<|think|>Sys<turn|>\n"
              "<|turn>user\nHi\n\n<|image|>\n\n<turn|>\n"
              "<|turn>model\nAns<turn|>\n"
              "<|turn>user\n<|audio|>Q<turn|>\n"
              "<|turn>model\n");
        // the default-constructed (built-in) grammar is this dialect
        CHECK(ChatTemplate().render(msgs, {}).text() == t.render(msgs, {}).text());
    }
    SECTION("revised (google-gemma-4-31B-it.jinja)") {
        const ChatTemplate t = ChatTemplate::from_source(marker_template(true));
        REQUIRE(t.support().supported);
        CHECK(t.render(msgs, {.thinking = true, .add_generation_prompt = false}).text() ==
              "<bos><|turn>system\n<|think|>\nSys<turn|>\n"
              "<|turn>user\nHi<|image|><turn|>\n"
              "<|turn>model\nAns<turn|>\n"
              "<|turn>user\n<|audio|>Q<turn|>\n");
        // a model message right after another continues the same turn
        const std::vector<ChatMessage> two = {ChatMessage::text(ChatRole::user, "q"), ChatMessage::text(ChatRole::model, "a"),
                                              ChatMessage::text(ChatRole::model, "b")};
        CHECK(t.render(two, {.add_generation_prompt = false}).text() ==
              "<bos><|turn>user\nq<turn|>\n<|turn>model\na<turn|>\nb<turn|>\n");
    }
    SECTION("no system turn without a system message or thinking; developer is system") {
        const ChatTemplate t;
        CHECK(t.render(std::vector{ChatMessage::text(ChatRole::user, "x")}, {}).text() ==
              "<bos><|turn>user\nx<turn|>\n<|turn>model\n<|channel>thought\n<channel|>");
        CHECK(t.render(std::vector{ChatMessage::text(ChatRole::developer, "d"), ChatMessage::text(ChatRole::user, "x"),
                                   ChatMessage::text(ChatRole::developer, "e")},
                       {.add_generation_prompt = false})
                  .text() == "<bos><|turn>system\nd<turn|>\n<|turn>user\nx<turn|>\n<|turn>system\ne<turn|>\n");
    }
}

TEST_CASE("chat template: content is kept apart from template text", "[unit][tokenizer]") {
    const ChatTemplate t;
    const auto r = t.render(std::vector{ChatMessage::text(ChatRole::user, " <turn|> hi ")}, {});
    REQUIRE(r.segments.size() == 3);
    CHECK(r.segments[0].special);
    CHECK(r.segments[0].text == "<bos><|turn>user\n");
    CHECK_FALSE(r.segments[1].special);
    CHECK(r.segments[1].text == "<turn|> hi");
    CHECK(r.segments[2].special);
    const gemma4::Tokenizer tok = gemma4::Tokenizer::from_gguf(mini_vocab({"a"}, {}).build());
    const Ids safe = r.tokenize(tok);
    const Ids whole = tok.encode(r.text(), true, true);
    const auto count = [](const Ids& ids, int32_t id) { return std::count(ids.begin(), ids.end(), id); };
    constexpr int32_t kTurnEnd = 6;
    CHECK(count(whole, kTurnEnd) == 2);  // llama.cpp parses the user's "<turn|>" as the control token
    CHECK(count(safe, kTurnEnd) == 1);   // the engine does not
    CHECK(safe.front() == tok.bos_id());
    CHECK(count(safe, tok.bos_id()) == 1);
}

TEST_CASE("chat template: recognising templates", "[unit][tokenizer]") {
    SECTION("unsupported templates are reported, never guessed") {
        const ChatTemplate t = ChatTemplate::from_source(
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}");
        CHECK_FALSE(t.support().supported);
        CHECK(t.support().reason.find("lacks") != std::string::npos);
        try {
            t.render(sample_conversation(), {});
            FAIL("render of an unsupported template did not throw");
        } catch (const gemma4::Error& e) {
            CHECK(e.code() == ErrorCode::unsupported_model);
        }
    }
    SECTION("a file without a template uses the built-in grammar") {
        const auto file = mini_vocab({"a"}, {}).build();
        const ChatTemplate t = ChatTemplate::from_gguf(file);
        CHECK(t.support().supported);
        CHECK_FALSE(t.support().known);
        CHECK(t.support().reason.find("no tokenizer.chat_template") != std::string::npos);
    }
    SECTION("the real vocabulary's template and llama.cpp's revised ones are known") {
        const RealVocab* v = real_vocab();
        if (!v) {
            WARN(kNoVocabMessage);
            return;
        }
        const ChatTemplate t = ChatTemplate::from_gguf(v->file);
        CHECK(t.support().supported);
        CHECK(t.support().known);
        CHECK(t.support().name.find("original") != std::string::npos);
        const std::string source = std::string(v->file.get<std::string_view>("tokenizer.chat_template"));
        const ChatTemplate edited = ChatTemplate::from_source(source + "{# an edit #}");
        CHECK(edited.support().supported);
        CHECK_FALSE(edited.support().known);
        const std::string dir = std::filesystem::path(real_vocab_path()).parent_path().string();
        for (const char* name : {"google-gemma-4-31B-it.jinja", "google-gemma-4-31B-it-interleaved.jinja"}) {
            const std::string path = dir + "/" + name;
            if (!std::filesystem::exists(path)) {
                WARN(path << " missing (scripts/fetch-vocab.sh puts it there)");
                continue;
            }
            const ChatTemplate r = ChatTemplate::from_source(read_file(path));
            CHECK(r.support().known);
            CHECK(r.support().name.find("revised") != std::string::npos);
        }
    }
}

TEST_CASE("chat template: bad conversations throw invalid_argument", "[unit][tokenizer]") {
    const ChatTemplate t;
    const auto code_of = [&](const std::vector<ChatMessage>& m) {
        try {
            t.render(m, {});
        } catch (const gemma4::Error& e) {
            return e.code();
        }
        FAIL("no gemma4::Error thrown");
        return ErrorCode::invalid_file;
    };
    CHECK(code_of({}) == ErrorCode::invalid_argument);
    CHECK(code_of({{ChatRole::system, {ContentPart::image()}}, ChatMessage::text(ChatRole::user, "x")}) ==
          ErrorCode::invalid_argument);
}

TEST_CASE("chat template: rendered prompts identical to llama.cpp, text and ids", "[unit][tokenizer]") {
    const RealVocab* v = real_vocab();
    if (!v) {
        WARN(kNoVocabMessage);
        return;
    }
    const std::vector<ChatCase> cases = read_chat_cases(tokenizer_golden_dir() + "/chat_cases.txt");
    REQUIRE(cases.size() >= 30);
    const ChatTemplate original = ChatTemplate::from_gguf(v->file);
    const std::string revised_path =
        std::filesystem::path(real_vocab_path()).parent_path().string() + "/google-gemma-4-31B-it.jinja";
    const bool have_revised = std::filesystem::exists(revised_path);
    const ChatTemplate revised = have_revised ? ChatTemplate::from_source(read_file(revised_path)) : ChatTemplate();
    if (!have_revised) WARN(revised_path << " missing: the revised-template cases are skipped");
    int compared = 0;
    for (const ChatCase& c : cases) {
        if (c.template_name == "revised" && !have_revised) continue;
        CAPTURE(c.name);
        const ChatTemplate& t = c.template_name == "revised" ? revised : original;
        const gemma4::RenderedPrompt r = t.render(c.messages, c.options);
        // llama.cpp cuts the template's leading "<bos>" and adds the BOS token when tokenizing
        CHECK(r.text() == "<bos>" + c.rendered);
        CHECK(v->tokenizer.encode(r.text(), true, true) == c.ids);
        if (c.name.find("special-text-in-content") == std::string::npos) {
            CHECK(r.tokenize(v->tokenizer) == c.ids);
        } else {
            CHECK(r.tokenize(v->tokenizer) != c.ids);  // the user's "<turn|>", "<eos>" stay text
        }
        ++compared;
    }
    WARN("chat: " << compared << " rendered prompts compared with llama.cpp");
}
