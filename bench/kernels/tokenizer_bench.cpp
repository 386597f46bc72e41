// Tokenizer benchmarks on the real Gemma 4 vocabulary (262144 tokens, 514906 merges), one thread:
//   BM_TokenizerLoad    GgufFile::open + Tokenizer::from_gguf of ggml-vocab-gemma-4.gguf (target: well under 0.5 s);
//                       BM_TokenizerBuild is from_gguf alone
//   BM_TokenizerEncode  encode() over the ~3 MB mixed corpus of tests/golden/tokenizer (code in many languages,
//                       prose in ~45 languages and scripts, emoji, whitespace runs, invalid UTF-8); bytes/s is
//                       the figure to read (target: at least 5 MB/s). /special: with parse_special on.
//   BM_TokenizerDecode  decode() of the same ids, and BM_StreamDecode the token-by-token StreamDecoder.
// The vocabulary comes from $GEMMA4_VOCAB or scripts/fetch-vocab.sh's cache; without it every benchmark reports
// an error and does nothing. Needs the `xz` tool to read the corpus golden.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/tokenizer.h"
#include "tests/golden/tokenizer/tokenizer_test_util.h"

namespace {

using gemma4::GgufFile;
using gemma4::Tokenizer;

struct Corpus {
    std::vector<std::string> texts;
    size_t n_bytes = 0;
};

// The golden corpus as plain texts (the ids are not needed here).
const Corpus& corpus() {
    static const Corpus c = [] {
        Corpus out;
        for (auto& p : gemma4::test::read_golden_container(gemma4::test::tokenizer_golden_dir() + "/corpus.bin.xz")) {
            out.n_bytes += p.text.size();
            out.texts.push_back(std::move(p.text));
        }
        return out;
    }();
    return c;
}

const Tokenizer* tokenizer() {
    static const std::unique_ptr<Tokenizer> t = []() -> std::unique_ptr<Tokenizer> {
        const std::string path = gemma4::test::real_vocab_path();
        if (path.empty()) return nullptr;
        return std::make_unique<Tokenizer>(Tokenizer::from_gguf(GgufFile::open(path)));
    }();
    return t.get();
}

void BM_TokenizerLoad(benchmark::State& state) {
    const std::string path = gemma4::test::real_vocab_path();
    if (path.empty()) {
        state.SkipWithError(gemma4::test::kNoVocabMessage);
        return;
    }
    for (auto _ : state) {
        const GgufFile f = GgufFile::open(path);
        const Tokenizer t = Tokenizer::from_gguf(f);
        benchmark::DoNotOptimize(t.vocab_size());
    }
}
BENCHMARK(BM_TokenizerLoad)->Unit(benchmark::kMillisecond)->Iterations(5);

// The tokenizer's own share of the load: Tokenizer::from_gguf on an already parsed file.
void BM_TokenizerBuild(benchmark::State& state) {
    const std::string path = gemma4::test::real_vocab_path();
    if (path.empty()) {
        state.SkipWithError(gemma4::test::kNoVocabMessage);
        return;
    }
    const GgufFile f = GgufFile::open(path);
    for (auto _ : state) {
        const Tokenizer t = Tokenizer::from_gguf(f);
        benchmark::DoNotOptimize(t.vocab_size());
    }
}
BENCHMARK(BM_TokenizerBuild)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_TokenizerEncode(benchmark::State& state) {
    const Tokenizer* t = tokenizer();
    if (!t) {
        state.SkipWithError(gemma4::test::kNoVocabMessage);
        return;
    }
    const bool parse_special = state.range(0) != 0;
    const Corpus& c = corpus();
    size_t n_ids = 0;
    for (auto _ : state) {
        n_ids = 0;
        for (const std::string& text : c.texts) n_ids += t->encode(text, false, parse_special).size();
        benchmark::DoNotOptimize(n_ids);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.n_bytes));
    state.counters["corpus_bytes"] = static_cast<double>(c.n_bytes);
    state.counters["ids"] = static_cast<double>(n_ids);
}
BENCHMARK(BM_TokenizerEncode)->Arg(0)->Arg(1)->ArgName("special")->Unit(benchmark::kMillisecond)->MinTime(2.0);

std::vector<std::vector<int32_t>> corpus_ids(const Tokenizer& t) {
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& text : corpus().texts) ids.push_back(t.encode(text, false, false));
    return ids;
}

void BM_TokenizerDecode(benchmark::State& state) {
    const Tokenizer* t = tokenizer();
    if (!t) {
        state.SkipWithError(gemma4::test::kNoVocabMessage);
        return;
    }
    const auto ids = corpus_ids(*t);
    for (auto _ : state) {
        size_t n = 0;
        for (const auto& v : ids) n += t->decode(v).size();
        benchmark::DoNotOptimize(n);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus().n_bytes));
}
BENCHMARK(BM_TokenizerDecode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

void BM_StreamDecode(benchmark::State& state) {
    const Tokenizer* t = tokenizer();
    if (!t) {
        state.SkipWithError(gemma4::test::kNoVocabMessage);
        return;
    }
    const auto ids = corpus_ids(*t);
    for (auto _ : state) {
        size_t n = 0;
        for (const auto& v : ids) {
            gemma4::StreamDecoder d(*t);
            for (int32_t id : v) n += d.push(id).size();
            n += d.flush().size();
        }
        benchmark::DoNotOptimize(n);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus().n_bytes));
}
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace
