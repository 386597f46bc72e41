// describe_image: asks Gemma 4 to describe a picture, streaming the answer.
//
//   describe_image MODEL.gguf MMPROJ.gguf IMAGE [QUESTION] [--device cpu|cuda|auto] [--max-tokens N]
//
// The image (PNG, JPEG, BMP, GIF or PPM/PGM) goes through the encoder-free projector: every 48x48 patch
// becomes one soft token of the prompt (70 to 1120 of them, llama.cpp's resize policy).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "gemma4/gemma4.h"

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    std::string device = "auto";
    int max_tokens = 256;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--device" && i + 1 < argc) device = argv[++i];
        else if (a == "--max-tokens" && i + 1 < argc) max_tokens = std::atoi(argv[++i]);
        else pos.push_back(a);
    }
    if (pos.size() < 3 || pos.size() > 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf MMPROJ.gguf IMAGE [QUESTION] [--device D] [--max-tokens N]\n", argv[0]);
        return 2;
    }
    const std::string question = pos.size() == 4 ? pos[3] : "Describe this image in detail.";
    try {
        const gemma4::Model model =
            gemma4::Model::open(pos[0], {.device = gemma4::Device::parse(device), .mmproj = pos[1]});
        gemma4::Session session = model.new_session({.context_tokens = 4096});

        const gemma4::Image image = gemma4::Image::from_file(pos[2]);
        std::fprintf(stderr, "%s: %dx%d pixels\n", pos[2].c_str(), image.width(), image.height());
        session.add_image(image);
        session.add_text(question);

        const auto sampler = gemma4::Sampler::top_p({.temperature = 1.0f, .top_k = 64, .top_p = 0.95f, .seed = 1});
        const gemma4::Generation out = session.generate(sampler, {.max_new_tokens = max_tokens},
                                                        [](std::string_view piece) {
                                                            std::cout << piece << std::flush;
                                                            return gemma4::Stream::more;
                                                        });
        std::cout << "\n";
        std::fprintf(stderr, "[%s: %d prompt tokens, %d new tokens at %.1f tok/s]\n", gemma4::to_string(out.stop),
                     out.stats.prompt_tokens, out.stats.new_tokens, out.stats.decode_tok_s);
    } catch (const gemma4::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
