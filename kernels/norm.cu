// Batch normalisation over NC(HW): per-channel statistics in double (many blocks per channel,
// partials combined in a fixed order: bit-identical from run to run),
// elementwise apply passes in float (forward) and double (backward), as
// engine/src/backend/cpu/norm.rs computes them.
#include "common.cuh"
#include "device.cuh"

// Batch mean and biased variance of each channel, in two kernels and without atomics.
//
// bn_stats: block (x, y) covers chunk y (mg::ChannelWalk::chunk_of_block: gridDim.y equal
// chunks of the channel's n·hw elements) of channels x, x + gridDim.x, … and stores the chunk's
// (count, mean, M2 = Σ(x − mean)²) as three doubles to parts[(ch·nparts + part0 + y)·3 + 0..2]
// ((0, 0, 0) for an empty chunk). A batch too large for 32-bit indices is launched in batch parts
// (x offset to the part's first sample, n its size), each writing its chunks at its own part0 of
// the channel's nparts slots, so that one bn_stats_combine merges the whole batch. One pass over x, still free of cancellation: each thread
// accumulates Σ(x − s) and Σ(x − s)² in double around its own first element s (a shift inside its
// own data, so the cancellation in Σ(x−s)² − (Σ(x−s))²/m is bounded by the thread's element count
// m, i.e. < 2^23·2^-53 relative even for adversarial data, and O(1)·2^-53 for real activations,
// e.g. a mean of 100 at sd 1). The threads' partial (count, mean, M2) are merged exactly with the
// parallel-axis rule M2 = Σ_t [M2_t + m_t·(mean_t − mean)²], whose terms are all non-negative.
// Reading x once halves the memory traffic of the CPU's two passes at equal accuracy.
extern "C" __global__ void bn_stats(const float* __restrict__ x, double* __restrict__ parts, int n, int c, int hw,
                                    int part0, int nparts) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s1 = 0.0, s2 = 0.0, shift = 0.0;
        int cnt = 0;
        auto it = mg::ChannelWalk::chunk_of_block(ch, n, c, hw);
        const double B = (double)it.count();  // the chunk's elements, over all threads
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
        const double bsum = mg::block_sum((double)cnt * tmean, scratch);
        const double bmean = B > 0.0 ? bsum / B : 0.0;
        const double dev = tmean - bmean;
        const double m2 = mg::block_sum(cnt > 0 ? tm2 + (double)cnt * dev * dev : 0.0, scratch);
        if (threadIdx.x == 0) {
            double* q = parts + ((size_t)ch * nparts + part0 + blockIdx.y) * 3;
            q[0] = B;
            q[1] = bmean;
            q[2] = m2;
        }
    }
}

// bn_stats_combine: one thread per channel merges its nparts chunk partials in order
// y = 0, 1, … with Chan's rule (mean += δ·n_b/n, M2 += M2_b + δ²·n_a·n_b/n: no cancellation),
// then var = M2/M, invstd = 1/sqrt(var + eps) and the momentum update of the running statistics
// (running_var with the unbiased variance, M/(M−1), or the biased one when M = 1, as PyTorch).
// `bias_shift` (nullable, [c]) is a constant the caller removed from x, the fused VGG unit's
// folded conv bias: the running mean tracks x + bias_shift.
extern "C" __global__ void bn_stats_combine(const double* __restrict__ parts, int nparts, float* __restrict__ mean,
                                            float* __restrict__ invstd, float* __restrict__ running_mean,
                                            float* __restrict__ running_var, const float* __restrict__ bias_shift,
                                            int n, int c, int hw, float momentum, float eps) {
    const double M = (double)n * (double)hw;
    for (unsigned ch = mg::ew_start(); ch < (unsigned)c; ch += mg::ew_stride()) {
        const double* q = parts + (size_t)ch * nparts * 3;
        double cnt = 0.0, bmean = 0.0, m2 = 0.0;
        for (int y = 0; y < nparts; ++y, q += 3) {
            const double nb = q[0];
            if (nb <= 0.0) continue;
            const double tot = cnt + nb, d = q[1] - bmean;
            bmean += d * (nb / tot);
            m2 += q[2] + d * d * (cnt * nb / tot);
            cnt = tot;
        }
        const double var = M > 0.0 ? m2 / M : 0.0;
        mean[ch] = (float)bmean;
        invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));
        const double mom = (double)momentum;
        const double unbiased = M > 1.0 ? var * M / (M - 1.0) : var;
        const double tracked = bmean + (bias_shift ? (double)bias_shift[ch] : 0.0);
        if (running_mean) running_mean[ch] = (float)((1.0 - mom) * (double)running_mean[ch] + mom * tracked);
        if (running_var) running_var[ch] = (float)((1.0 - mom) * (double)running_var[ch] + mom * unbiased);
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

// dβ = Σ dy, dγ = Σ dy·x̂ per channel, in double, in two kernels and without atomics.
// bn_backward_reduce: block (x, y) covers chunk y of channels x, x + gridDim.x, … (as bn_stats,
// batch parts too) and stores (Σ dy, Σ dy·(x − mean)) to parts[(ch·nparts + part0 + y)·2 + 0..1].
// bn_backward_combine adds a channel's parts in order y = 0, 1, … and multiplies Σ dy·(x − mean)
// by invstd once at the end: the same value as Σ dy·x̂ in exact arithmetic and one multiply per
// element fewer.
extern "C" __global__ void bn_backward_reduce(const float* __restrict__ dy, const float* __restrict__ x,
                                              const float* __restrict__ mean, double* __restrict__ parts, int n,
                                              int c, int hw, int part0, int nparts) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const double m = (double)mean[ch];
        double sd = 0.0, sdx = 0.0;
        auto it = mg::ChannelWalk::chunk_of_block(ch, n, c, hw);
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
            double* q = parts + ((size_t)ch * nparts + part0 + blockIdx.y) * 2;
            q[0] = sd;
            q[1] = sdx;
        }
    }
}

extern "C" __global__ void bn_backward_combine(const double* __restrict__ parts, int nparts,
                                               const float* __restrict__ invstd, float* __restrict__ dgamma,
                                               float* __restrict__ dbeta, int c) {
    for (unsigned ch = mg::ew_start(); ch < (unsigned)c; ch += mg::ew_stride()) {
        const double* q = parts + (size_t)ch * nparts * 2;
        double sd = 0.0, sdx = 0.0;
        for (int y = 0; y < nparts; ++y, q += 2) {
            sd += q[0];
            sdx += q[1];
        }
        dbeta[ch] = (float)sd;
        dgamma[ch] = (float)(sdx * (double)invstd[ch]);
    }
}

// dx = γ·invstd/M · (M·dy − dβ − x̂·dγ), evaluated in double as the CPU does: M·dy and dβ are
// nearly equal when the gradient is nearly constant over the channel, and float would lose the
// difference. M = batch·hw counts the whole batch's elements; n (≤ batch) is the samples this
// launch covers (a batch part when the batch is too large for 32-bit indices).
extern "C" __global__ void bn_backward_apply(const float* __restrict__ dy, const float* __restrict__ x,
                                             const float* __restrict__ gamma, const float* __restrict__ mean,
                                             const float* __restrict__ invstd, const float* __restrict__ dgamma,
                                             const float* __restrict__ dbeta, float* __restrict__ dx, int n, int c,
                                             int hw, int batch) {
    const unsigned total = (unsigned)n * (unsigned)c * (unsigned)hw;
    if (total == 0) return;
    const double M = (double)batch * (double)hw;
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
SIM_EXPORT(bn_stats_combine)
SIM_EXPORT(bn_eval_invstd)
SIM_EXPORT(bn_apply)
SIM_EXPORT(bn_backward_reduce)
SIM_EXPORT(bn_backward_combine)
SIM_EXPORT(bn_backward_apply)
