#include "backend/backend.h"

#include <algorithm>
#include <new>

#include <fmt/format.h>

#include "cpu/cpu_backend.h"
#include "gemma4/error.h"

#ifdef GEMMA4_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace gemma4 {

void* Backend::alloc_host(size_t bytes) {
    try {
        return ::operator new(std::max<size_t>(bytes, 1), std::align_val_t{64});
    } catch (const std::bad_alloc&) {
        throw Error(ErrorCode::out_of_memory, fmt::format("cannot allocate {} MiB of host memory", bytes >> 20));
    }
}

void Backend::free_host(void* p) noexcept { ::operator delete(p, std::align_val_t{64}); }

std::unique_ptr<Backend> make_backend(const Device& device, int threads) {
    if (device.kind == Device::Kind::cpu) return std::make_unique<cpu::Backend>(threads);
#ifdef GEMMA4_HAVE_CUDA
    return cuda::make_backend(device.index);
#else
    throw Error(ErrorCode::device_error, fmt::format("cuda:{} requested, but this build of gemma4 has no CUDA backend", device.index));
#endif
}

}  // namespace gemma4
