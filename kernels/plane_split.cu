// The plane reductions of the SE squeeze (global_avgpool_forward) and the SE backward's first
// pass (channel_dot) for planes too large, and too few, for one block per plane to fill the GPU:
// each plane is cut into chunks of `chunk` floats (a multiple of 4, so every chunk keeps the
// plane's 16-byte phase), one block per (plane, chunk) writes its double partial sum, and
// plane_partials_combine adds a plane's partials in chunk order. Deterministic: no atomics, the
// same grid-independent order on every run.
#include "common.cuh"
#include "device.cuh"
#include "plane.cuh"

// part[p·gridDim.y + s] = Σ over chunk s = blockIdx.y of plane p (kDot: of a·b); grid
// [min(planes, 65535), splits], planes grid-stride over blockIdx.x.
template <bool kDot>
__device__ inline void partial_sums(const float* __restrict__ a, const float* __restrict__ b, double* __restrict__ part,
                                    int planes, int hw, int chunk) {
    __shared__ double scratch[mg::kMaxWarps];
    const int s = (int)blockIdx.y, splits = (int)gridDim.y;
    const int lo = s * chunk;
    const int len = lo < hw ? min(chunk, hw - lo) : 0;
    for (int p = blockIdx.x; p < planes; p += gridDim.x) {
        const size_t o = (size_t)p * hw + (size_t)lo;
        const double v = mg::block_sum(mg::range_sum<kDot>(a + o, b + o, len), scratch);
        if (threadIdx.x == 0) part[(size_t)p * splits + s] = v;
    }
}

extern "C" __global__ void plane_sum_partial(const float* __restrict__ x, double* __restrict__ part, int planes,
                                             int hw, int chunk) {
    partial_sums<false>(x, x, part, planes, hw, chunk);
}

extern "C" __global__ void plane_dot_partial(const float* __restrict__ a, const float* __restrict__ b,
                                             double* __restrict__ part, int planes, int hw, int chunk) {
    partial_sums<true>(a, b, part, planes, hw, chunk);
}

// out[p] = (Σ_s part[p·splits + s], s ascending) / div, rounded once to float (div = hw: the
// mean; 1: the dot). ew grid over planes.
extern "C" __global__ void plane_partials_combine(const double* __restrict__ part, float* __restrict__ out, int planes,
                                                  int splits, int div) {
    for (unsigned p = mg::ew_start(); p < (unsigned)planes; p += mg::ew_stride()) {
        double s = 0.0;
        for (int k = 0; k < splits; ++k) s += part[(size_t)p * splits + k];
        out[p] = (float)(s / (double)div);
    }
}

SIM_EXPORT(plane_sum_partial)
SIM_EXPORT(plane_dot_partial)
SIM_EXPORT(plane_partials_combine)
