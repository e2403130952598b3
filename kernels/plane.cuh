// Vectorised passes over [planes, hw] activations at copy bandwidth: 16-byte float4 loads and
// stores wherever the addresses allow, with the scalar fallback a misaligned float4 needs (it
// faults on the GPU and on sim). Used by pool.cu (squeeze, channel scale), se.cu (the SE
// backward's two passes) and plane_split.cu (the same reductions split over several blocks).
//
// Reductions run one block (or, split, one block per chunk) per contiguous range; every thread
// accumulates in double and mg::block_sum combines the warps in a fixed order, so results never
// depend on the schedule (no atomics).
#pragma once
#include "device.cuh"

namespace mg {

// float4 loads per thread per round of a plane reduction: with 256 threads one round covers
// 4096 floats, so a 2576-float plane (the model's SE map) has all its loads in flight at once.
constexpr int kVec = 4;

// Floats from p to the next 16-byte boundary (0..3): the scalar head before a float4 body.
__device__ inline int head_to_align16(const float* p) {
    return (int)(((16u - (unsigned)(reinterpret_cast<unsigned long long>(p) & 15u)) & 15u) / 4u);
}

__device__ inline bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15u) == 0; }

__device__ inline double sum4(float4 v) { return ((double)v.x + (double)v.y) + ((double)v.z + (double)v.w); }
__device__ inline double dot4(float4 a, float4 b) {
    return ((double)a.x * (double)b.x + (double)a.y * (double)b.y) + ((double)a.z * (double)b.z + (double)a.w * (double)b.w);
}

// This thread's part of Σ a[i] (kDot: Σ a[i]·b[i]) over i in [0, len), in double. The block's
// threads cover the range together; the caller combines them with block_sum. a and b share
// their offset modulo 16 bytes or the whole range goes scalar.
template <bool kDot>
__device__ inline double range_sum(const float* __restrict__ a, const float* __restrict__ b, int len) {
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    int head = head_to_align16(a);
    if (kDot && head != head_to_align16(b)) head = len;  // phases differ: no common float4 view
    if (head > len) head = len;
    double s = 0.0;
    for (int k = t; k < head; k += nt) s += kDot ? (double)a[k] * (double)b[k] : (double)a[k];
    const int n4 = (len - head) / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a + head);
    const float4* b4 = reinterpret_cast<const float4*>(b + head);
    // kVec float4 loads (per operand) per thread per round. Indices past the end are clamped to
    // the last float4 (a cached re-read, counted as 0) rather than predicated: ptxas then needs
    // no zero-filled destination registers and the kernels stay at 32 registers (full
    // occupancy: 2048 threads × 32 bytes of loads in flight per SM). A 2576-float plane (the
    // model's SE map) is one round of 256 threads.
    for (int base = 0; base < n4; base += kVec * nt) {
        float4 va[kVec], vb[kVec];
        MG_UNROLL
        for (int u = 0; u < kVec; ++u) {
            const int q = min(base + u * nt + t, n4 - 1);
            va[u] = a4[q];
            if (kDot) vb[u] = b4[q];
        }
        MG_UNROLL
        for (int u = 0; u < kVec; ++u) {
            const double v = kDot ? dot4(va[u], vb[u]) : sum4(va[u]);
            if (base + u * nt + t < n4) s += v;
        }
    }
    for (int k = head + 4 * n4 + t; k < len; k += nt) s += kDot ? (double)a[k] * (double)b[k] : (double)a[k];
    return s;
}

// The elementwise per-plane pass over all planes·hw elements, grid-stride (the ABI's ew grid):
// out[i] = in[i]·a[q] (kShift: + b[q]·bscale), q = i / hw the element's plane. Vector path when
// in and out are 16-byte aligned: each float4 lies in one plane when hw % 4 == 0 (its plane
// tracked by a DivWalk, no division), else each lane finds its own. Two float4 per thread per
// round keep 32 bytes of loads in flight per thread.
template <bool kShift>
__device__ inline float affine1(float v, const float* __restrict__ a, const float* __restrict__ b, float bscale,
                                unsigned q) {
    return kShift ? v * a[q] + b[q] * bscale : v * a[q];
}

template <bool kShift>
__device__ inline float4 affine4(float4 v, const float* __restrict__ a, const float* __restrict__ b, float bscale,
                                 unsigned q) {
    const float s = a[q];
    if (!kShift) return make_float4(v.x * s, v.y * s, v.z * s, v.w * s);
    const float t = b[q] * bscale;
    return make_float4(v.x * s + t, v.y * s + t, v.z * s + t, v.w * s + t);
}

template <bool kShift>
__device__ inline void plane_affine(const float* __restrict__ in, const float* __restrict__ a,
                                    const float* __restrict__ b, float bscale, float* __restrict__ out,
                                    unsigned total, unsigned hw) {
    if (total == 0 || hw == 0) return;
    if (!aligned16(in) || !aligned16(out)) {
        for (DivWalk it(ew_start(), ew_stride(), hw); it.i < total; it.next())
            out[it.i] = affine1<kShift>(in[it.i], a, b, bscale, it.q);
        return;
    }
    const unsigned n4 = total / 4u, s = ew_stride();
    const float4* in4 = reinterpret_cast<const float4*>(in);
    float4* o4 = reinterpret_cast<float4*>(out);
    if (hw % 4u == 0) {
        const unsigned h4 = hw / 4u;
        DivWalk w0(ew_start(), 2u * s, h4), w1(ew_start() + s, 2u * s, h4);
        for (; w0.i < n4; w0.next(), w1.next()) {
            const bool two = w1.i < n4;
            const float4 v0 = in4[w0.i];
            const float4 v1 = two ? in4[w1.i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            o4[w0.i] = affine4<kShift>(v0, a, b, bscale, w0.q);
            if (two) o4[w1.i] = affine4<kShift>(v1, a, b, bscale, w1.q);
        }
    } else {
        for (unsigned j = ew_start(); j < n4; j += s) {
            const unsigned e = 4u * j;
            const float4 v = in4[j];
            o4[j] = make_float4(affine1<kShift>(v.x, a, b, bscale, e / hw),
                                affine1<kShift>(v.y, a, b, bscale, (e + 1u) / hw),
                                affine1<kShift>(v.z, a, b, bscale, (e + 2u) / hw),
                                affine1<kShift>(v.w, a, b, bscale, (e + 3u) / hw));
        }
    }
    // The last total % 4 elements, scalar.
    for (unsigned e = 4u * n4 + ew_start(); e < total; e += s) out[e] = affine1<kShift>(in[e], a, b, bscale, e / hw);
}

}  // namespace mg
