// Backend: the narrow op interface the transformer is written against (STYLE.md §1).
//
// cpu::Backend is the readable reference; cuda::Backend is the fast one. Every pointer an op takes is
// backend memory (host memory for the CPU, device memory for CUDA), obtained from alloc() or from
// upload_weights(). Activations are f32, row-major [n_tokens][dim]. Ops are ordered: a backend may
// run them asynchronously, but each sees the results of the ones before it; download() waits.
//
// Shape vocabulary: n_tokens, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size, page_tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gemma4/model.h"
#include "quant/types.h"

namespace gemma4 {

/// A weight matrix as stored in the GGUF: d_out rows of d_in elements in `type` blocks, rows back to
/// back. y = W x reads row o for output o.
struct WeightMatrix {
    GgmlType type = GgmlType::F32;
    int64_t d_in = 0;        // ggml ne0
    int64_t d_out = 0;       // ggml ne1
    size_t row_bytes = 0;
    const void* data = nullptr;  // backend memory
};

/// The K/V storage of one layer of one session: fixed-size pages, each holding page_tokens positions
/// of K and then V, each [n_kv_heads][page_tokens][head_dim] of `kv_type`. pages[j] holds positions
/// [j * page_tokens, (j + 1) * page_tokens); an entry may be null for pages a sliding layer dropped.
struct KvLayerView {
    void* const* pages = nullptr;  // [n_pages] backend memory: the page table
    int page_tokens = 0;
    int n_kv_heads = 0;
    int head_dim = 0;
    KvType kv_type = KvType::f16;

    size_t elem_bytes() const { return kv_type == KvType::f16 ? 2 : 4; }
    /// Bytes of K (or V) in one page.
    size_t half_page_bytes() const { return static_cast<size_t>(n_kv_heads) * page_tokens * head_dim * elem_bytes(); }
    size_t page_bytes() const { return 2 * half_page_bytes(); }
};

/// Per-layer attention constants.
struct AttentionLayer {
    int n_heads = 0;
    int n_kv_heads = 0;
    int head_dim = 0;
    int rope_dims = 0;             // R: pairs (i, i + R/2) for i < R/2 rotate (NEOX)
    float rope_base = 10000.0f;
    const float* rope_freqs = nullptr;  // [R/2] divisors of the frequencies, or null (all 1)
    const float* q_norm = nullptr;      // [head_dim]
    const float* k_norm = nullptr;      // [head_dim]
    float rms_eps = 1e-6f;
    int window = 0;                // sliding window in tokens (the query included); 0 = full causal
    float scale = 1.0f;            // q·k scale (Gemma 4: 1.0)
};

/// One forward batch: positions pos0 .. pos0 + n_tokens - 1, contiguous in one sequence.
/// `groups` (may be null) gives each token a media group: tokens of one image share a group id >= 0
/// and attend to each other in both directions on sliding layers; -1 = ordinary causal token.
struct BatchPositions {
    int pos0 = 0;
    int n_tokens = 0;
    const int32_t* groups = nullptr;  // [n_tokens] backend memory, or null
    /// Graph replay (CUDA): when set, kernels read pos0 from this backend memory at run time, so one
    /// recorded decode step serves every position; launch shapes then depend only on `max_positions`
    /// (the cache capacity), never on pos0.
    const int32_t* pos0_device = nullptr;
    int max_positions = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;

    // ---- memory
    /// Throws Error(out_of_memory).
    virtual void* alloc(size_t bytes) = 0;
    virtual void free(void* p) noexcept = 0;
    virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
    virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
    virtual void copy(void* dst, const void* src, size_t bytes) = 0;
    /// Host memory that upload/download move fastest (page-locked on CUDA: a copy then runs at the bus
    /// rate without a bounce through a driver buffer). Throws Error(out_of_memory). free_host releases it.
    virtual void* alloc_host(size_t bytes);
    virtual void free_host(void* p) noexcept;
    /// Makes `bytes` of host weights (inside the mmap) usable by the ops. The CPU returns `host`
    /// itself (zero copy); CUDA copies to the device. The result lives as long as the backend.
    virtual const void* upload_weights(const void* host, size_t bytes) = 0;
    /// Whether this backend uses weights from the host mapping directly.
    virtual bool weights_in_host_memory() const = 0;

    // ---- ops
    /// out[i] = dequant(table row ids[i]) * scale.   ids: [n_tokens], out: [n_tokens][d_model]
    virtual void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out) = 0;
    /// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight (weight null: no weight). x, out: [n_rows][dim]; may alias.
    virtual void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out) = 0;
    /// y[t] = W x[t].   x: [n_tokens][d_in], y: [n_tokens][d_out]
    virtual void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y) = 0;
    /// out[t] = gelu_tanh(W_gate x[t]) * (W_up x[t]).   x: [n_tokens][d_in], out: [n_tokens][d_ff];
    /// `scratch` holds at least n_tokens * d_ff floats.
    virtual void gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens,
                               float* scratch, float* out) = 0;
    /// Fused forms of "h = rms_norm(x) * norm_weight, then products with h" (the layer inputs): for each
    /// target ys[k] = W_k h (count <= 3, one d_in); norm_gate_up_geglu: out = gate_up_geglu(h). `h` is a
    /// [n_tokens][d_in] buffer the default (rms_norm into h, then the plain ops) writes; a backend may
    /// fuse the norm into the products instead and leave h unwritten.
    virtual void norm_matmuls(const float* x, const float* norm_weight, float eps, int n_tokens, const WeightMatrix* const* ws,
                              float* const* ys, int count, float* h) {
        rms_norm(x, norm_weight, n_tokens, static_cast<int>(ws[0]->d_in), eps, h);
        for (int k = 0; k < count; ++k) matmul(*ws[k], h, n_tokens, ys[k]);
    }
    virtual void norm_gate_up_geglu(const float* x, const float* norm_weight, float eps, const WeightMatrix& gate,
                                    const WeightMatrix& up, int n_tokens, float* scratch, float* out, float* h) {
        rms_norm(x, norm_weight, n_tokens, static_cast<int>(gate.d_in), eps, h);
        gate_up_geglu(gate, up, h, n_tokens, scratch, out);
    }
    /// x[t] = (x[t] + rms_norm(a[t]) * weight) * scale.   x, a: [n_tokens][dim]
    virtual void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps,
                              float scale) = 0;
    /// Per token and head: q = rope(rms(q) * q_norm); k = rope(rms(k) * k_norm) and v = rms(v) written
    /// to the cache at their positions. q: [n_tokens][n_heads * head_dim] in place; k, v:
    /// [n_tokens][n_kv_heads * head_dim] (v may equal k: Gemma 4 full layers reuse the K projection).
    virtual void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                                   const AttentionLayer& layer, const KvLayerView& kv) = 0;
    /// out[t][h] = softmax_k(q[t][h] · K[k] * scale + mask) · V over the cached keys of this sequence
    /// (positions 0 .. pos0 + n_tokens - 1 that the layer keeps). q, out: [n_tokens][n_heads * head_dim].
    virtual void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer,
                           const KvLayerView& kv, float* out) = 0;
    /// x = cap * tanh(x / cap), n values.
    virtual void softcap(float* x, int64_t n, float cap) = 0;

    // ---- ops of the multimodal projector (spec §5.3)
    /// out[r] = (x[r] - mean(x[r])) / sqrt(var(x[r]) + eps) * weight + bias, biased variance.
    /// x, out: [n_rows][dim], may alias; weight, bias: [dim].
    virtual void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps,
                            float* out) = 0;
    /// x[r] += bias.   x: [n_rows][dim], bias: [dim]
    virtual void add_bias(float* x, const float* bias, int n_rows, int dim) = 0;
    /// x[r] += table[ids[r]].   x: [n_rows][dim], table: [n_table_rows][dim] f32, ids: [n_rows] (each in
    /// [0, n_table_rows); the caller checks).
    virtual void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim) = 0;

    /// Waits for all queued work (a no-op on the CPU).
    virtual void synchronize() = 0;

    // ---- recorded op sequences (CUDA graphs). A backend without them returns false from
    // begin_recording() and never sees the other calls.
    /// Starts recording the ops that follow instead of running them. Nothing may be allocated,
    /// uploaded from pageable memory or downloaded until end_recording().
    virtual bool begin_recording() { return false; }
    /// Ends the recording and returns a handle to replay it.
    virtual void* end_recording() { return nullptr; }
    /// Queues one replay of a recording.
    virtual void replay(void* /*recording*/) {}
    virtual void destroy_recording(void* /*recording*/) noexcept {}
    /// Changes whenever backend scratch memory moves: recordings made before hold stale pointers.
    virtual uint64_t scratch_generation() const { return 0; }
    /// Device memory in use (device-wide, every process) and the device's total, in bytes; false for
    /// host backends.
    virtual bool device_memory(uint64_t& /*used*/, uint64_t& /*total*/) const { return false; }
};

/// `n` elements of Backend::alloc_host memory, released with it. The backend must outlive the buffer.
template <class T>
class HostBuffer {
public:
    HostBuffer() = default;
    HostBuffer(Backend& backend, size_t n) : be_(&backend), data_(static_cast<T*>(backend.alloc_host(n * sizeof(T)))), size_(n) {}
    ~HostBuffer() { reset(); }
    HostBuffer(HostBuffer&& o) noexcept : be_(o.be_), data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
    HostBuffer& operator=(HostBuffer&& o) noexcept {
        if (this != &o) {
            reset();
            be_ = o.be_, data_ = o.data_, size_ = o.size_;
            o.data_ = nullptr, o.size_ = 0;
        }
        return *this;
    }
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;

    T* data() const { return data_; }
    size_t size() const { return size_; }

private:
    void reset() noexcept {
        if (data_) be_->free_host(data_);
        data_ = nullptr, size_ = 0;
    }
    Backend* be_ = nullptr;
    T* data_ = nullptr;
    size_t size_ = 0;
};

/// The backend for `device` (throws Error(device_error) if this build or machine cannot provide it).
std::unique_ptr<Backend> make_backend(const Device& device, int threads);

}  // namespace gemma4
