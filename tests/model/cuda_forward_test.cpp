// The CUDA backend end to end on the committed tiny models: against llama.cpp (f32 file, the CPU
// issue's thresholds) and against our CPU backend (quantized files: top-1 100%). Skips without a GPU.
//
// Tolerances: f32 file vs llama.cpp rel_l2 <= 1e-3 and top-1 = 1 (as for the CPU backend). Quantized
// files vs our CPU backend: the decode path keeps f32 activations (expect ~1e-5), the prefill path
// rounds activations and dequantized weights to f16 for the tensor cores (2^-11 relative each), which
// the oracle README's table puts near 1e-3 for the whole model; we require rel_l2 <= 5e-3 and top-1 = 1.
#include "model/model_test_util.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

Model open_on(const std::string& quant, Device device) {
    ModelOptions o;
    o.device = device;
    return Model::open(model_path(quant), o);
}

}  // namespace

TEST_CASE("cuda: tiny f32 logits match llama.cpp", "[model][cuda]") {
    if (!have_gpu()) {
        WARN("no CUDA device: skipped");
        return;
    }
    const Model model = open_on("f32", Device::cuda(0));
    const size_t vocab = model.info().vocab_size;
    for (const char* name : {"f32-1", "f32-17", "f32-600", "f32-2500"}) {
        for (KvType kv : {KvType::f32, KvType::f16}) {
            CAPTURE(name, kv == KvType::f16);
            const Golden g = load_golden(name);
            const auto ours = select_rows(run_all_logits(model, g.tokens, {.kv_type = kv}), g.rows, vocab);
            const Metrics m = compare(ours, g.logits, vocab);
            INFO("rel_l2 " << m.rel_l2 << " max_abs " << m.max_abs << " top1 " << m.top1 << " kl " << m.kl);
            CHECK(m.rel_l2 <= 1e-3);
            CHECK(m.top1 == 1.0);
        }
    }
}

TEST_CASE("cuda: quantized files match the CPU backend, prefill and decode", "[model][cuda]") {
    if (!have_gpu()) {
        WARN("no CUDA device: skipped");
        return;
    }
    for (const char* quant : {"Q8_0", "Q4_K_M"}) {
        CAPTURE(quant);
        const Model gpu = open_on(quant, Device::cuda(0));
        const Model cpu = open_on(quant, Device::cpu());
        const size_t vocab = gpu.info().vocab_size;
        const Golden g = load_golden(std::string(quant) + "-200");
        for (int batch : {512, 1}) {
            CAPTURE(batch);
            const auto a = run_all_logits(gpu, g.tokens, {.batch_tokens = batch});
            const auto b = run_all_logits(cpu, g.tokens, {.batch_tokens = batch});
            const Metrics m = compare(a, b, vocab);
            INFO("rel_l2 " << m.rel_l2 << " top1 " << m.top1 << " kl " << m.kl);
            CHECK(m.rel_l2 <= 5e-3);
            CHECK(m.top1 == 1.0);
        }
        // Greedy generation: the same tokens as the CPU backend.
        auto greedy = [&](const Model& model) {
            Session s = model.new_session();
            s.add_tokens(std::span<const int32_t>(g.tokens.data(), 17));
            return s.continue_raw(Sampler::greedy(), {.max_new_tokens = 32}).tokens;
        };
        CHECK(greedy(gpu) == greedy(cpu));
    }
}
