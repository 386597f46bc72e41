// Options shared by the model-running subcommands (generate, chat, logits): model loading with a
// progress bar, session options and sampler flags.
#pragma once

#include <memory>
#include <string>

#include "cli.h"
#include "gemma4/gemma4.h"

namespace gemma4::cli {

/// --model F --device cpu|cuda|cuda:N|auto --threads N --mmproj F [--quiet]
Model open_model(Args& args);
/// --ctx N --batch N --kv f16|f32 --system TEXT --think
SessionOptions session_options(Args& args);
/// --greedy | --temp T --top-k K --top-p P --min-p P --repeat-penalty R --repeat-window N --seed S
/// (defaults: Gemma 4's recommended temp 1.0, top-k 64, top-p 0.95)
Sampler sampler_from(Args& args);

extern const char* const kModelOptionsHelp;
extern const char* const kSessionOptionsHelp;
extern const char* const kSamplerOptionsHelp;

}  // namespace gemma4::cli
