// gemma4/gemma4.h: the umbrella header of libgemma4. Public headers include only standard headers.
#pragma once

#include "gemma4/error.h"
#include "gemma4/media.h"
#include "gemma4/model.h"
#include "gemma4/sampler.h"
#include "gemma4/session.h"

namespace gemma4 {

/// The library version, "MAJOR.MINOR.PATCH".
const char* version() noexcept;

}  // namespace gemma4
