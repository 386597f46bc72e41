// ModelConfig from GGUF metadata: the committed tiny model against the oracle's preset table
// (../shared/oracle/README.md, "tiny": n_embd 256, 4 layers with full attention at 1 and 3, 4 query heads,
// 2 / 1 KV heads, head dims 64 / 128, n_ff 256, vocab 512, window 16), and the variants we refuse.
#include <catch2/catch.hpp>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/config.h"

using namespace gemma4;

TEST_CASE("config: the tiny preset's hyper-parameters are read from its metadata", "[unit][config]") {
    const GgufFile f = GgufFile::open(std::string(GEMMA4_TEST_DATA_DIR) + "/models/gemma4-tiny-f32.gguf");
    const ModelConfig c = ModelConfig::from_gguf(f);
    CHECK(c.architecture == "gemma4");
    CHECK(c.d_model == 256);
    CHECK(c.n_layers == 4);
    CHECK(c.vocab_size == 512);
    CHECK(c.sliding_window == 16);
    CHECK(c.final_softcap == 30.0f);
    CHECK(c.rms_eps == Approx(1e-6f));
    CHECK(c.has_layer_output_scale);
    CHECK(c.context_tokens == f.get<int>("gemma4.context_length"));
    for (int l = 0; l < 4; ++l) {
        CAPTURE(l);
        const LayerConfig& L = c.layers[l];
        const bool full = l == 1 || l == 3;
        CHECK(L.sliding == !full);
        CHECK(L.n_heads == 4);
        CHECK(L.n_kv_heads == (full ? 1 : 2));
        CHECK(L.head_dim == (full ? 128 : 64));
        CHECK(L.rope_dims == L.head_dim);
        CHECK(L.rope_base == (full ? 1e6f : 1e4f));
        CHECK(L.d_ff == 256);
        CHECK(L.has_v_proj == !full);  // full layers reuse the K projection as V
    }
}

TEST_CASE("config: other architectures and Gemma 4 variants are refused with unsupported_model", "[unit][config]") {
    const auto refused = [](GgufWriter& w, const char* what) {
        const GgufFile f = GgufFile::from_bytes(w.build().bytes, what);
        try {
            ModelConfig::from_gguf(f);
            FAIL("accepted " << what);
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::unsupported_model);
            CHECK(std::string(e.what()).find(what) != std::string::npos);  // the message names the file
        }
    };
    GgufWriter llama;
    llama.add_string("general.architecture", "llama");
    refused(llama, "llama.gguf");
    GgufWriter clip;
    clip.add_string("general.architecture", "clip");
    refused(clip, "mmproj.gguf");
    GgufWriter ple;
    ple.add_string("general.architecture", "gemma4");
    ple.add<uint32_t>("gemma4.embedding_length_per_layer_input", 256);
    refused(ple, "gemma-4-e4b.gguf");
    GgufWriter moe;
    moe.add_string("general.architecture", "gemma4");
    moe.add<uint32_t>("gemma4.expert_count", 128);
    refused(moe, "gemma-4-26b-a4b.gguf");
    GgufWriter shared_kv;
    shared_kv.add_string("general.architecture", "gemma4");
    shared_kv.add<uint32_t>("gemma4.attention.shared_kv_layers", 10);
    refused(shared_kv, "gemma-4-shared.gguf");
    GgufWriter none;
    refused(none, "empty.gguf");
}
