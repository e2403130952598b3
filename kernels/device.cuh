// Shared __device__ helpers for every kernel family: the dropout hash (bit-identical to
// engine/src/rng.rs), warp/block reductions in float and double, GELU, and index walkers that let
// grid-stride loops track `i / hw` without an integer division per element.
//
// Everything here compiles both under nvcc and as plain C++20 against the host SIMT layer
// (kernels/sim/), so it uses only the CUDA subset that layer implements (see docs/kernel-abi.md).
#pragma once

// `#pragma unroll` is nvcc's; g++ would warn about an unknown pragma, and its own unroller is
// irrelevant on the host simulator, so the hint exists only under nvcc.
#ifdef __CUDACC__
#define MG_UNROLL _Pragma("unroll")
#else
#define MG_UNROLL
#endif

namespace mg {

// Every reduction kernel in the ABI runs 256-thread blocks; the block reductions below need
// blockDim.x to be a multiple of 32 (whole warps) and at most 1024.
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxWarps = 32;

// ---- counter-based RNG, bit for bit engine/src/rng.rs -------------------------------------------

// SplitMix64's finaliser.
__device__ inline unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) from (seed, index) alone. The top 53 bits convert to double exactly and the
// scale is a power of two, so this equals the Rust value bit for bit.
__device__ inline double hash_uniform(unsigned long long seed, unsigned long long index) {
    const unsigned long long z = mix64(seed ^ mix64(index + 0x9e3779b97f4a7c15ull));
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

// ---- GELU (exact erf form, PyTorch approximate='none') ------------------------------------

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }

// d/dx GELU = Φ(x) + x·φ(x).
__device__ inline float gelu_grad(float x) {
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

// ---- GELU, tanh form (PyTorch approximate='tanh', transformers' gelu_new) ------------------

constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluCubic = 0.044715f;

// In float, in the CPU's operation order (engine/src/backend/cpu/pointwise.rs, gelu_tanh).
__device__ inline float gelu_tanh(float x) {
    const float inner = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

__device__ inline float gelu_tanh_grad(float x) {
    const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
}

// ---- warp and block reductions ------------------------------------------------------------

// T is float or double: one butterfly, every lane ends with the warp's sum.
template <typename T>
__device__ inline T warp_sum(T v) {
    for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

// fmax drops NaN operands; the callers that care about NaN handle it themselves.
__device__ inline double warp_max(double v) {
    for (int o = kWarp / 2; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(kFullMask, v, o));
    return v;
}

// Sum over the whole block, returned to every thread. `scratch` is a __shared__ array of at least
// kMaxWarps doubles owned by the caller (the SIMT layer supports __shared__ only inside kernels).
// Must be reached by every thread of the block. Ends with a barrier, so the caller may reuse
// `scratch` immediately.
template <typename T>
__device__ inline T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x % kWarp;
    const int warp = threadIdx.x / kWarp;
    const int nwarps = (blockDim.x + kWarp - 1) / kWarp;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T total = 0;
    // Every thread sums the per-warp partials in the same order: all threads get the same bits,
    // with no second barrier-and-broadcast round.
    for (int w = 0; w < nwarps; ++w) total += scratch[w];
    __syncthreads();
    return total;
}

// ---- index walkers ------------------------------------------------------------------------

// The ABI's elementwise launch: grid-stride over [0, n). Unsigned so that i + stride cannot
// overflow for any int n (n < 2^31, stride <= 2^20 · 2^10).
__device__ inline unsigned ew_start() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ inline unsigned ew_stride() { return gridDim.x * blockDim.x; }

// Walks i = start, start + stride, ... while keeping q = i / d and r = i % d up to date with an
// add-and-carry instead of a division per step (integer division is ~20 instructions on the
// GPU, as much as the rest of a memory-bound elementwise body). Valid because the step's
// remainder dr < d, so one conditional subtraction restores r < d.
struct DivWalk {
    unsigned i, q, r;
    unsigned stride, dq, dr, d;
    __device__ inline DivWalk(unsigned start, unsigned step, unsigned divisor)
        : i(start), q(start / divisor), r(start % divisor), stride(step), dq(step / divisor),
          dr(step % divisor), d(divisor) {}
    // Returns the carry (0 or 1) into q, for callers that also track q modulo something.
    __device__ inline unsigned next() {
        i += stride;
        r += dr;
        q += dq;
        const unsigned carry = r >= d ? 1u : 0u;
        if (carry) r -= d;
        q += carry;
        return carry;
    }
};

// q mod c tracked alongside a DivWalk (the channel of plane q in an [n, c, hw] tensor).
struct ModTrack {
    unsigned v, dv, c;
    __device__ inline ModTrack(unsigned q, unsigned dq, unsigned modulus)
        : v(q % modulus), dv(dq % modulus), c(modulus) {}
    __device__ inline void next(unsigned carry) {
        v += dv + carry;  // < 2c: one subtraction suffices
        if (v >= c) v -= c;
    }
};

// Walks the n·hw elements of channel ch of an [n, c, hw] tensor, thread by thread (stride
// blockDim.x), as one flat range (q = sample, r = position in the plane), so that planes smaller
// than the block (the deep layers) still keep every thread busy. Element offset:
// q·c·hw + ch·hw + r. Used by the per-channel reductions.
// The many-block form (chunk_of_block) walks only chunk blockIdx.y of gridDim.y equal chunks
// of the channel's range, [y·L, min((y+1)·L, n·hw)) with L = ceil(n·hw / gridDim.y) (empty for
// the last chunks when gridDim.y > n·hw); `count` is its element count.
struct ChannelWalk {
    DivWalk w;
    unsigned first, total, chw, base;  // the walk covers flat indices [first, total)
    __device__ inline ChannelWalk(int ch, int n, int c, int hw)
        : ChannelWalk(ch, c, hw, 0u, (unsigned)n * (unsigned)hw) {}
    // Flat indices [begin, end) of channel ch only.
    __device__ inline ChannelWalk(int ch, int c, int hw, unsigned begin, unsigned end)
        : w(begin + threadIdx.x, blockDim.x, (unsigned)(hw > 0 ? hw : 1)), first(begin), total(end),
          chw((unsigned)c * (unsigned)hw), base((unsigned)ch * (unsigned)hw) {}
    __device__ static inline ChannelWalk chunk_of_block(int ch, int n, int c, int hw) {
        return ChannelWalk(ch, c, hw, chunk_bound(n, hw, blockIdx.y), chunk_bound(n, hw, blockIdx.y + 1));
    }
    // Chunk y's first index, y·L clamped to n·hw; 64-bit, since y·L may pass 2^32 when n·hw is
    // near 2^31.
    __device__ static inline unsigned chunk_bound(int n, int hw, unsigned y) {
        const unsigned long long m = (unsigned long long)(unsigned)n * (unsigned)hw;
        const unsigned long long b = (unsigned long long)y * ((m + gridDim.y - 1) / gridDim.y);
        return (unsigned)(b < m ? b : m);
    }
    // Elements in the walk (over all threads).
    __device__ inline unsigned count() const { return total > first ? total - first : 0u; }
    __device__ inline bool ok() const { return w.i < total; }
    __device__ inline size_t off() const { return (size_t)w.q * chw + base + w.r; }
    __device__ inline void next() { w.next(); }

    // Loads the next up-to-U elements of a (and b, at the same offsets) and returns how many were
    // valid (a prefix of v). The U loads are independent, so they are all in flight at once:
    // a one-block-per-channel reduction has few warps per SM, and one outstanding load per warp
    // would leave most of the memory bandwidth unused.
    template <int U>
    __device__ inline int gather(const float* __restrict__ a, float (&va)[U]) {
        int k = 0;
        MG_UNROLL
        for (int u = 0; u < U; ++u) {
            va[u] = 0.0f;
            if (ok()) {
                va[u] = a[off()];
                ++k;
                next();
            }
        }
        return k;
    }
    template <int U>
    __device__ inline int gather2(const float* __restrict__ a, const float* __restrict__ b, float (&va)[U],
                                  float (&vb)[U]) {
        int k = 0;
        MG_UNROLL
        for (int u = 0; u < U; ++u) {
            va[u] = 0.0f;
            vb[u] = 0.0f;
            if (ok()) {
                const size_t o = off();
                va[u] = a[o];
                vb[u] = b[o];
                ++k;
                next();
            }
        }
        return k;
    }
};

// Elements per thread per round in the block-per-channel / block-per-plane reductions.
constexpr int kGather = 8;

}  // namespace mg
