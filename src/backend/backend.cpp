#include "backend/backend.h"

#include <fmt/format.h>

#include "cpu/cpu_backend.h"
#include "gemma4/error.h"

#ifdef GEMMA4_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace gemma4 {

std::unique_ptr<Backend> make_backend(const Device& device, int threads) {
    if (device.kind == Device::Kind::cpu) return std::make_unique<cpu::Backend>(threads);
#ifdef GEMMA4_HAVE_CUDA
    return cuda::make_backend(device.index);
#else
    throw Error(ErrorCode::device_error, fmt::format("cuda:{} requested, but this build of gemma4 has no CUDA backend", device.index));
#endif
}

}  // namespace gemma4
