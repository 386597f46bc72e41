// The tanh-approximated GELU of Gemma 4's GeGLU (spec §3.2 step 9), one definition for the CPU reference
// and the CUDA kernels: gelu_tanh(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), in f32.
#pragma once

#include <cmath>

#include "quant/fp16.h"  // GEMMA4_HD

namespace gemma4 {

GEMMA4_HD inline float gelu_tanh(float z) {
    constexpr float kSqrt2OverPi = 0.79788456080286535588f;
    constexpr float kCubic = 0.044715f;
    return 0.5f * z * (1.0f + tanhf(kSqrt2OverPi * z * (1.0f + kCubic * z * z)));
}

}  // namespace gemma4
