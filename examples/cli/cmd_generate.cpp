// gemma4 generate / gemma4 chat: text generation with streamed output.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "common.h"

namespace gemma4::cli {
namespace {

std::string generate_usage() {
    return std::string(
               "usage: gemma4 generate --model F (--prompt T | --file F) [--mmproj F --image F --audio F ...] [options]\n\n"
               "Generates a reply to the prompt (Gemma 4 chat template) and streams it to stdout.\n"
               "  --prompt T         the user's message\n"
               "  --file F           read the message from a file\n"
               "  --raw              no chat template: continue the prompt text as is (BOS added)\n"
               "  --system S         system prompt\n"
               "  --think            enable the thought channel\n"
               "  -n N, --max-tokens N  new tokens at most (default 256)\n") +
           kModelOptionsHelp + kMediaOptionsHelp + kSessionOptionsHelp + kSamplerOptionsHelp;
}

std::string chat_usage() {
    return std::string(
               "usage: gemma4 chat --model F [--mmproj F --image F --audio F ...] [options]\n\n"
               "Interactive multi-turn chat. Type a message and press enter; /reset starts over, /quit ends.\n"
               "/image F and /audio F attach media to the next message (placed at its <__media__> markers, or\n"
               "before its text); --image/--audio on the command line attach to the first message.\n"
               "  --system S         system prompt\n"
               "  --think            enable the thought channel\n"
               "  -n N, --max-tokens N  new tokens per reply at most (default 1024)\n") +
           kModelOptionsHelp + kMediaOptionsHelp + kSessionOptionsHelp + kSamplerOptionsHelp;
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

// Adds the user's message with its media to the open turn (chat template) or, raw, to the pending input.
// Every file is decoded before anything is added, so a bad file leaves the session as it was.
void add_message(Session& session, const Model& model, const std::string& text, const MediaArgs& media, bool raw) {
    const std::vector<std::string> pieces = split_at_media_markers(text, media.items.size());
    std::vector<std::optional<Image>> images(media.items.size());
    std::vector<std::optional<Audio>> clips(media.items.size());
    for (size_t i = 0; i < media.items.size(); ++i) {
        if (media.items[i].is_image) images[i] = Image::from_file(media.items[i].path);
        else clips[i] = Audio::from_file(media.items[i].path);
    }
    for (size_t i = 0; i < pieces.size(); ++i) {
        if (raw) {
            if (!pieces[i].empty() || i == 0) session.add_raw_text(pieces[i], /*parse_special=*/true, /*add_bos=*/i == 0);
        } else if (!pieces[i].empty()) {
            session.add_text(pieces[i]);
        }
        if (i == media.items.size()) break;
        if (raw) {
            session.add_raw_media(images[i] ? model.encode_image(*images[i], media.image) : model.encode_audio(*clips[i]));
        } else if (images[i]) {
            session.add_image(*images[i], media.image);
        } else {
            session.add_audio(*clips[i]);
        }
    }
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
    const MediaArgs media = media_args(args);
    Sampler sampler = sampler_from(args);
    SessionOptions so = session_options(args);
    Model model = open_model(args);
    args.finish();

    Session session = model.new_session(so);
    add_message(session, model, prompt, media, raw);
    const Generation g = raw ? session.continue_raw(sampler, {.max_new_tokens = n}, print_piece)
                             : session.generate(sampler, {.max_new_tokens = n}, print_piece);
    std::fputc('\n', stdout);
    if (!quiet) print_stats(g);
    return 0;
}

int run_chat(Args& args) {
    const bool quiet = args.flag("--quiet");
    const int n = max_tokens(args, 1024);
    MediaArgs media = media_args(args);  // attached to the first message
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
            media.items.clear();
            std::fputs("(conversation reset)\n", stdout);
            continue;
        }
        if (line.rfind("/image ", 0) == 0 || line.rfind("/audio ", 0) == 0) {
            media.items.push_back({line[1] == 'i', line.substr(7)});
            std::fputs(fmt::format("({} attached to the next message)\n", line.substr(7)).c_str(), stdout);
            continue;
        }
        if (line.empty()) continue;
        try {
            MediaArgs turn = media;  // attached to this message only, whether it succeeds or not
            media.items.clear();
            add_message(session, model, line, turn, /*raw=*/false);
            Generation g = session.generate(sampler, {.max_new_tokens = n}, print_piece);
            std::fputc('\n', stdout);
            if (!quiet) print_stats(g);
            if (g.stop == StopReason::context_full) {
                std::fputs("(the context is full: /reset to start over)\n", stdout);
            }
        } catch (const Error& e) {
            // Bad input (a media file included) is reported and the conversation goes on.
            if (e.code() != ErrorCode::context_overflow && e.code() != ErrorCode::invalid_argument &&
                e.code() != ErrorCode::invalid_file) {
                throw;
            }
            std::fprintf(stderr, "error: %s\n", e.what());
        } catch (const UsageError& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
        }
    }
    return 0;
}

const bool kGenerate = register_command({"generate", "generate a reply to a prompt, streamed", kGenerateUsage.c_str(), run_generate});
const bool kChat = register_command({"chat", "interactive multi-turn chat", kChatUsage.c_str(), run_chat});

}  // namespace
}  // namespace gemma4::cli
