// gemma4-bench: end-to-end prefill and decode speed, measured the way llama-bench measures them, so the
// two can be run side by side on the same file and GPU (scripts/bench_vs_llama.sh).
//
//   gemma4-bench -m MODEL.gguf [-p 512] [-n 128] [-d 0,4096,32768,131072] [-r 5] [--device cuda]
//                [--kv f16|f32] [-t THREADS] [-o json|md]
//
// For each depth d: a fresh session gets d random tokens (not timed), then
//   pp<P>@d: the time to process P more tokens in one batch (logits for the last one, as llama.cpp);
//   tg<N>@d: the time to decode N tokens one by one (each with its logits copied to the host).
// Each test runs once to warm up, then -r times; tokens/s is reported as mean and stddev of the runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gemma4/gemma4.h"

#ifndef GEMMA4_GIT_COMMIT
#define GEMMA4_GIT_COMMIT "unknown"
#endif

using namespace gemma4;

namespace {

struct Options {
    std::string model;
    int n_prompt = 512;
    int n_gen = 128;
    std::vector<int> depths = {0};
    int reps = 5;
    Device device = Device::best_available();
    KvType kv = KvType::f16;
    int threads = 0;
    std::string output = "md";
};

std::vector<int> parse_list(const std::string& s) {
    std::vector<int> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
    return out;
}

[[noreturn]] void usage(int code) {
    std::fputs("usage: gemma4-bench -m MODEL.gguf [-p 512] [-n 128] [-d 0,4096,32768] [-r 5] [--device cpu|cuda|auto]\n"
               "                    [--kv f16|f32] [-t THREADS] [-o json|md]\n",
               code ? stderr : stdout);
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(2);
            return argv[++i];
        };
        if (a == "-m" || a == "--model") o.model = next();
        else if (a == "-p") o.n_prompt = std::stoi(next());
        else if (a == "-n") o.n_gen = std::stoi(next());
        else if (a == "-d") o.depths = parse_list(next());
        else if (a == "-r") o.reps = std::stoi(next());
        else if (a == "--device") o.device = Device::parse(next());
        else if (a == "--kv") o.kv = next() == "f32" ? KvType::f32 : KvType::f16;
        else if (a == "-t") o.threads = std::stoi(next());
        else if (a == "-o") o.output = next();
        else if (a == "-h" || a == "--help") usage(0);
        else usage(2);
    }
    if (o.model.empty() || o.reps < 1 || o.n_prompt < 0 || o.n_gen < 0) usage(2);
    return o;
}

struct Result {
    std::string test;  // "pp512" / "tg128"
    int n_prompt = 0, n_gen = 0, depth = 0;
    std::vector<double> samples_ts;
    Model::MemoryUse memory;  // at the end of the test, its session still alive
    double mean() const { return std::accumulate(samples_ts.begin(), samples_ts.end(), 0.0) / samples_ts.size(); }
    double stddev() const {
        if (samples_ts.size() < 2) return 0.0;
        const double m = mean();
        double s = 0;
        for (double x : samples_ts) s += (x - m) * (x - m);
        return std::sqrt(s / (samples_ts.size() - 1));
    }
};

std::vector<int32_t> random_tokens(int n, int vocab, std::mt19937& rng) {
    std::uniform_int_distribution<int32_t> dist(10, vocab - 1);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = dist(rng);
    return t;
}

/// One line on stderr per test: speed, and the memory its session left in use.
void report(const Result& r) {
    std::string mem;
    if (r.memory.device_total > 0) {
        mem = fmt::format(", GPU memory in use {:.2f} GiB (KV pages {:.2f} GiB)", r.memory.device_used / double(1 << 30),
                          r.memory.kv_reserved / double(1 << 30));
    }
    std::fprintf(stderr, "  %s @ d%d: %.1f tok/s%s\n", r.test.c_str(), r.depth, r.mean(), mem.c_str());
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A session holding `depth` tokens (filled in batches, not timed).
Session session_at_depth(const Model& model, const Options& o, int depth, int extra, std::mt19937& rng) {
    SessionOptions so;
    so.context_tokens = depth + extra + 1;
    so.kv_type = o.kv;
    so.batch_tokens = o.n_prompt > 0 ? o.n_prompt : 512;  // the fill goes in batches of this size too
    Session s = model.new_session(so);
    if (depth > 0) {
        const int vocab = model.info().vocab_size;
        std::vector<int32_t> fill = random_tokens(depth, vocab, rng);
        fill[0] = 2;
        s.add_tokens(fill);
        s.evaluate(false);
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        ModelOptions mo;
        mo.device = o.device;
        mo.threads = o.threads;
        const double t_load = now_s();
        const Model model = Model::open(o.model, mo);
        const double load_s = now_s() - t_load;
        const ModelInfo& info = model.info();
        std::fprintf(stderr, "%s\n", fmt::format("gemma4-bench: {} ({}, {:.2f} GiB) on {}, loaded in {:.1f} s", o.model,
                                                 info.file_type, info.file_bytes / double(1 << 30), info.device, load_s).c_str());
        std::mt19937 rng(1234);
        std::vector<Result> results;
        for (int depth : o.depths) {
            if (o.n_prompt > 0) {
                Result r{"pp" + std::to_string(o.n_prompt), o.n_prompt, 0, depth, {}};
                for (int rep = 0; rep <= o.reps; ++rep) {
                    Session s = session_at_depth(model, o, depth, o.n_prompt, rng);
                    s.add_tokens(random_tokens(o.n_prompt, info.vocab_size, rng));
                    const double t0 = now_s();
                    s.evaluate(false);
                    const double dt = now_s() - t0;
                    if (rep > 0) r.samples_ts.push_back(o.n_prompt / dt);  // rep 0 warms up
                    r.memory = model.memory_use();
                }
                report(r);
                results.push_back(r);
            }
            if (o.n_gen > 0) {
                Result r{"tg" + std::to_string(o.n_gen), 0, o.n_gen, depth, {}};
                Session s = session_at_depth(model, o, depth, (o.reps + 1) * o.n_gen, rng);
                if (depth == 0) {
                    const int32_t bos[] = {2};
                    s.add_tokens(bos);
                    s.evaluate(false);
                }
                for (int rep = 0; rep <= o.reps; ++rep) {
                    const auto toks = random_tokens(o.n_gen, info.vocab_size, rng);
                    const double t0 = now_s();
                    for (int32_t t : toks) {
                        s.add_tokens(std::span<const int32_t>(&t, 1));
                        s.decode();  // logits copied to the host, as llama_decode does
                    }
                    const double dt = now_s() - t0;
                    if (rep > 0) r.samples_ts.push_back(o.n_gen / dt);
                }
                r.memory = model.memory_use();
                report(r);
                results.push_back(r);
            }
        }
        if (o.output == "json") {
            std::string out = "[\n";
            for (size_t i = 0; i < results.size(); ++i) {
                const Result& r = results[i];
                std::string samples;
                for (double x : r.samples_ts) samples += fmt::format("{}{:.4f}", samples.empty() ? "" : ", ", x);
                out += fmt::format(
                    "  {{\"engine\": \"gemma4\", \"build_commit\": \"{}\", \"model_filename\": \"{}\", \"model_type\": \"{}\", "
                    "\"model_size\": {}, \"model_n_params\": {}, \"device\": \"{}\", \"type_k\": \"{}\", \"n_prompt\": {}, "
                    "\"n_gen\": {}, \"n_depth\": {}, \"test\": \"{}\", \"avg_ts\": {:.4f}, \"stddev_ts\": {:.4f}, "
                    "\"samples_ts\": [{}], \"device_mem_used\": {}, \"kv_reserved\": {}}}{}\n",
                    GEMMA4_GIT_COMMIT, o.model, info.file_type, info.file_bytes, info.n_params, info.device,
                    o.kv == KvType::f16 ? "f16" : "f32", r.n_prompt, r.n_gen, r.depth, r.test, r.mean(), r.stddev(), samples,
                    r.memory.device_used, r.memory.kv_reserved, i + 1 < results.size() ? "," : "");
            }
            out += "]\n";
            std::fputs(out.c_str(), stdout);
        } else {
            std::printf("| model | device | test | depth | t/s |\n| --- | --- | --- | ---: | ---: |\n");
            for (const Result& r : results) {
                std::printf("%s\n", fmt::format("| {} {} | {} | {} | {} | {:.2f} ± {:.2f} |", info.name, info.file_type,
                                                info.device, r.test, r.depth, r.mean(), r.stddev()).c_str());
            }
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "gemma4-bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
