// gemma4 generate / gemma4 chat: text generation with streamed output.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "common.h"

namespace gemma4::cli {
namespace {

std::string generate_usage() {
    return std::string(
               "usage: gemma4 generate --model F (--prompt T | --file F) [options]\n\n"
               "Generates a reply to the prompt (Gemma 4 chat template) and streams it to stdout.\n"
               "  --prompt T         the user's message\n"
               "  --file F           read the message from a file\n"
               "  --raw              no chat template: continue the prompt text as is (BOS added)\n"
               "  --system S         system prompt\n"
               "  --think            enable the thought channel\n"
               "  -n N, --max-tokens N  new tokens at most (default 256)\n") +
           kModelOptionsHelp + kSessionOptionsHelp + kSamplerOptionsHelp;
}

std::string chat_usage() {
    return std::string(
               "usage: gemma4 chat --model F [options]\n\n"
               "Interactive multi-turn chat. Type a message and press enter; /reset starts over, /quit ends.\n"
               "  --system S         system prompt\n"
               "  --think            enable the thought channel\n"
               "  -n N, --max-tokens N  new tokens per reply at most (default 1024)\n") +
           kModelOptionsHelp + kSessionOptionsHelp + kSamplerOptionsHelp;
}

const std::string kGenerateUsage = generate_usage();
const std::string kChatUsage = chat_usage();

int max_tokens(Args& args, int fallback) {
    auto n = args.value("-n");
    return n ? static_cast<int>(std::stoi(*n)) : static_cast<int>(args.integer("--max-tokens", fallback));
}

void print_stats(const Generation& g) {
    std::fprintf(stderr, "%s\n",
                 fmt::format("[{}: {} prompt tokens at {:.1f} tok/s, {} new tokens at {:.1f} tok/s, first token after {:.0f} ms]",
                             to_string(g.stop), g.stats.prompt_tokens, g.stats.prefill_tok_s, g.stats.new_tokens,
                             g.stats.decode_tok_s, g.stats.time_to_first_token_ms).c_str());
}

Stream print_piece(std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return Stream::more;
}

int run_generate(Args& args) {
    const bool quiet = args.flag("--quiet");
    std::string prompt;
    if (auto p = args.value("--prompt")) {
        prompt = *p;
    } else if (auto f = args.value("--file")) {
        std::ifstream in(*f, std::ios::binary);
        if (!in) throw Error(ErrorCode::invalid_argument, fmt::format("cannot read prompt file '{}'", *f));
        std::stringstream ss;
        ss << in.rdbuf();
        prompt = ss.str();
    } else {
        throw UsageError("give --prompt or --file");
    }
    const bool raw = args.flag("--raw");
    const int n = max_tokens(args, 256);
    Sampler sampler = sampler_from(args);
    SessionOptions so = session_options(args);
    Model model = open_model(args);
    args.finish();

    Session session = model.new_session(so);
    Generation g;
    if (raw) {
        session.add_raw_text(prompt, /*parse_special=*/true, /*add_bos=*/true);
        g = session.continue_raw(sampler, {.max_new_tokens = n}, print_piece);
    } else {
        session.add_text(prompt);
        g = session.generate(sampler, {.max_new_tokens = n}, print_piece);
    }
    std::fputc('\n', stdout);
    if (!quiet) print_stats(g);
    return 0;
}

int run_chat(Args& args) {
    const bool quiet = args.flag("--quiet");
    const int n = max_tokens(args, 1024);
    Sampler sampler = sampler_from(args);
    SessionOptions so = session_options(args);
    Model model = open_model(args);
    args.finish();

    Session session = model.new_session(so);
    std::string line;
    for (;;) {
        std::fputs("> ", stdout);
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) break;
        if (line == "/quit" || line == "/exit") break;
        if (line == "/reset") {
            session.reset();
            std::fputs("(conversation reset)\n", stdout);
            continue;
        }
        if (line.empty()) continue;
        try {
            session.add_text(line);
            Generation g = session.generate(sampler, {.max_new_tokens = n}, print_piece);
            std::fputc('\n', stdout);
            if (!quiet) print_stats(g);
            if (g.stop == StopReason::context_full) {
                std::fputs("(the context is full: /reset to start over)\n", stdout);
            }
        } catch (const Error& e) {
            if (e.code() != ErrorCode::context_overflow && e.code() != ErrorCode::invalid_argument) throw;
            std::fprintf(stderr, "error: %s\n", e.what());
        }
    }
    return 0;
}

const bool kGenerate = register_command({"generate", "generate a reply to a prompt, streamed", kGenerateUsage.c_str(), run_generate});
const bool kChat = register_command({"chat", "interactive multi-turn chat", kChatUsage.c_str(), run_chat});

}  // namespace
}  // namespace gemma4::cli
