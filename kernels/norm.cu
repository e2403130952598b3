// Batch normalisation over NC(HW): per-channel statistics in double (one block per channel),
// elementwise apply passes in float (forward) and double (backward), as
// src/backend/cpu/norm.rs computes them.
#include "common.cuh"
#include "device.cuh"

// Batch mean and biased variance of each channel, then invstd = 1/sqrt(var + eps) and the
// momentum update of the running statistics (running_var with the unbiased variance, M/(M−1),
// or the biased one when M = 1, as PyTorch). `bias_shift` (nullable, [c]) is a constant the caller
// removed from x, the fused VGG unit's folded conv bias: the running mean tracks x + bias_shift.
//
// One pass over x, still free of cancellation: each thread accumulates Σ(x − s) and Σ(x − s)² in
// double around its own first element s (a shift inside its own data, so the cancellation in
// Σ(x−s)² − (Σ(x−s))²/m is bounded by the thread's element count m ≤ M/256, i.e. < 2^23·2^-53
// relative even for adversarial data, and O(1)·2^-53 for real activations). The threads' partial
// (count, mean, M2) are then merged exactly with the parallel-axis rule
// M2 = Σ_t [M2_t + m_t·(mean_t − mean)²], whose terms are all non-negative. Reading x once halves
// the memory traffic of the CPU's two passes at equal accuracy.
extern "C" __global__ void bn_stats(const float* __restrict__ x, float* __restrict__ mean, float* __restrict__ invstd,
                                    float* __restrict__ running_mean, float* __restrict__ running_var,
                                    const float* __restrict__ bias_shift, int n, int c, int hw, float momentum,
                                    float eps) {
    __shared__ double scratch[mg::kMaxWarps];
    const double M = (double)n * (double)hw;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s1 = 0.0, s2 = 0.0, shift = 0.0;
        int cnt = 0;
        mg::ChannelWalk it(ch, n, c, hw);
        for (;;) {
            float v[mg::kGather];
            const int k = it.gather(x, v);
            if (k == 0) break;
            if (cnt == 0) shift = (double)v[0];
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) {
                if (u < k) {
                    const double d = (double)v[u] - shift;
                    s1 += d;
                    s2 += d * d;
                }
            }
            cnt += k;
            if (k < mg::kGather) break;
        }
        const double tmean = cnt > 0 ? shift + s1 / cnt : 0.0;
        const double tm2 = cnt > 0 ? fmax(s2 - s1 * s1 / cnt, 0.0) : 0.0;
        const double bmean = mg::block_sum((double)cnt * tmean, scratch) / M;
        const double dev = tmean - bmean;
        const double m2 = mg::block_sum(tm2 + (double)cnt * dev * dev, scratch);
        if (threadIdx.x == 0) {
            const double var = m2 / M;
            mean[ch] = (float)bmean;
            invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));
            const double mom = (double)momentum;
            const double unbiased = M > 1.0 ? var * M / (M - 1.0) : var;
            const double tracked = bmean + (bias_shift ? (double)bias_shift[ch] : 0.0);
            if (running_mean) running_mean[ch] = (float)((1.0 - mom) * (double)running_mean[ch] + mom * tracked);
            if (running_var) running_var[ch] = (float)((1.0 - mom) * (double)running_var[ch] + mom * unbiased);
        }
    }
}

// invstd = 1/sqrt(running_var + eps) for evaluation mode (then bn_apply with the running mean).
extern "C" __global__ void bn_eval_invstd(const float* __restrict__ running_var, float* __restrict__ invstd, int c,
                                          float eps) {
    for (unsigned i = mg::ew_start(); i < (unsigned)c; i += mg::ew_stride())
        invstd[i] = (float)(1.0 / sqrt((double)running_var[i] + (double)eps));
}

// y = (x − mean)·(invstd·γ) + β, in float like the CPU (scale = invstd·γ rounded first).
// The channel of element i is (i / hw) mod c, tracked with add-and-carry (no division per element).
extern "C" __global__ void bn_apply(const float* __restrict__ x, const float* __restrict__ gamma,
                                    const float* __restrict__ beta, const float* __restrict__ mean,
                                    const float* __restrict__ invstd, float* __restrict__ y, int n, int c, int hw) {
    const unsigned total = (unsigned)n * (unsigned)c * (unsigned)hw;
    if (total == 0) return;
    mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)hw);
    mg::ModTrack ch(w.q, w.dq, (unsigned)c);
    for (; w.i < total; ch.next(w.next())) {
        const unsigned k = ch.v;
        const float scale = invstd[k] * gamma[k];
        y[w.i] = (x[w.i] - mean[k]) * scale + beta[k];
    }
}

// dβ = Σ dy, dγ = Σ dy·x̂ per channel, in double. Σ dy·(x − mean) is accumulated and multiplied by
// invstd once at the end: the same value in exact arithmetic and one multiply per element fewer.
extern "C" __global__ void bn_backward_reduce(const float* __restrict__ dy, const float* __restrict__ x,
                                              const float* __restrict__ mean, const float* __restrict__ invstd,
                                              float* __restrict__ dgamma, float* __restrict__ dbeta, int n, int c,
                                              int hw) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const double m = (double)mean[ch];
        double sd = 0.0, sdx = 0.0;
        mg::ChannelWalk it(ch, n, c, hw);
        for (;;) {
            float d[mg::kGather], xv[mg::kGather];
            const int k = it.gather2(dy, x, d, xv);
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) {
                if (u < k) {
                    sd += (double)d[u];
                    sdx += (double)d[u] * ((double)xv[u] - m);
                }
            }
            if (k < mg::kGather) break;
        }
        sd = mg::block_sum(sd, scratch);
        sdx = mg::block_sum(sdx, scratch);
        if (threadIdx.x == 0) {
            dbeta[ch] = (float)sd;
            dgamma[ch] = (float)(sdx * (double)invstd[ch]);
        }
    }
}

// dx = γ·invstd/M · (M·dy − dβ − x̂·dγ), evaluated in double as the CPU does: M·dy and dβ are
// nearly equal when the gradient is nearly constant over the channel, and float would lose the
// difference.
extern "C" __global__ void bn_backward_apply(const float* __restrict__ dy, const float* __restrict__ x,
                                             const float* __restrict__ gamma, const float* __restrict__ mean,
                                             const float* __restrict__ invstd, const float* __restrict__ dgamma,
                                             const float* __restrict__ dbeta, float* __restrict__ dx, int n, int c,
                                             int hw) {
    const unsigned total = (unsigned)n * (unsigned)c * (unsigned)hw;
    if (total == 0) return;
    const double M = (double)n * (double)hw;
    mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)hw);
    mg::ModTrack ch(w.q, w.dq, (unsigned)c);
    for (; w.i < total; ch.next(w.next())) {
        const unsigned k = ch.v;
        const double is = (double)invstd[k];
        const double xhat = ((double)x[w.i] - (double)mean[k]) * is;
        const double scale = (double)gamma[k] * is / M;
        dx[w.i] = (float)(scale * (M * (double)dy[w.i] - (double)dbeta[k] - xhat * (double)dgamma[k]));
    }
}

SIM_EXPORT(bn_stats)
SIM_EXPORT(bn_eval_invstd)
SIM_EXPORT(bn_apply)
SIM_EXPORT(bn_backward_reduce)
SIM_EXPORT(bn_backward_apply)
