// Elementwise kernels: arithmetic, activations (forward and backward side by side), dropout
// masks, row bias, column concat/split and the non-finite counter.
//
// All are memory-bound grid-stride loops under the ABI's EW(n) launch (block 256, grid
// min(ceil(n/256), 4096)); each computes exactly what engine/src/backend/cpu/pointwise.rs and dense.rs
// compute, in the same operation order, so results agree to the last bit except where nvcc fuses
// a multiply-add (≤ 1 ulp, covered by the tests' tolerances).
#include "common.cuh"
#include "device.cuh"

// ---- arithmetic ---------------------------------------------------------------------------

extern "C" __global__ void fill_f32(float* __restrict__ y, int n, float value) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) y[i] = value;
}

extern "C" __global__ void add_f32(const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) y[i] = a[i] + b[i];
}

extern "C" __global__ void mul_f32(const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) y[i] = a[i] * b[i];
}

extern "C" __global__ void add_assign_f32(float* __restrict__ dst, const float* __restrict__ src, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) dst[i] += src[i];
}

extern "C" __global__ void scale_assign_f32(float* __restrict__ x, int n, float s) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) x[i] *= s;
}

// ---- activations --------------------------------------------------------------------------

// op: 0 ReLU, 1 sigmoid, 2 tanh, 3 GELU (erf form), 4 GELU (tanh form). `op` is uniform across the grid, so the
// switch costs one well-predicted branch per element, not divergence.
extern "C" __global__ void unary_forward(int op, const float* __restrict__ x, float* __restrict__ y, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) {
        const float v = x[i];
        float r;
        switch (op) {
            case 0: r = v > 0.0f ? v : 0.0f; break;  // NaN -> 0, as the CPU's `v > 0`
            case 1: r = 1.0f / (1.0f + expf(-v)); break;
            case 2: r = tanhf(v); break;
            case 4: r = mg::gelu_tanh(v); break;
            default: r = mg::gelu(v); break;
        }
        y[i] = r;
    }
}

// Written in terms of the saved output y where the CPU does (ReLU y>0, sigmoid, tanh) and the
// input x for both GELUs. x is not read for the other ops, so callers may pass y (or anything) for it.
extern "C" __global__ void unary_backward(int op, const float* __restrict__ x, const float* __restrict__ y,
                                          const float* __restrict__ dy, float* __restrict__ dx, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) {
        const float d = dy[i];
        float r;
        switch (op) {
            case 0: r = y[i] > 0.0f ? d : 0.0f; break;
            case 1: {
                const float s = y[i];
                r = d * s * (1.0f - s);
                break;
            }
            case 2: {
                const float t = y[i];
                r = d * (1.0f - t * t);
                break;
            }
            case 4: r = d * mg::gelu_tanh_grad(x[i]); break;
            default: r = d * mg::gelu_grad(x[i]); break;
        }
        dx[i] = r;
    }
}

// ReLU that also writes its backward's only input: mask[i] = (x[i] > 0) as a byte, a quarter of
// the f32 output PyTorch saves. NaN gives 0 and mask 0 (`v > 0` is false), as the CPU.
extern "C" __global__ void relu_forward_mask(const float* __restrict__ x, float* __restrict__ y,
                                             unsigned char* __restrict__ mask, int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) {
        const float v = x[i];
        const bool on = v > 0.0f;
        y[i] = on ? v : 0.0f;
        mask[i] = on ? 1 : 0;
    }
}

// dx = mask ? dy : 0. dx may be dy itself (the backward writes over its incoming gradient):
// each thread reads element i before writing it, so no __restrict__ on dy/dx.
extern "C" __global__ void relu_backward_mask(const float* dy, const unsigned char* __restrict__ mask, float* dx,
                                              int n) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) dx[i] = mask[i] ? dy[i] : 0.0f;
}

// Inverted dropout: element i is dropped iff hash_uniform(seed, i) < p, decided from (seed, i)
// alone so every backend and every launch shape draws the same mask.
extern "C" __global__ void dropout_mask(float* __restrict__ mask, int n, float p, unsigned long long seed) {
    const double pd = (double)p;
    // The CPU rounds 1/(1-p) from double once; do the same rather than dividing in float.
    const float keep = (float)(1.0 / (1.0 - pd));
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride())
        mask[i] = mg::hash_uniform(seed, (unsigned long long)i) < pd ? 0.0f : keep;
}

// ---- row/column bookkeeping for linear layers ----------------------------------------------

// y[r, c] += bias[c] over a [rows, cols] matrix; the column is tracked without dividing.
extern "C" __global__ void add_row_bias(float* __restrict__ y, const float* __restrict__ bias, int rows, int cols) {
    const unsigned n = (unsigned)rows * (unsigned)cols;
    if (n == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)cols); w.i < n; w.next()) y[w.i] += bias[w.r];
}

// [rows, ca] ++ [rows, cb] -> [rows, ca + cb]. Indexed by the output so its writes coalesce.
extern "C" __global__ void concat_cols(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ y, int rows, int ca, int cb) {
    const unsigned wd = (unsigned)(ca + cb);
    const unsigned n = (unsigned)rows * wd;
    if (n == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), wd); w.i < n; w.next()) {
        const unsigned r = w.q, c = w.r;
        y[w.i] = c < (unsigned)ca ? a[r * (unsigned)ca + c] : b[r * (unsigned)cb + (c - (unsigned)ca)];
    }
}

// The inverse of concat_cols. Indexed by the input so its reads coalesce.
extern "C" __global__ void split_cols(const float* __restrict__ x, float* __restrict__ a, float* __restrict__ b,
                                      int rows, int ca, int cb) {
    const unsigned wd = (unsigned)(ca + cb);
    const unsigned n = (unsigned)rows * wd;
    if (n == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), wd); w.i < n; w.next()) {
        const unsigned r = w.q, c = w.r;
        if (c < (unsigned)ca)
            a[r * (unsigned)ca + c] = x[w.i];
        else
            b[r * (unsigned)cb + (c - (unsigned)ca)] = x[w.i];
    }
}

// ---- checks -------------------------------------------------------------------------------

// One atomicAdd per NaN/Inf: non-finite values are rare (the counter exists to detect them), so
// the atomics cost nothing on the healthy path; *count is zeroed by the caller.
extern "C" __global__ void count_nonfinite(const float* __restrict__ x, int n, unsigned int* __restrict__ count) {
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride())
        if (!isfinite(x[i])) atomicAdd(count, 1u);
}

SIM_EXPORT(fill_f32)
SIM_EXPORT(add_f32)
SIM_EXPORT(mul_f32)
SIM_EXPORT(add_assign_f32)
SIM_EXPORT(scale_assign_f32)
SIM_EXPORT(unary_forward)
SIM_EXPORT(unary_backward)
SIM_EXPORT(relu_forward_mask)
SIM_EXPORT(relu_backward_mask)
SIM_EXPORT(dropout_mask)
SIM_EXPORT(add_row_bias)
SIM_EXPORT(concat_cols)
SIM_EXPORT(split_cols)
SIM_EXPORT(count_nonfinite)
