// Max-pool with arg-max, global average pool, and per-plane scaling (the squeeze-and-excitation
// gate), forward and backward, as engine/src/backend/cpu/pool.rs computes them.
#include "common.cuh"
#include "device.cuh"
#include "plane.cuh"

// One thread per output element (floor mode, no padding). The window is scanned in row-major
// order with a strict `>`: ties keep the first maximum, as PyTorch; a NaN replaces the running
// maximum whenever it is met (so the last NaN of the window wins), exactly the CPU's loop.
// argmax is the maximum's position inside its window, ki·k + kj, as one byte (k ≤ 16).
extern "C" __global__ void maxpool2d_forward(const float* __restrict__ x, float* __restrict__ y,
                                             unsigned char* __restrict__ argmax, int n, int c, int h, int w, int k,
                                             int stride, int oh, int ow) {
    const unsigned ohw = (unsigned)oh * (unsigned)ow;
    const unsigned total = (unsigned)n * (unsigned)c * ohw;
    if (total == 0) return;
    for (mg::DivWalk it(mg::ew_start(), mg::ew_stride(), ohw); it.i < total; it.next()) {
        const unsigned plane = it.q;
        const unsigned oy = it.r / (unsigned)ow, ox = it.r - oy * (unsigned)ow;
        const unsigned corner = plane * (unsigned)h * (unsigned)w + oy * (unsigned)stride * (unsigned)w + ox * (unsigned)stride;
        unsigned best = 0;
        float bv = x[corner];
        for (int ki = 0; ki < k; ++ki) {
            const unsigned row = corner + (unsigned)ki * (unsigned)w;
            for (int kj = 0; kj < k; ++kj) {
                const float v = x[row + kj];
                if (v > bv || isnan(v)) {
                    bv = v;
                    best = (unsigned)(ki * k + kj);
                }
            }
        }
        y[it.i] = bv;
        argmax[it.i] = (unsigned char)best;
    }
}

// One thread per input element: dx = Σ dy over the windows whose maximum it is. A gather, not a
// scatter, so no atomics and no zero fill, and the sum over overlapping windows (stride < k)
// runs in window order: deterministic, and the CPU's order.
extern "C" __global__ void maxpool2d_backward(const float* __restrict__ dy, const unsigned char* __restrict__ argmax,
                                              float* __restrict__ dx, int n, int c, int h, int w, int k, int stride,
                                              int oh, int ow) {
    const unsigned hw = (unsigned)h * (unsigned)w;
    const unsigned total = (unsigned)n * (unsigned)c * hw;
    if (total == 0) return;
    for (mg::DivWalk it(mg::ew_start(), mg::ew_stride(), hw); it.i < total; it.next()) {
        const int iy = (int)(it.r / (unsigned)w), ix = (int)(it.r % (unsigned)w);
        // Windows oy with oy·s ≤ iy < oy·s + k, inside the output.
        const int oy0 = iy >= k ? (iy - k) / stride + 1 : 0, oy1 = min(iy / stride, oh - 1);
        const int ox0 = ix >= k ? (ix - k) / stride + 1 : 0, ox1 = min(ix / stride, ow - 1);
        const size_t base = (size_t)it.q * (unsigned)oh * (unsigned)ow;
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                const size_t o = base + (unsigned)oy * (unsigned)ow + (unsigned)ox;
                if ((int)argmax[o] == (iy - oy * stride) * k + (ix - ox * stride)) acc += dy[o];
            }
        }
        dx[it.i] = acc;
    }
}

// y[p] = mean of plane p: Σ in double, divided in double, rounded once (the CPU's order up to
// the summation order). One read of x, float4 where the plane's address allows (mg::range_sum).
extern "C" __global__ void global_avgpool_forward(const float* __restrict__ x, float* __restrict__ y, int planes,
                                                  int hw) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int p = blockIdx.x; p < planes; p += gridDim.x) {
        const double s = mg::block_sum(mg::range_sum<false>(x + (size_t)p * hw, x, hw), scratch);
        if (threadIdx.x == 0) y[p] = (float)(s / (double)hw);
    }
}

// dx[i] = dy[i / hw] · (1/hw). The CPU multiplies by 1/hw rounded to float (not a division), and
// so does this kernel, bit for bit.
extern "C" __global__ void global_avgpool_backward(const float* __restrict__ dy, float* __restrict__ dx, int planes,
                                                   int hw) {
    const unsigned total = (unsigned)planes * (unsigned)hw;
    if (total == 0) return;
    const float inv = (float)(1.0 / (double)hw);
    if (hw % 4 == 0 && mg::aligned16(dx)) {
        // float4 stores, each inside one plane (the se_pool backward's one pass).
        float4* dx4 = reinterpret_cast<float4*>(dx);
        for (mg::DivWalk it(mg::ew_start(), mg::ew_stride(), (unsigned)hw / 4u); it.i < total / 4u; it.next()) {
            const float v = dy[it.q] * inv;
            dx4[it.i] = make_float4(v, v, v, v);
        }
        return;
    }
    for (mg::DivWalk it(mg::ew_start(), mg::ew_stride(), (unsigned)hw); it.i < total; it.next())
        dx[it.i] = dy[it.q] * inv;
}

// y = x · s[i / hw]: one read of x and one write of y, float4 when x and y are 16-byte aligned.
extern "C" __global__ void channel_scale_forward(const float* __restrict__ x, const float* __restrict__ s,
                                                 float* __restrict__ y, int planes, int hw) {
    mg::plane_affine<false>(x, s, s, 0.0f, y, (unsigned)planes * (unsigned)hw, (unsigned)hw);
}

// One block per plane, one pass over it: dx = dy·s[p] as it streams by, and ds[p] = Σ dy·x in
// double (a product of two floats is exact in double, so only the summation order differs from
// the CPU's).
extern "C" __global__ void channel_scale_backward(const float* __restrict__ dy, const float* __restrict__ x,
                                                  const float* __restrict__ s, float* __restrict__ dx,
                                                  float* __restrict__ ds, int planes, int hw) {
    __shared__ double scratch[mg::kMaxWarps];
    for (int p = blockIdx.x; p < planes; p += gridDim.x) {
        const size_t o = (size_t)p * hw;
        const float sp = s[p];
        double acc = 0.0;
        for (int base = 0; base < hw; base += mg::kGather * (int)blockDim.x) {
            float d[mg::kGather], xv[mg::kGather];
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) {
                const int q = base + u * (int)blockDim.x + (int)threadIdx.x;
                d[u] = q < hw ? dy[o + q] : 0.0f;
                xv[u] = q < hw ? x[o + q] : 0.0f;
            }
            MG_UNROLL
            for (int u = 0; u < mg::kGather; ++u) {
                const int q = base + u * (int)blockDim.x + (int)threadIdx.x;
                if (q < hw) dx[o + q] = d[u] * sp;
                acc += (double)d[u] * (double)xv[u];
            }
        }
        acc = mg::block_sum(acc, scratch);
        if (threadIdx.x == 0) ds[p] = (float)acc;
    }
}

SIM_EXPORT(maxpool2d_forward)
SIM_EXPORT(maxpool2d_backward)
SIM_EXPORT(global_avgpool_forward)
SIM_EXPORT(global_avgpool_backward)
SIM_EXPORT(channel_scale_forward)
SIM_EXPORT(channel_scale_backward)
