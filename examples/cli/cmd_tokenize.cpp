// gemma4 tokenize / detokenize: the Gemma 4 tokenizer of a GGUF file on the command line. Only the
// metadata is read (no weights), so a vocabulary-only GGUF works too.
#include <climits>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "cli.h"
#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "model/tokenizer.h"

namespace gemma4::cli {
namespace {

constexpr const char* kTokenizeUsage =
    "usage: gemma4 tokenize --model F (--text T | --file F) [--no-bos] [--no-special]\n\n"
    "Prints the token ids of the text (or of the file's bytes, verbatim) separated by spaces, on one line.\n"
    "  --no-bos      do not put <bos> first (by default it is added, once)\n"
    "  --no-special  do not parse control-token texts such as <turn|> (user-defined ones like <|channel>\n"
    "                are always parsed); use it for untrusted text\n";

constexpr const char* kDetokenizeUsage =
    "usage: gemma4 detokenize --model F --ids \"ID ID ...\" [--special]\n\n"
    "Prints the text of the token ids (separated by spaces and/or commas; brackets are ignored) exactly,\n"
    "with no newline added. Control tokens such as <bos> are left out unless --special is given.\n";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::invalid_argument, fmt::format("cannot open '{}'", path));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<int32_t> parse_ids(const std::string& s) {
    std::vector<int32_t> ids;
    size_t i = 0;
    const auto is_sep = [](char c) { return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']'; };
    while (i < s.size()) {
        if (is_sep(s[i])) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < s.size() && !is_sep(s[j])) ++j;
        const std::string word = s.substr(i, j - i);
        try {
            size_t used = 0;
            const long long v = std::stoll(word, &used);
            if (used != word.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument("bad id");
            ids.push_back(static_cast<int32_t>(v));
        } catch (const std::exception&) {
            throw UsageError(fmt::format("--ids: '{}' is not a token id", word));
        }
        i = j;
    }
    return ids;
}

int run_tokenize(Args& args) {
    const std::string model = args.required("--model");
    const auto text = args.value("--text");
    const auto file = args.value("--file");
    const bool no_bos = args.flag("--no-bos");
    const bool no_special = args.flag("--no-special");
    args.finish();
    if (text.has_value() == file.has_value()) throw UsageError("give exactly one of --text and --file");
    const std::string input = text ? *text : read_file(*file);
    const Tokenizer tokenizer = Tokenizer::from_gguf(GgufFile::open(model));
    const std::vector<int32_t> ids = tokenizer.encode(input, !no_bos, !no_special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += fmt::format("{}{}", i ? " " : "", ids[i]);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    return 0;
}

int run_detokenize(Args& args) {
    const std::string model = args.required("--model");
    const std::vector<int32_t> ids = parse_ids(args.required("--ids"));
    const bool special = args.flag("--special");
    args.finish();
    const Tokenizer tokenizer = Tokenizer::from_gguf(GgufFile::open(model));
    const std::string text = tokenizer.decode(ids, special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

const bool kRegisteredTokenize =
    register_command({"tokenize", "print the token ids of a text (Gemma 4 tokenizer of a GGUF)", kTokenizeUsage, run_tokenize});
const bool kRegisteredDetokenize =
    register_command({"detokenize", "print the text of token ids", kDetokenizeUsage, run_detokenize});

}  // namespace
}  // namespace gemma4::cli
