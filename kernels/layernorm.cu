// LayerNorm over the last axis of [rows, cols]: one warp per row for the statistics, the affine
// map and the input gradient (double sums, as engine/src/backend/cpu/layernorm.rs), and a deterministic
// γ/β gradient: partial column sums over fixed chunks of rows, then `sum_rows` (reduce.cu) adds the
// chunks in order.
#include "common.cuh"
#include "device.cuh"

// Two passes in double (mean, then squared deviations: no cancellation); y in float in the CPU's
// order, (x − mean)·invstd·γ + β with mean and invstd rounded to float first.
extern "C" __global__ void layernorm_forward(const float* __restrict__ x, const float* __restrict__ gamma,
                                             const float* __restrict__ beta, float* __restrict__ y,
                                             float* __restrict__ mean, float* __restrict__ invstd, int rows, int cols,
                                             float eps) {
    const unsigned lane = threadIdx.x % mg::kWarp, wpb = blockDim.x / mg::kWarp;
    for (unsigned row = blockIdx.x * wpb + threadIdx.x / mg::kWarp; row < (unsigned)rows; row += gridDim.x * wpb) {
        const float* xr = x + (size_t)row * cols;
        double s = 0.0;
        for (int j = lane; j < cols; j += mg::kWarp) s += (double)xr[j];
        const double mu = mg::warp_sum(s) / (double)cols;
        double q = 0.0;
        for (int j = lane; j < cols; j += mg::kWarp) {
            const double d = (double)xr[j] - mu;
            q += d * d;
        }
        const double var = mg::warp_sum(q) / (double)cols;
        const float mt = (float)mu, it = (float)(1.0 / sqrt(var + (double)eps));
        if (lane == 0) {
            mean[row] = mt;
            invstd[row] = it;
        }
        float* yr = y + (size_t)row * cols;
        for (int j = lane; j < cols; j += mg::kWarp) yr[j] = (xr[j] - mt) * it * gamma[j] + beta[j];
    }
}

// dx = invstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·γ, x̂ = (x − mean)·invstd, in double.
extern "C" __global__ void layernorm_backward_input(const float* __restrict__ dy, const float* __restrict__ x,
                                                    const float* __restrict__ gamma, const float* __restrict__ mean,
                                                    const float* __restrict__ invstd, float* __restrict__ dx,
                                                    int rows, int cols) {
    const unsigned lane = threadIdx.x % mg::kWarp, wpb = blockDim.x / mg::kWarp;
    for (unsigned row = blockIdx.x * wpb + threadIdx.x / mg::kWarp; row < (unsigned)rows; row += gridDim.x * wpb) {
        const size_t base = (size_t)row * cols;
        const double m = (double)mean[row], is = (double)invstd[row];
        double s1 = 0.0, s2 = 0.0;
        for (int j = lane; j < cols; j += mg::kWarp) {
            const double gh = (double)dy[base + j] * (double)gamma[j];
            s1 += gh;
            s2 += gh * ((double)x[base + j] - m) * is;
        }
        const double a = mg::warp_sum(s1) / (double)cols, b = mg::warp_sum(s2) / (double)cols;
        for (int j = lane; j < cols; j += mg::kWarp) {
            const double xhat = ((double)x[base + j] - m) * is;
            dx[base + j] = (float)(is * ((double)dy[base + j] * (double)gamma[j] - a - xhat * b));
        }
    }
}

// partial[k, c] = Σ dy·x̂ and partial[k, cols + c] = Σ dy over rows [k·chunk, (k+1)·chunk) of
// column c, in double, rounded to float: thread = column (a warp reads 32 adjacent columns of a
// row, coalesced), blockIdx.y = chunk (grid-strided).
extern "C" __global__ void layernorm_backward_params(const float* __restrict__ dy, const float* __restrict__ x,
                                                     const float* __restrict__ mean,
                                                     const float* __restrict__ invstd, float* __restrict__ partial,
                                                     int rows, int cols, int chunk) {
    const int chunks = (rows + chunk - 1) / chunk;
    for (int k = blockIdx.y; k < chunks; k += gridDim.y) {
        const int r0 = k * chunk, r1 = min(rows, r0 + chunk);
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
            double sg = 0.0, sb = 0.0;
            for (int r = r0; r < r1; ++r) {
                const size_t o = (size_t)r * cols + c;
                const double d = (double)dy[o];
                sg += d * ((double)x[o] - (double)mean[r]) * (double)invstd[r];
                sb += d;
            }
            partial[(size_t)k * 2 * cols + c] = (float)sg;
            partial[(size_t)k * 2 * cols + cols + c] = (float)sb;
        }
    }
}

SIM_EXPORT(layernorm_forward)
SIM_EXPORT(layernorm_backward_input)
SIM_EXPORT(layernorm_backward_params)
