// cuda/prefetch.cu: the L2 prefetch is a hint. Its CPU reference is "nothing happens": on ranges of every
// alignment and size (inside one allocation, ending at its last byte, empty, several per launch) the kernel
// must run without a fault (compute-sanitizer memcheck runs this test on the GPU machine), write nothing
// (the bytes stay equal, exactly), and reject more ranges than one launch takes.
#ifdef GEMMA4_HAVE_CUDA

#include "kernels/cuda_test_util.h"

#include "gemma4/error.h"

using namespace gemma4;
using namespace gemma4::test;

TEST_CASE("cuda prefetch_l2 addresses only its ranges and writes nothing", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    auto& ctx = cuda_context();
    constexpr size_t kBytes = (size_t{3} << 20) + 77;  // not a multiple of 16: the last range ends unaligned
    std::vector<uint8_t> host(kBytes);
    for (size_t i = 0; i < kBytes; ++i) host[i] = static_cast<uint8_t>(i * 131 + 7);
    DeviceBuffer<uint8_t> d(host);
    const uint8_t* b = d.get();
    const std::vector<std::vector<ByteRange>> launches = {
        {{b, kBytes}},                                      // all of it, unaligned end
        {{b + 1, 17}},                                      // shorter than one 16-byte unit once trimmed
        {{b + 3, 15}},                                      // nothing left after trimming
        {{b + kBytes - 5, 5}, {b + 100, (64 << 10) + 33}},  // the last bytes; a piece and a bit
        {{b, 0}, {nullptr, 4096}, {b + 16, 16}, {b + 1000, size_t{2} << 20}},
        {},
    };
    for (const auto& ranges : launches) {
        CAPTURE(ranges.size());
        cuda::prefetch_l2(ranges.data(), static_cast<int>(ranges.size()), ctx.stream());
        REQUIRE(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx.stream())) == cudaSuccess);
    }
    CHECK(d.download() == host);
    const std::vector<ByteRange> five(5, ByteRange{b, 64});
    CHECK_THROWS_AS(cuda::prefetch_l2(five.data(), 5, ctx.stream()), Error);
}

#endif  // GEMMA4_HAVE_CUDA
