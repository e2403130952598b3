// Squeeze-and-excitation: the two backward passes over the [N, C, H, W] activation.
// The forward reuses pool.cu (global_avgpool_forward, channel_scale_forward); the excitation MLP
// (512 -> 32 -> 512) is a pair of tiny GEMMs. Unfused, the backward would read and write the
// activation five times (scale backward, squeeze backward, and summing the two input gradients);
// here it is two: channel_dot (dy and x in) and se_backward_input (dy in, dx out).
#include "common.cuh"
#include "device.cuh"

// d[p] = sum over plane p of a*b, one block per plane, double accumulation (as the CPU backend).
extern "C" __global__ void channel_dot(const float* a, const float* b, float* d, int planes, int hw) {
    int p = blockIdx.x;
    if (p >= planes) return;
    const float* ap = a + (long long)p * hw;
    const float* bp = b + (long long)p * hw;
    __shared__ double scratch[mg::kMaxWarps];
    double s = 0.0;
    for (int i = threadIdx.x; i < hw; i += blockDim.x) s += (double)ap[i] * (double)bp[i];
    s = mg::block_sum(s, scratch);
    if (threadIdx.x == 0) d[p] = (float)s;
}

// dx = dy * gate[p] + dsq[p] / hw: the scale's gradient and the squeeze's (spread evenly over the
// plane it averaged) in one pass.
extern "C" __global__ void se_backward_input(const float* dy, const float* gate, const float* dsq, float* dx,
                                             int planes, int hw) {
    const unsigned n = (unsigned)planes * (unsigned)hw;
    // The CPU backend rounds 1/hw from double; do the same so both sides multiply by one value.
    const float inv = (float)(1.0 / (double)hw);
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const int p = (int)(i / (unsigned)hw);
        dx[i] = dy[i] * gate[p] + dsq[p] * inv;
    }
}

SIM_EXPORT(channel_dot)
SIM_EXPORT(se_backward_input)
