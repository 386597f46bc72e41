// transcribe_audio: answers a question about an audio clip (by default: a transcript), streaming the answer.
//
//   transcribe_audio MODEL.gguf MMPROJ.gguf CLIP.wav [QUESTION] [--device cpu|cuda|auto] [--max-tokens N]
//
// The WAV (PCM 8/16/24/32-bit or float, any rate, any channels) is averaged to mono and resampled to 16 kHz;
// every 40 ms (640 samples) becomes one soft token of the prompt, straight from the projector.
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
        std::fprintf(stderr, "usage: %s MODEL.gguf MMPROJ.gguf CLIP.wav [QUESTION] [--device D] [--max-tokens N]\n", argv[0]);
        return 2;
    }
    const std::string question = pos.size() == 4 ? pos[3] : "Transcribe this audio clip.";
    try {
        const gemma4::Model model =
            gemma4::Model::open(pos[0], {.device = gemma4::Device::parse(device), .mmproj = pos[1]});
        const gemma4::Audio clip = gemma4::Audio::from_file(pos[2]);
        std::fprintf(stderr, "%s: %.2f s\n", pos[2].c_str(), clip.duration_s());

        // One 40 ms token per frame: size the context for the clip plus the answer.
        const int clip_tokens = static_cast<int>(clip.samples().size() / 640) + 1;
        gemma4::Session session = model.new_session({.context_tokens = clip_tokens + max_tokens + 256});
        session.add_audio(clip);
        session.add_text(question);

        const gemma4::Generation out = session.generate(gemma4::Sampler::greedy(), {.max_new_tokens = max_tokens},
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
