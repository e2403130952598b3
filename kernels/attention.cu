// The attention core's kernels: the scaled, key-masked softmax (forward and backward, one warp per
// row, sums in double) and the head layout permutes. The batched products are cuBLAS
// (cublasSgemmStridedBatched; the host GEMM on sim). Each computes what
// engine/src/backend/cpu/attention.rs computes, in the same operation order.
#include "common.cuh"
#include "device.cuh"

namespace {

// Float max over the warp; fmaxf drops NaN operands (no lane holds one: masked and NaN scores
// never enter the running maximum, as on the CPU).
__device__ inline float warp_max_f(float v) {
    for (int o = mg::kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(mg::kFullMask, v, o));
    return v;
}

}  // namespace

// probs = softmax(scale·scores) over each row of k keys, key j of sample b = row / per_sample left
// out where mask[b·k + j] == 0 (p = 0 there); a row with every key masked is all 0.
// One warp per row (blockDim.x a multiple of 32; the ABI's 256 = 8 rows per block), rows
// grid-strided by warps. Every branch below is uniform across the warp, so the full-mask
// collectives always see all 32 lanes.
extern "C" __global__ void masked_softmax_forward(const float* __restrict__ scores, const float* __restrict__ mask,
                                                  float* __restrict__ probs, int rows, int k, int per_sample,
                                                  float scale) {
    const unsigned lane = threadIdx.x % mg::kWarp, wpb = blockDim.x / mg::kWarp;
    for (unsigned row = blockIdx.x * wpb + threadIdx.x / mg::kWarp; row < (unsigned)rows; row += gridDim.x * wpb) {
        const float* s = scores + (size_t)row * k;
        const float* m = mask + (size_t)(row / (unsigned)per_sample) * k;
        float* p = probs + (size_t)row * k;
        int seen = 0;
        float mx = -INFINITY;
        for (int j = lane; j < k; j += mg::kWarp) {
            if (m[j] != 0.0f) {
                seen = 1;
                const float v = scale * s[j];
                mx = v > mx ? v : mx;
            }
        }
        if (!__any_sync(mg::kFullMask, seen)) {
            for (int j = lane; j < k; j += mg::kWarp) p[j] = 0.0f;
            continue;
        }
        mx = warp_max_f(mx);
        double sum = 0.0;
        for (int j = lane; j < k; j += mg::kWarp) {
            const float e = m[j] != 0.0f ? expf(scale * s[j] - mx) : 0.0f;
            p[j] = e;
            sum += (double)e;
        }
        // One reciprocal per row, rounded to float, as the CPU's f32 path computes it.
        const float inv = (float)(1.0 / mg::warp_sum(sum));
        // Each lane rescales the entries it wrote itself: no other thread's writes are read.
        for (int j = lane; j < k; j += mg::kWarp) p[j] = p[j] * inv;
    }
}

// ds = scale·p·(dp − Σ_row p·dp), the dot and the product in double. One warp per row, as above.
extern "C" __global__ void masked_softmax_backward(const float* __restrict__ p, const float* __restrict__ dp,
                                                   float* __restrict__ ds, int rows, int k, float scale) {
    const unsigned lane = threadIdx.x % mg::kWarp, wpb = blockDim.x / mg::kWarp;
    const double sc = (double)scale;
    for (unsigned row = blockIdx.x * wpb + threadIdx.x / mg::kWarp; row < (unsigned)rows; row += gridDim.x * wpb) {
        const size_t base = (size_t)row * k;
        double dot = 0.0;
        for (int j = lane; j < k; j += mg::kWarp) dot += (double)p[base + j] * (double)dp[base + j];
        dot = mg::warp_sum(dot);
        for (int j = lane; j < k; j += mg::kWarp)
            ds[base + j] = (float)(sc * (double)p[base + j] * ((double)dp[base + j] - dot));
    }
}

// [batch, seq, heads, d] → [batch, heads, seq, d], one thread per output element (reads of d
// consecutive floats, writes coalesced).
extern "C" __global__ void split_heads(const float* __restrict__ x, float* __restrict__ y, int batch, int seq,
                                       int heads, int d) {
    const unsigned total = (unsigned)batch * (unsigned)seq * (unsigned)heads * (unsigned)d;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)d); w.i < total; w.next()) {
        // w.q = (b·heads + h)·seq + s
        const unsigned s = w.q % (unsigned)seq, bh = w.q / (unsigned)seq;
        const unsigned h = bh % (unsigned)heads, b = bh / (unsigned)heads;
        y[w.i] = x[(((size_t)b * seq + s) * heads + h) * d + w.r];
    }
}

// [batch, heads, seq, d] → [batch, seq, heads, d], one thread per output element.
extern "C" __global__ void merge_heads(const float* __restrict__ x, float* __restrict__ y, int batch, int seq,
                                       int heads, int d) {
    const unsigned total = (unsigned)batch * (unsigned)seq * (unsigned)heads * (unsigned)d;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)d); w.i < total; w.next()) {
        // w.q = (b·seq + s)·heads + h
        const unsigned h = w.q % (unsigned)heads, bs = w.q / (unsigned)heads;
        const unsigned s = bs % (unsigned)seq, b = bs / (unsigned)seq;
        y[w.i] = x[(((size_t)b * heads + h) * seq + s) * d + w.r];
    }
}

SIM_EXPORT(masked_softmax_forward)
SIM_EXPORT(masked_softmax_backward)
SIM_EXPORT(split_heads)
SIM_EXPORT(merge_heads)
