// Mean-reduced losses. Forwards reduce in double with one block (the ABI's grid 1; losses see a
// batch of a few hundred values at most) and write a 1-element buffer; backwards are elementwise
// and read the 1-element upstream gradient dl. Operation order follows engine/src/backend/cpu/loss.rs.
#include "common.cuh"
#include "device.cuh"

// Σ (p − t)² / n, the difference and square in double (the CPU's to_f64 first).
// Only block 0 works: extra blocks of a larger grid would otherwise write the same value racily.
extern "C" __global__ void mse_forward(const float* __restrict__ p, const float* __restrict__ t,
                                       float* __restrict__ out, int n) {
    __shared__ double scratch[mg::kMaxWarps];
    if (blockIdx.x != 0) return;
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const double d = (double)p[i] - (double)t[i];
        s += d * d;
    }
    s = mg::block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = (float)(s / (double)n);
}

// dp = k·(p − t) with k = 2·dl/n rounded to float once, as the CPU computes it.
extern "C" __global__ void mse_backward(const float* __restrict__ p, const float* __restrict__ t,
                                        const float* __restrict__ dl, float* __restrict__ dp, int n) {
    const float k = (float)(2.0 * (double)dl[0] / (double)n);
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) dp[i] = k * (p[i] - t[i]);
}

extern "C" __global__ void l1_forward(const float* __restrict__ p, const float* __restrict__ t,
                                      float* __restrict__ out, int n) {
    __shared__ double scratch[mg::kMaxWarps];
    if (blockIdx.x != 0) return;
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += fabs((double)p[i] - (double)t[i]);
    s = mg::block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = (float)(s / (double)n);
}

// dl·sign(p − t)/n with sign(0) = 0 (torch.sign); a NaN operand gives 0, as the CPU's comparisons.
extern "C" __global__ void l1_backward(const float* __restrict__ p, const float* __restrict__ t,
                                       const float* __restrict__ dl, float* __restrict__ dp, int n) {
    const float k = (float)((double)dl[0] / (double)n);
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) {
        const float a = p[i], b = t[i];
        dp[i] = a > b ? k : (a < b ? -k : 0.0f);
    }
}

// mean over rows of logsumexp(row) − logit[label]. One warp per row (lanes split the classes,
// warp max and sum in double); block 0 only, like the other loss forwards. A label outside
// [0, classes) yields NaN rather than reading out of bounds (the CPU would panic).
extern "C" __global__ void cross_entropy_forward(const float* __restrict__ logits, const unsigned int* __restrict__ labels,
                                                 float* __restrict__ out, int rows, int classes) {
    __shared__ double scratch[mg::kMaxWarps];
    if (blockIdx.x != 0) return;
    const int lane = threadIdx.x % mg::kWarp, warp = threadIdx.x / mg::kWarp;
    const int nwarps = blockDim.x / mg::kWarp;
    double acc = 0.0;  // meaningful on lane 0 of each warp
    for (int r = warp; r < rows; r += nwarps) {
        const float* row = logits + (size_t)r * classes;
        double m = -(double)INFINITY;
        for (int j = lane; j < classes; j += mg::kWarp) m = fmax(m, (double)row[j]);
        m = mg::warp_max(m);
        double s = 0.0;
        for (int j = lane; j < classes; j += mg::kWarp) s += exp((double)row[j] - m);
        s = mg::warp_sum(s);
        if (lane == 0) {
            const unsigned lab = labels[r];
            const double picked = lab < (unsigned)classes ? (double)row[lab] : (double)__int_as_float(0x7fc00000);  // quiet NaN
            acc += m + log(s) - picked;
        }
    }
    acc = mg::block_sum(acc, scratch);
    if (threadIdx.x == 0) out[0] = (float)(acc / (double)rows);
}

// dx = dl·(softmax − onehot)/rows, in double. One warp per row (block 256 = 8 rows, rows
// grid-strided by warps): the lanes find the row's maximum (NaN-ignoring, like the CPU's f64::max
// fold) and Σ exp(v − max) once, then write their share of the row, so a row costs O(classes)
// reads however wide the softmax is. (The earlier elementwise form recomputed the log-sum-exp for
// every element: O(classes²) per row.) The branches are uniform across the warp.
extern "C" __global__ void cross_entropy_backward(const float* __restrict__ logits, const unsigned int* __restrict__ labels,
                                                  const float* __restrict__ dl, float* __restrict__ dx, int rows,
                                                  int classes) {
    const unsigned lane = threadIdx.x % mg::kWarp, wpb = blockDim.x / mg::kWarp;
    const double g = (double)dl[0];
    for (unsigned r = blockIdx.x * wpb + threadIdx.x / mg::kWarp; r < (unsigned)rows; r += gridDim.x * wpb) {
        const float* row = logits + (size_t)r * classes;
        double m = -(double)INFINITY;
        for (int j = lane; j < classes; j += mg::kWarp) m = fmax(m, (double)row[j]);
        m = mg::warp_max(m);
        double s = 0.0;
        for (int j = lane; j < classes; j += mg::kWarp) s += exp((double)row[j] - m);
        const double lse = m + log(mg::warp_sum(s));
        const unsigned lab = labels[r];
        for (int j = lane; j < classes; j += mg::kWarp) {
            const double ls = (double)row[j] - lse;
            const double onehot = lab == (unsigned)j ? 1.0 : 0.0;
            dx[(size_t)r * classes + j] = (float)(g * (exp(ls) - onehot) / (double)rows);
        }
    }
}

SIM_EXPORT(mse_forward)
SIM_EXPORT(mse_backward)
SIM_EXPORT(l1_forward)
SIM_EXPORT(l1_backward)
SIM_EXPORT(cross_entropy_forward)
SIM_EXPORT(cross_entropy_backward)
