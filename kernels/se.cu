// Squeeze-and-excitation: the two backward passes over the [N, C, H, W] activation, the minimum
// (dgate needs Σ dy·x over a whole plane before any dx can be written):
//   pass 1, channel_dot:       read dy and x  -> dgate[p] = Σ dy·x     (one block per plane)
//   pass 2, se_backward_input: read dy, write dx = dy·gate[p] + dsq[p]/hw
// The forward's passes are pool.cu's global_avgpool_forward (read x) and channel_scale_forward
// (read x, write y); the excitation MLP between them is excite.cu. Planes too large for one
// block per plane to fill the GPU are split over several blocks by plane_split.cu.
#include "common.cuh"
#include "device.cuh"
#include "plane.cuh"

// d[p] = Σ over plane p of a·b, one block per plane (grid-stride), double accumulation (as the
// CPU backend), float4 loads where a and b share their alignment (mg::range_sum).
extern "C" __global__ void channel_dot(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ d,
                                       int planes, int hw) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int p = blockIdx.x; p < planes; p += gridDim.x) {
        const size_t o = (size_t)p * hw;
        const double s = mg::block_sum(mg::range_sum<true>(a + o, b + o, hw), scratch);
        if (threadIdx.x == 0) d[p] = (float)s;
    }
}

// dx = dy * gate[p] + dsq[p] / hw: the scale's gradient and the squeeze's (spread evenly over the
// plane it averaged) in one pass; float4 when dy and dx are 16-byte aligned.
extern "C" __global__ void se_backward_input(const float* __restrict__ dy, const float* __restrict__ gate,
                                             const float* __restrict__ dsq, float* __restrict__ dx, int planes,
                                             int hw) {
    // The CPU backend rounds 1/hw from double; do the same so both sides multiply by one value.
    const float inv = hw > 0 ? (float)(1.0 / (double)hw) : 0.0f;
    mg::plane_affine<true>(dy, gate, dsq, inv, dx, (unsigned)planes * (unsigned)hw, (unsigned)hw);
}

SIM_EXPORT(channel_dot)
SIM_EXPORT(se_backward_input)
