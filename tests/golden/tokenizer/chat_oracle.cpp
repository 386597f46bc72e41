// chat_oracle: renders Gemma 4 chat prompts with llama.cpp's own chat pipeline (common_chat_templates_apply,
// its Jinja engine and its Gemma 4 handler), so that tests/unit/chat_template_test.cpp can compare our
// renderer against it. Used only by make_tokenizer_golden.py when goldens are regenerated; it is not part
// of the gemma4 build. It links against the static libraries of the oracle build (see the script).
//
//   chat_oracle VOCAB.gguf CASES.json > RENDERED.json
//
// CASES.json: [{"template_file": "" | PATH, "enable_thinking": bool, "add_generation_prompt": bool,
//               "messages": [{"role": R, "parts": [{"type": "text", "text": T} | {"type": "image"} |
//                                                   {"type": "audio"}]}]}]
// A message with exactly one text part is passed as string content (what a chat client sends); any other
// message as typed content parts. The model is loaded vocab-only, exactly as llama-server would load it,
// so add_bos handling (the leading "<bos>" is cut from the text and added as a token instead) is llama.cpp's.
// Output: a JSON array of the rendered prompt strings, in order.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "chat.h"
#include "llama.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: chat_oracle VOCAB.gguf CASES.json\n");
        return 2;
    }
    llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        std::fprintf(stderr, "chat_oracle: cannot load %s\n", argv[1]);
        return 1;
    }
    std::ifstream in(argv[2]);
    const nlohmann::ordered_json cases = nlohmann::ordered_json::parse(in);
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& c : cases) {
        std::string override_src;
        const std::string file = c.value("template_file", "");
        if (!file.empty()) {
            std::ifstream t(file, std::ios::binary);
            std::stringstream ss;
            ss << t.rdbuf();
            override_src = ss.str();
        }
        auto tmpls = common_chat_templates_init(model, override_src);
        common_chat_templates_inputs inputs;
        inputs.enable_thinking = c.at("enable_thinking").get<bool>();
        inputs.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
        for (const auto& m : c.at("messages")) {
            common_chat_msg msg;
            msg.role = m.at("role").get<std::string>();
            const auto& parts = m.at("parts");
            if (parts.size() == 1 && parts[0].at("type") == "text") {
                msg.content = parts[0].at("text").get<std::string>();
            } else {
                for (const auto& p : parts) {
                    common_chat_msg_content_part part;
                    part.type = p.at("type").get<std::string>();
                    part.text = p.value("text", "");
                    msg.content_parts.push_back(part);
                }
            }
            inputs.messages.push_back(msg);
        }
        out.push_back(common_chat_templates_apply(tmpls.get(), inputs).prompt);
    }
    std::cout << out.dump() << "\n";
    llama_model_free(model);
    return 0;
}
