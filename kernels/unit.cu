// The fused VGG unit: BatchNorm → ReLU → optional 2×2/2 max-pool over a bias-free
// conv output z, as engine/src/backend/cpu/unit.rs computes it. Forward reads z once and writes only the
// (pooled) output; nothing but z is saved: the backward recomputes the ReLU mask and the pool's
// arg-max from z (unit_route), then reuses norm.cu's bn_backward_reduce / bn_backward_apply on the
// routed gradient. The batch statistics are norm.cu's bn_stats with the folded bias as its shift.
#include "common.cuh"
#include "device.cuh"

namespace {

// a = (z − mean)·(invstd·γ) + β with the scale rounded first, as bn_apply and the CPU.
struct UnitAct {
    float mean, scale, beta;
    __device__ inline UnitAct(const float* mean_, const float* invstd, const float* gamma, const float* beta_,
                              unsigned ch)
        : mean(mean_[ch]), scale(invstd[ch] * gamma[ch]), beta(beta_[ch]) {}
    __device__ inline float pre(float z) const { return (z - mean) * scale + beta; }
    // ReLU as relu_forward: NaN maps to 0 (the comparison fails).
    __device__ inline float relu(float z) const {
        const float v = pre(z);
        return v > 0.0f ? v : 0.0f;
    }
};

// Maximum of four and its place (row-major): strictly greater wins, so ties keep the first, and a
// NaN wins, as maxpool2d_forward's scan.
__device__ inline int window_max(const float (&v)[4], float& best) {
    int at = 0;
    best = v[0];
    MG_UNROLL
    for (int k = 1; k < 4; ++k) {
        if (v[k] > best || isnan(v[k])) {
            best = v[k];
            at = k;
        }
    }
    return at;
}

}  // namespace

// Evaluation statistics: mean = running_mean − bias (bias nullable), invstd = 1/sqrt(rv + eps).
extern "C" __global__ void unit_running_stats(const float* __restrict__ bias, const float* __restrict__ running_mean,
                                              const float* __restrict__ running_var, float* __restrict__ mean,
                                              float* __restrict__ invstd, int c, float eps) {
    for (unsigned i = mg::ew_start(); i < (unsigned)c; i += mg::ew_stride()) {
        mean[i] = running_mean[i] - (bias ? bias[i] : 0.0f);
        invstd[i] = (float)(1.0 / sqrt((double)running_var[i] + (double)eps));
    }
}

// y = maxpool2x2(relu(a)) (pool = 1) or relu(a) (pool = 0): one thread per output element,
// grid-stride. Pooled outputs are [n, c, h/2, w/2] (floor).
extern "C" __global__ void unit_forward(const float* __restrict__ z, const float* __restrict__ mean,
                                        const float* __restrict__ invstd, const float* __restrict__ gamma,
                                        const float* __restrict__ beta, float* __restrict__ y, int n, int c, int h,
                                        int w, int pool) {
    const unsigned oh = pool ? (unsigned)h / 2 : (unsigned)h, ow = pool ? (unsigned)w / 2 : (unsigned)w;
    const unsigned ohw = oh * ow, total = (unsigned)n * (unsigned)c * ohw;
    if (total == 0) return;
    mg::DivWalk it(mg::ew_start(), mg::ew_stride(), ohw);
    mg::ModTrack ch(it.q, it.dq, (unsigned)c);
    for (; it.i < total; ch.next(it.next())) {
        const UnitAct act(mean, invstd, gamma, beta, ch.v);
        const size_t plane = (size_t)it.q * (unsigned)h * (unsigned)w;
        if (!pool) {
            y[it.i] = act.relu(z[plane + it.r]);
            continue;
        }
        const unsigned oy = it.r / ow, ox = it.r - oy * ow;
        const size_t r0 = plane + (size_t)(2 * oy) * (unsigned)w + 2 * ox, r1 = r0 + (unsigned)w;
        const float v[4] = {act.relu(z[r0]), act.relu(z[r0 + 1]), act.relu(z[r1]), act.relu(z[r1 + 1])};
        float best;
        window_max(v, best);
        y[it.i] = best;
    }
}

// da, the gradient at BatchNorm's output, over z's shape. pool = 0: one thread per element,
// da = dy where a > 0. pool = 1: one thread per 2×2 cell of the ceil((h)/2)×ceil(w/2) grid, so
// every element of z is written exactly once (no zero fill, no atomics): a full window sends dy
// to its arg-max when ReLU passed it (the maximum is > 0 exactly then), zeros elsewhere; the
// cells of an odd last row or column, which the floor-mode pool drops, get zeros.
extern "C" __global__ void unit_route(const float* __restrict__ dy, const float* __restrict__ z,
                                      const float* __restrict__ mean, const float* __restrict__ invstd,
                                      const float* __restrict__ gamma, const float* __restrict__ beta,
                                      float* __restrict__ da, int n, int c, int h, int w, int pool) {
    const unsigned hw = (unsigned)h * (unsigned)w;
    if (!pool) {
        const unsigned total = (unsigned)n * (unsigned)c * hw;
        if (total == 0) return;
        mg::DivWalk it(mg::ew_start(), mg::ew_stride(), hw);
        mg::ModTrack ch(it.q, it.dq, (unsigned)c);
        for (; it.i < total; ch.next(it.next())) {
            const UnitAct act(mean, invstd, gamma, beta, ch.v);
            da[it.i] = act.pre(z[it.i]) > 0.0f ? dy[it.i] : 0.0f;
        }
        return;
    }
    const unsigned oh = (unsigned)h / 2, ow = (unsigned)w / 2;
    const unsigned cells_h = ((unsigned)h + 1) / 2, cells_w = ((unsigned)w + 1) / 2;
    const unsigned cells = cells_h * cells_w, total = (unsigned)n * (unsigned)c * cells;
    if (total == 0) return;
    mg::DivWalk it(mg::ew_start(), mg::ew_stride(), cells);
    mg::ModTrack ch(it.q, it.dq, (unsigned)c);
    for (; it.i < total; ch.next(it.next())) {
        const unsigned cy = it.r / cells_w, cx = it.r - cy * cells_w;
        const size_t plane = (size_t)it.q * hw;
        const size_t r0 = plane + (size_t)(2 * cy) * (unsigned)w + 2 * cx, r1 = r0 + (unsigned)w;
        if (cy >= oh || cx >= ow) {
            // A partial cell: the elements that exist, outside every window.
            const bool right = 2 * cx + 1 < (unsigned)w, below = 2 * cy + 1 < (unsigned)h;
            da[r0] = 0.0f;
            if (right) da[r0 + 1] = 0.0f;
            if (below) da[r1] = 0.0f;
            if (right && below) da[r1 + 1] = 0.0f;
            continue;
        }
        const UnitAct act(mean, invstd, gamma, beta, ch.v);
        const float v[4] = {act.relu(z[r0]), act.relu(z[r0 + 1]), act.relu(z[r1]), act.relu(z[r1 + 1])};
        float best;
        const int at = window_max(v, best);
        const float g = best > 0.0f ? dy[(size_t)it.q * oh * ow + (size_t)cy * ow + cx] : 0.0f;
        da[r0] = at == 0 ? g : 0.0f;
        da[r0 + 1] = at == 1 ? g : 0.0f;
        da[r1] = at == 2 ? g : 0.0f;
        da[r1 + 1] = at == 3 ? g : 0.0f;
    }
}

SIM_EXPORT(unit_running_stats)
SIM_EXPORT(unit_forward)
SIM_EXPORT(unit_route)
