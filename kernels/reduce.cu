// Reductions: column sums (linear-layer bias gradient), per-channel sums (conv bias gradient)
// and the fused Σx² over many tensors (the global gradient norm for clipping). All accumulate in
// double, as the CPU backend does, so f32 results agree with it to the last bit in almost every
// case (the summation order differs, but double's 29 extra bits absorb that).
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

// out[ch] = Σ over (n, hw) of x[n, ch, hw]: one block per channel (grid-strided over channels),
// the block's threads walk the channel's n·hw elements as one flat range so that small planes
// (hw < 256, the deep layers) still keep every thread busy.
extern "C" __global__ void channel_sums(const float* __restrict__ x, float* __restrict__ out, int n, int c, int hw) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s = 0.0;
        mg::ChannelWalk it(ch, n, c, hw);
        for (;;) {
            float v[mg::kGather];
            const int k = it.gather(x, v);
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) s += (double)v[u];  // invalid slots hold 0
            if (k < mg::kGather) break;
        }
        s = mg::block_sum(s, scratch);
        if (threadIdx.x == 0) out[ch] = (float)s;
    }
}

// *out += Σ_t Σ_i x_t[i]², x_t = (const float*)ptrs[t], over tensors t < count. blockIdx.y picks
// the tensor (grid-strided for robustness), blocks grid-stride over it, each block reduces in
// double and adds one partial with a double atomicAdd. Double atomics make the result depend on
// the (nondeterministic) order of those few hundred adds only at the 1e-16 level.
extern "C" __global__ void sum_squares_multi(const unsigned long long* __restrict__ ptrs, const int* __restrict__ lens,
                                             int count, double* __restrict__ out) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int t = blockIdx.y; t < count; t += gridDim.y) {
        const float* xt = (const float*)ptrs[t];
        const unsigned len = (unsigned)lens[t];
        // Blocks with no element of this tensor skip the reduction and the atomic; the condition
        // is uniform across the block, so the barriers inside block_sum stay matched.
        if (blockIdx.x * blockDim.x >= len) continue;
        double s = 0.0;
        for (unsigned i = mg::ew_start(); i < len; i += mg::ew_stride()) {
            const double v = (double)xt[i];
            s += v * v;
        }
        s = mg::block_sum(s, scratch);
        if (threadIdx.x == 0) atomicAdd(out, s);
    }
}

SIM_EXPORT(sum_rows)
SIM_EXPORT(channel_sums)
SIM_EXPORT(sum_squares_multi)
