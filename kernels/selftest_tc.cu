// Self-test kernels for the tensor-core and asynchronous-copy primitives of kernels/mma.cuh,
// checked exactly from Rust by tests/simt_tensorcore.rs: the same sources run through nvcc on a
// GPU, so these also pin the PTX spelling.
#include "common.cuh"
#include "device.cuh"
#include "mma.cuh"

// y[i] = cvt.rna.tf32.f32(x[i]) as bits.
extern "C" __global__ void st_tf32_cvt(const float* __restrict__ x, unsigned* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = mg::to_tf32(x[i]);
}

// One warp per block, one 16×8×8 product per block: D = A·B + C with A [16][8], B [8][8] and
// C, D [16][8] row-major at offset blockIdx.x times their size. Each lane loads exactly its
// fragment elements (PTX's layout); `round` = 0 passes A and B unrounded, which the layer must
// reject (their low 13 bits are set).
extern "C" __global__ void st_mma_tf32(const float* __restrict__ a, const float* __restrict__ b,
                                       const float* __restrict__ c, float* __restrict__ d, int round) {
    const int l = threadIdx.x, g = l / 4, t = l % 4;
    const float* A = a + blockIdx.x * 128;
    const float* B = b + blockIdx.x * 64;
    const float* C = c + blockIdx.x * 128;
    float* D = d + blockIdx.x * 128;
    unsigned fa[4], fb[2];
    MG_UNROLL
    for (int i = 0; i < 4; ++i) {
        const float v = A[(g + 8 * (i % 2)) * 8 + t + 4 * (i / 2)];
        fa[i] = round ? mg::to_tf32(v) : __float_as_uint(v);
    }
    MG_UNROLL
    for (int i = 0; i < 2; ++i) {
        const float v = B[(t + 4 * i) * 8 + g];
        fb[i] = round ? mg::to_tf32(v) : __float_as_uint(v);
    }
    float acc[4];
    MG_UNROLL
    for (int i = 0; i < 4; ++i) acc[i] = C[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2];
    mg::mma_tf32_16x8x8(acc, fa, fb);
    MG_UNROLL
    for (int i = 0; i < 4; ++i) D[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = acc[i];
}

// cp.async in two groups through dynamic shared memory s[2·blockDim]: thread t copies x[t] into
// s[t] (group 0) and x[B + t] into s[B + t] (group 1), B = blockDim.x, zero-filling the odd t of
// group 1 when `zfill` is set. Then y[t] = s[(t + 1) % B] and y[B + t] = s[B + (t + 1) % B]
// (a neighbour's element of the same group, so the barrier matters).
//   mode 0: wait_group 1 → barrier → read the first half; wait_group 0 → barrier → second half.
//   mode 1: the bug: the second half is read after wait_group 1 only (still in flight).
//   mode 2: the bug: wait_group 0 but no barrier before reading a neighbour's element.
extern "C" __global__ void st_cp_async(const float* __restrict__ x, float* __restrict__ y, int mode, int zfill) {
    DYNAMIC_SHARED(float, s);
    const int t = threadIdx.x, B = blockDim.x, next = (t + 1) % B;
    mg::cp_async_f32(s + t, x + t, true);
    mg::cp_async_commit();
    mg::cp_async_f32(s + B + t, zfill && (t % 2) ? x : x + B + t, !(zfill && (t % 2)));
    mg::cp_async_commit();
    if (mode == 2) {
        mg::cp_async_wait<0>();
        y[B + t] = s[B + next];
        return;
    }
    mg::cp_async_wait<1>();
    __syncthreads();
    y[t] = s[next];
    if (mode == 0) {
        mg::cp_async_wait<0>();
        __syncthreads();
    }
    y[B + t] = s[B + next];
}

// A 16-byte cp.async from x + offset floats (misaligned unless offset % 4 == 0).
extern "C" __global__ void st_cp_async_x4(const float* __restrict__ x, float* __restrict__ y, int offset) {
    DYNAMIC_SHARED(float, s);
    const int t = threadIdx.x;
    mg::cp_async_f32x4(s + 4 * t, x + offset + 4 * t, true);
    mg::cp_async_commit();
    mg::cp_async_wait<0>();
    __syncthreads();
    MG_UNROLL
    for (int k = 0; k < 4; ++k) y[4 * t + k] = s[(4 * t + k + 4) % (4 * blockDim.x)];
}

// Touches all `n` floats of dynamic shared memory: s[i] = i, barrier, y[i] = s[n - 1 - i].
extern "C" __global__ void st_dynamic_shared_big(float* __restrict__ y, int n) {
    DYNAMIC_SHARED(float, s);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = s[n - 1 - i];
}

SIM_EXPORT(st_tf32_cvt)
SIM_EXPORT(st_mma_tf32)
SIM_EXPORT(st_cp_async)
SIM_EXPORT(st_cp_async_x4)
SIM_EXPORT(st_dynamic_shared_big)
