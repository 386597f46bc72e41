// cuda::Backend: the forward pass on one NVIDIA GPU (sm_90a). Weights are uploaded once, as stored in
// the GGUF; activations and the KV cache live in device memory; ops are queued on one stream.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace gemma4::cuda {

/// Number of CUDA devices (0 when there is no driver or GPU; never throws).
int device_count() noexcept;

/// The backend for device `index`. Throws Error(device_error) if it does not exist.
std::unique_ptr<gemma4::Backend> make_backend(int index);

}  // namespace gemma4::cuda
