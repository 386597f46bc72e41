// gemma4 logits: all-position logits as .npy, in the format of the oracle's gemma4-dump.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common.h"
#include "util/npy.h"

namespace gemma4::cli {
namespace {

std::string logits_usage() {
    return std::string(
               "usage: gemma4 logits --model F (--prompt T | --tokens 2,105,... | --tokens-file F) --out DIR [options]\n\n"
               "Evaluates the prompt and writes DIR/tokens.npy (int32 [n]; -1 at image/audio positions) and\n"
               "DIR/logits.npy (float32 [n, vocab]), and DIR/media_K.npy (float32 [n_tokens, d_model], the projector\n"
               "output of the K-th --image/--audio), like the oracle's gemma4-dump, so ../shared/oracle/compare.py\n"
               "can score one against the other.\n"
               "  --prompt T         text; BOS is added and special-token texts are parsed (as gemma4-dump does);\n"
               "                     with media, the text between <__media__> markers is tokenized piece by piece\n"
               "                     and each medium becomes <|image> ... <image|> or <|audio> ... <audio|>\n"
               "  --no-bos           do not add BOS to --prompt\n"
               "  --tokens IDS       comma-separated token ids, used as given\n"
               "  --tokens-file F    ids separated by commas or whitespace\n"
               "  --out DIR          output folder (created)\n"
               "  --last             only the last position's logits ([1, vocab])\n") +
           kModelOptionsHelp + kMediaOptionsHelp + kSessionOptionsHelp;
}
const std::string kLogitsUsage = logits_usage();

std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    std::string tok;
    auto flush = [&] {
        if (tok.empty()) return;
        try {
            size_t used = 0;
            long v = std::stol(tok, &used);
            if (used != tok.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(tok);
            ids.push_back(static_cast<int32_t>(v));
        } catch (const std::exception&) {
            throw UsageError(fmt::format("'{}' is not a token id", tok));
        }
        tok.clear();
    };
    for (char c : text) {
        if (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '[' || c == ']') flush();
        else tok += c;
    }
    flush();
    return ids;
}

int run_logits(Args& args) {
    const std::string out_dir = args.required("--out");
    const bool no_bos = args.flag("--no-bos");
    const bool last_only = args.flag("--last");
    auto prompt = args.value("--prompt");
    auto tokens = args.value("--tokens");
    auto tokens_file = args.value("--tokens-file");
    if (!!prompt + !!tokens + !!tokens_file != 1) throw UsageError("give exactly one of --prompt, --tokens, --tokens-file");
    const MediaArgs media = media_args(args);
    if (!media.items.empty() && !prompt) throw UsageError("--image/--audio need --prompt (not --tokens or --tokens-file)");
    SessionOptions so = session_options(args);
    Model model = open_model(args);
    args.finish();

    std::vector<int32_t> ids;
    if (prompt && !media.items.empty()) {
        // As gemma4-dump (llama.cpp's mtmd_tokenize): each text piece tokenized on its own, BOS first.
        const std::vector<std::string> pieces = split_at_media_markers(*prompt, media.items.size());
        std::vector<MediaEmbeddings> encoded;
        for (const MediaInput& item : media.items) encoded.push_back(encode_media(model, item, media.image));
        size_t total = no_bos ? 0 : 1;
        std::vector<std::vector<int32_t>> text(pieces.size());
        for (size_t i = 0; i < pieces.size(); ++i) {
            text[i] = model.tokenize(pieces[i], /*add_bos=*/false, /*parse_special=*/true);
            total += text[i].size() + (i < encoded.size() ? encoded[i].n_tokens + 2 : 0);
        }
        if (static_cast<int>(total) > so.context_tokens) so.context_tokens = static_cast<int>(total);
        Session session = model.new_session(so);
        if (!no_bos) session.add_raw_text("", /*parse_special=*/true, /*add_bos=*/true);
        for (size_t i = 0; i < pieces.size(); ++i) {
            session.add_tokens(text[i]);
            if (i < encoded.size()) session.add_raw_media(encoded[i]);
        }
        const std::vector<float> logits = session.evaluate(!last_only);
        std::filesystem::create_directories(out_dir);
        const int64_t vocab = model.info().vocab_size;
        const std::vector<int32_t>& all_ids = session.tokens();
        detail::write_npy(out_dir + "/tokens.npy", all_ids.data(), {static_cast<int64_t>(all_ids.size())});
        detail::write_npy(out_dir + "/logits.npy", logits.data(), {static_cast<int64_t>(logits.size()) / vocab, vocab});
        for (size_t k = 0; k < encoded.size(); ++k) {
            detail::write_npy(fmt::format("{}/media_{}.npy", out_dir, k), encoded[k].values.data(),
                              {encoded[k].n_tokens, encoded[k].d_model});
        }
        std::printf("%s\n", fmt::format("wrote {}/tokens.npy [{}], logits.npy [{}, {}] and {} media_K.npy", out_dir, all_ids.size(),
                                        logits.size() / vocab, vocab, encoded.size()).c_str());
        return 0;
    }
    if (prompt) {
        ids = model.tokenize(*prompt, !no_bos, /*parse_special=*/true);
    } else if (tokens) {
        ids = parse_ids(*tokens);
    } else {
        std::ifstream in(*tokens_file);
        if (!in) throw Error(ErrorCode::invalid_argument, fmt::format("cannot read '{}'", *tokens_file));
        std::stringstream ss;
        ss << in.rdbuf();
        ids = parse_ids(ss.str());
    }
    if (ids.empty()) throw UsageError("the prompt has no tokens");
    if (static_cast<int>(ids.size()) > so.context_tokens) so.context_tokens = static_cast<int>(ids.size());

    Session session = model.new_session(so);
    session.add_tokens(ids);
    const std::vector<float> logits = session.evaluate(!last_only);
    std::filesystem::create_directories(out_dir);
    const int64_t vocab = model.info().vocab_size;
    detail::write_npy(out_dir + "/tokens.npy", ids.data(), {static_cast<int64_t>(ids.size())});
    detail::write_npy(out_dir + "/logits.npy", logits.data(), {static_cast<int64_t>(logits.size()) / vocab, vocab});
    std::printf("%s\n", fmt::format("wrote {}/tokens.npy [{}] and logits.npy [{}, {}]", out_dir, ids.size(),
                                    logits.size() / vocab, vocab).c_str());
    return 0;
}

const bool kRegistered = register_command({"logits", "write all-position logits as .npy (like gemma4-dump)", kLogitsUsage.c_str(), run_logits});

}  // namespace
}  // namespace gemma4::cli
