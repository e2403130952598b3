// Reductions: column sums (linear-layer bias gradient), per-channel sums (conv bias gradient),
// the fused Σx² over many tensors (the global gradient norm for clipping) and the fixed-order
// second pass of split-K (splitk_sum). All accumulate in double, as the CPU backend does, so f32
// results agree with it to the last bit in almost every case (the summation order differs, but
// double's 29 extra bits absorb that). None uses atomics: every multi-block reduction writes
// per-block partials and a second kernel adds them in index order, so results are bit-identical
// from run to run (tests/sim_determinism.rs).
#include "common.cuh"
#include "device.cuh"

// out[col] = Σ_r x[r, col]. One thread per column walking down the rows: the 32 threads of a warp
// read 32 adjacent columns of a row, one coalesced 128-byte line per step, and each column is
// summed in the CPU's order (row 0 first), so the double sum is bit-identical to the CPU's.
// The column loop is grid-strided so any grid is correct; the ABI's grid covers every column.
extern "C" __global__ void sum_rows(const float* __restrict__ x, float* __restrict__ out, int rows, int cols) {
    for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < cols; col += gridDim.x * blockDim.x) {
        const float* p = x + col;
        double s = 0.0;
        int r = 0;
        // Four independent loads in flight per thread before their (ordered) accumulation.
        for (; r + 4 <= rows; r += 4) {
            const float v0 = p[(size_t)r * cols], v1 = p[(size_t)(r + 1) * cols];
            const float v2 = p[(size_t)(r + 2) * cols], v3 = p[(size_t)(r + 3) * cols];
            s += (double)v0;
            s += (double)v1;
            s += (double)v2;
            s += (double)v3;
        }
        for (; r < rows; ++r) s += (double)p[(size_t)r * cols];
        out[col] = (float)s;
    }
}

// Channel sums, many blocks per channel: block (x, y) sums chunk y (of gridDim.y equal chunks,
// mg::ChannelWalk's split) of the n·hw elements of channels x, x + gridDim.x, … into
//   parts[ch·nparts + part0 + y]  (double; 0 for an empty chunk; part0 places a batch part's
//   chunks when a batch too large for 32-bit indices is launched in parts, as bn_stats),
// and channel_sums_combine adds a channel's parts in order y = 0, 1, …: a fixed order whatever
// order the blocks run in, so the result is the same bits on every run.
extern "C" __global__ void channel_sums(const float* __restrict__ x, double* __restrict__ parts, int n, int c, int hw,
                                        int part0, int nparts) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s = 0.0;
        auto it = mg::ChannelWalk::chunk_of_block(ch, n, c, hw);
        for (;;) {
            float v[mg::kGather];
            const int k = it.gather(x, v);
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) s += (double)v[u];  // invalid slots hold 0
            if (k < mg::kGather) break;
        }
        s = mg::block_sum(s, scratch);
        if (threadIdx.x == 0) parts[(size_t)ch * nparts + part0 + blockIdx.y] = s;
    }
}

// out[ch] = (float) Σ_{y < nparts} parts[ch·nparts + y], summed in that order.
extern "C" __global__ void channel_sums_combine(const double* __restrict__ parts, int nparts, float* __restrict__ out,
                                                int c) {
    for (unsigned ch = mg::ew_start(); ch < (unsigned)c; ch += mg::ew_stride()) {
        const double* q = parts + (size_t)ch * nparts;
        double s = 0.0;
        for (int y = 0; y < nparts; ++y) s += q[y];
        out[ch] = (float)s;
    }
}

// Σ_t Σ_i x_t[i]², x_t = (const float*)ptrs[t], over tensors t < count, without atomics:
// blockIdx.y picks the tensors t = blockIdx.y, blockIdx.y + gridDim.y, …, blocks grid-stride
// over each, and each block stores its one double partial (over all its tensors, 0 if it has no
// element) to partials[blockIdx.y·gridDim.x + blockIdx.x]; sum_f64 then adds the partials in
// index order. Every thread's sum and the block reduction's tree depend only on indices, so the
// result is the same bits under any block or thread order.
extern "C" __global__ void sum_squares_multi(const unsigned long long* __restrict__ ptrs, const int* __restrict__ lens,
                                             int count, double* __restrict__ partials) {
    __shared__ double scratch[mg::kMaxWarps];
    double s = 0.0;
    for (int t = blockIdx.y; t < count; t += gridDim.y) {
        const float* xt = (const float*)ptrs[t];
        const unsigned len = (unsigned)lens[t];
        for (unsigned i = mg::ew_start(); i < len; i += mg::ew_stride()) {
            const double v = (double)xt[i];
            s += v * v;
        }
    }
    s = mg::block_sum(s, scratch);
    if (threadIdx.x == 0) partials[(size_t)blockIdx.y * gridDim.x + blockIdx.x] = s;
}

// *out = Σ_{i < n} x[i] in double, by one block (other blocks return): thread t sums
// i ≡ t mod blockDim.x in index order, then the block's fixed reduction tree. Bit-identical on
// every run. For the few thousand partials of sum_squares_multi.
extern "C" __global__ void sum_f64(const double* __restrict__ x, double* __restrict__ out, int n) {
    __shared__ double scratch[mg::kMaxWarps];
    if (blockIdx.x != 0 || blockIdx.y != 0 || blockIdx.z != 0) return;  // uniform per block
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    s = mg::block_sum(s, scratch);
    if (threadIdx.x == 0) *out = s;
}

// out[i] = Σ_{s < splits} partials[s·len + i], added in order s = 0, 1, … in double and rounded
// once: the fixed-order second pass of a split-K reduction (conv2d_backward_weight's split
// slots), the same bits under any block order. EW(len).
extern "C" __global__ void splitk_sum(const float* __restrict__ partials, float* __restrict__ out, int splits, int len) {
    for (unsigned i = mg::ew_start(); i < (unsigned)len; i += mg::ew_stride()) {
        const float* p = partials + i;
        double s = 0.0;
        for (int k = 0; k < splits; ++k) s += (double)p[(size_t)k * (unsigned)len];
        out[i] = (float)s;
    }
}

SIM_EXPORT(sum_rows)
SIM_EXPORT(channel_sums)
SIM_EXPORT(channel_sums_combine)
SIM_EXPORT(sum_squares_multi)
SIM_EXPORT(sum_f64)
SIM_EXPORT(splitk_sum)
