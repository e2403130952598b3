// Self-test kernels of the host SIMT layer (kernels/sim/): each exercises one feature, and
// tests/simt.rs launches them through backend::sim::ffi on host memory and checks the results
// exactly. They are valid CUDA too (the failure kernels compile; at run time they are the
// undefined behaviour the layer must report as an error).
#include "common.cuh"

// ---- block barrier and static shared memory -----------------------------------------------

// Reverses each block's chunk of x: y[base + t] = x[base + c - 1 - t], c = the chunk's length
// (the last block's chunk is short). blockDim.x <= 1024.
extern "C" __global__ void st_block_reverse(const float* __restrict__ x, float* __restrict__ y, int n) {
    __shared__ float buf[1024];
    const int t = threadIdx.x;
    const int base = blockIdx.x * blockDim.x;
    const int c = min((int)blockDim.x, n - base);
    if (t < c) buf[t] = x[base + t];
    __syncthreads();
    const float v = t < c ? buf[c - 1 - t] : 0.0f;
    __syncthreads();  // every read of buf is done before anyone overwrites it
    if (t < c) buf[t] = v;
    __syncthreads();
    if (t < c) y[base + t] = buf[t];
}

// ---- dynamic shared memory ----------------------------------------------------------------

// poison[i] = the bits of the unwritten shared slot before the write; y[i] = the block's chunk
// rotated by one (y[base + t] = x[base + (t + 1) % c]); align[block] = address % 64.
extern "C" __global__ void st_dynamic_shared(const float* __restrict__ x, float* __restrict__ y, int n,
                                             unsigned* __restrict__ poison, unsigned long long* __restrict__ align) {
    DYNAMIC_SHARED(float, s);
    const int t = threadIdx.x;
    const int base = blockIdx.x * blockDim.x;
    const int c = min((int)blockDim.x, n - base);
    if (t == 0) align[blockIdx.x] = (unsigned long long)s % 64;
    if (t < c) {
        poison[base + t] = __float_as_uint(s[t]);
        s[t] = x[base + t];
    }
    __syncthreads();
    if (t < c) y[base + t] = s[(t + 1) % c];
}

// The same memory viewed as double: y[base + t] = 0.5 * (blockDim.x - 1 - t) + base.
extern "C" __global__ void st_dynamic_shared_f64(double* __restrict__ y) {
    DYNAMIC_SHARED(double, d);
    const int t = threadIdx.x;
    const int base = blockIdx.x * blockDim.x;
    d[t] = 0.5 * t + base;
    __syncthreads();
    y[base + t] = d[blockDim.x - 1 - t];
}

// ---- warp collectives ---------------------------------------------------------------------

// The lanes of the calling thread's warp that exist: 0xffffffff in a full warp, the low
// (threads left) bits in the partial last warp of a block whose size is not a multiple of 32.
// What a CUDA kernel passes instead of a full mask when its block may end in a partial warp.
__device__ inline unsigned st_existing_lanes() {
    const unsigned tl = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    const unsigned left = blockDim.x * blockDim.y * blockDim.z - (tl & ~31u);
    return left >= 32 ? 0xffffffffu : (1u << left) - 1;
}

// out[i] = the shuffled value for thread i. kind: 0 __shfl_sync (source lane (lane*5 + arg) for
// lane = threadIdx.x % 32, reduced mod width by the intrinsic), 1 up, 2 down, 3 xor (arg = delta
// or lane mask). type: 0 float, 1 double, 2 int, 3 unsigned, 4 long long, 5 unsigned long long.
// mask: the warp's existing lanes (st_existing_lanes), or __activemask() when use_active. 1-D blocks.
extern "C" __global__ void st_shuffle(int kind, int type, int use_active, const long long* __restrict__ in,
                                      long long* __restrict__ out, int arg, int width) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % 32;
    const unsigned mask = use_active ? __activemask() : st_existing_lanes();
    const int a = kind == 0 ? lane * 5 + arg : arg;
    const long long v = in[i];
    long long r = 0;
#define ST_SHUFFLE(T)                                                       \
    {                                                                       \
        const T tv = (T)v;                                                  \
        T tr;                                                               \
        switch (kind) {                                                     \
            case 0: tr = __shfl_sync(mask, tv, a, width); break;            \
            case 1: tr = __shfl_up_sync(mask, tv, (unsigned)a, width); break;   \
            case 2: tr = __shfl_down_sync(mask, tv, (unsigned)a, width); break; \
            default: tr = __shfl_xor_sync(mask, tv, a, width); break;       \
        }                                                                   \
        r = (long long)tr;                                                  \
    }
    switch (type) {
        case 0: ST_SHUFFLE(float) break;
        case 1: ST_SHUFFLE(double) break;
        case 2: ST_SHUFFLE(int) break;
        case 3: ST_SHUFFLE(unsigned) break;
        case 4: ST_SHUFFLE(long long) break;
        default: ST_SHUFFLE(unsigned long long) break;
    }
#undef ST_SHUFFLE
    out[i] = r;
}

// Votes over pred[i] with the existing lanes or __activemask() as mask; also the mask the thread
// used. 1-D blocks.
extern "C" __global__ void st_vote(int use_active, const int* __restrict__ pred, unsigned* __restrict__ ballot,
                                   int* __restrict__ any, int* __restrict__ all, unsigned* __restrict__ used_mask) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned mask = use_active ? __activemask() : st_existing_lanes();
    const int p = pred[i];
    ballot[i] = __ballot_sync(mask, p);
    any[i] = __any_sync(mask, p);
    all[i] = __all_sync(mask, p);
    used_mask[i] = mask;
}

// __activemask() after an early return and inside a branch: masks[2t] = the mask after
// `if (t >= n) return`, masks[2t+1] = the mask inside `if (lane < 5)` (0 outside), bcast[t] =
// __shfl_sync(first mask, t, 0) = the warp's first thread. 1-D blocks.
extern "C" __global__ void st_activemask(int n, unsigned* __restrict__ masks, float* __restrict__ bcast) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const unsigned m = __activemask();
    bcast[t] = __shfl_sync(m, (float)t, 0);
    unsigned inner = 0;
    if (threadIdx.x % 32 < 5) inner = __activemask();
    masks[2 * t] = m;
    masks[2 * t + 1] = inner;
}

// Neighbour exchange through shared memory ordered by __syncwarp: y[i] = x[i ^ 1] within each
// warp (blockDim.x a multiple of 32, at most 1024).
extern "C" __global__ void st_syncwarp(const float* __restrict__ x, float* __restrict__ y) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    s[t] = x[i];
    __syncwarp();
    y[i] = s[t ^ 1];
}

// The usual reduction: shuffle within warps, partials through shared memory, one atomicAdd per
// block. *out += Σ x (double).
extern "C" __global__ void st_block_sum(const float* __restrict__ x, int n, double* __restrict__ out) {
    __shared__ double partial[32];
    double s = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) s += (double)x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; ++w) total += partial[w];
        atomicAdd(out, total);
    }
}

// ---- atomics ------------------------------------------------------------------------------

__device__ inline unsigned st_key(unsigned v) { return (v * 2654435761u) >> 8; }

// Over v = 1..n (grid-stride): Σv into isum/usum, Σv² into ullsum, max/min of st_key(v) (as
// unsigned and as int minus 2^23).
extern "C" __global__ void st_atomic_int(int n, int* isum, unsigned* usum, unsigned long long* ullsum, int* imax,
                                         int* imin, unsigned* umax, unsigned* umin) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const unsigned v = (unsigned)i + 1;
        atomicAdd(isum, (int)v);
        atomicAdd(usum, v);
        atomicAdd(ullsum, (unsigned long long)v * v);
        const unsigned k = st_key(v);
        atomicMax(umax, k);
        atomicMin(umin, k);
        atomicMax(imax, (int)k - (1 << 23));
        atomicMin(imin, (int)k - (1 << 23));
    }
}

// Over v = 1..n: *count += 1.0f, *dsum += v / 2 (both exact), *fsum += v / 4 (exact while small).
extern "C" __global__ void st_atomic_float(int n, float* count, double* dsum, float* fsum) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const unsigned v = (unsigned)i + 1;
        atomicAdd(count, 1.0f);
        atomicAdd(dsum, 0.5 * v);
        atomicAdd(fsum, 0.25f * (float)(v % 64));
    }
}

// Lock-free updates built on atomicCAS, and atomicExch. Over v = 1..n:
// - exactly one thread wins the flag 0 -> 1 (winners counts them);
// - *cas_sum += v² through an atomicCAS loop on unsigned long long;
// - *fmax = max of st_key(v) / 4 as float, through an atomicCAS loop on its unsigned bits;
// - exch_out[v-1] = atomicExch(exch_slot, v): with the final slot, a permutation of {init, 1..n}.
extern "C" __global__ void st_atomic_cas(int n, int* flag, int* winners, unsigned long long* cas_sum, float* fmax,
                                         int* exch_slot, int* exch_out, unsigned* uexch, float* fexch,
                                         unsigned long long* ullexch) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const unsigned v = (unsigned)i + 1;
        if (atomicCAS(flag, 0, 1) == 0) atomicAdd(winners, 1);
        unsigned long long old = *cas_sum, assumed;
        do {
            assumed = old;
            old = atomicCAS(cas_sum, assumed, assumed + (unsigned long long)v * v);
        } while (old != assumed);
        const float f = (float)st_key(v) * 0.25f;
        unsigned* fbits = (unsigned*)fmax;
        unsigned ob = *fbits, ab;
        do {
            ab = ob;
            if (__uint_as_float(ab) >= f) break;
            ob = atomicCAS(fbits, ab, __float_as_uint(f));
        } while (ob != ab);
        exch_out[i] = atomicExch(exch_slot, (int)v);
        atomicExch(uexch, v);
        atomicExch(fexch, (float)v);
        atomicExch(ullexch, (unsigned long long)v);
        __threadfence();
    }
}

// ---- indices ------------------------------------------------------------------------------

// Thread g (block-major linear id, x fastest) writes its threadIdx, blockIdx, lane and the warp
// ballot/activemask at coords[g*8 ..]; thread 0 of block 0 writes blockDim, gridDim, warpSize.
extern "C" __global__ void st_index3d(unsigned* __restrict__ coords, unsigned* __restrict__ dims) {
    const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const unsigned tl = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    const unsigned g = block * (blockDim.x * blockDim.y * blockDim.z) + tl;
    unsigned* c = coords + 8 * (size_t)g;
    c[0] = threadIdx.x;
    c[1] = threadIdx.y;
    c[2] = threadIdx.z;
    c[3] = blockIdx.x;
    c[4] = blockIdx.y;
    c[5] = blockIdx.z;
    c[6] = __ballot_sync(st_existing_lanes(), tl % 3 == 0);
    c[7] = __activemask();
    if (g == 0) {
        dims[0] = blockDim.x;
        dims[1] = blockDim.y;
        dims[2] = blockDim.z;
        dims[3] = gridDim.x;
        dims[4] = gridDim.y;
        dims[5] = gridDim.z;
        dims[6] = warpSize;
    }
}

// ---- a shared-memory tiled GEMM -----------------------------------------------------------

// C[M,N] = A[M,K]·B[K,N], row-major. 64×64 tile per block, 256 threads (16×16), each computing a
// 4×4 patch with stride 16, BK = 16. Each output accumulates k = 0, 1, ... in order with no
// padding terms, so the result equals the plain loop bit for bit. Grid (ceil(N/64), ceil(M/64)).
extern "C" __global__ void st_gemm_tiled(const float* __restrict__ A, const float* __restrict__ B,
                                         float* __restrict__ C, int M, int N, int K) {
    __shared__ float As[16][64 + 1];  // As[k][m]
    __shared__ float Bs[16][64 + 1];  // Bs[k][n]
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 16) {
        const int kt = min(16, K - k0);
        for (int e = threadIdx.x; e < 16 * 64; e += 256) {
            const int r = e / 16, k = e % 16;  // A tile: row r, column k
            As[k][r] = (m0 + r < M && k < kt) ? A[(size_t)(m0 + r) * K + k0 + k] : 0.0f;
            const int kb = e / 64, c = e % 64;  // B tile: row kb, column c
            Bs[kb][c] = (n0 + c < N && kb < kt) ? B[(size_t)(k0 + kb) * N + n0 + c] : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < kt; ++k)
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] += As[k][ty + 16 * i] * Bs[k][tx + 16 * j];
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) C[(size_t)m * N + n] = acc[i][j];
        }
}

// The plain loop: one thread per output, 2-D grid of 16×16 blocks.
extern "C" __global__ void st_gemm_naive(const float* __restrict__ A, const float* __restrict__ B,
                                         float* __restrict__ C, int M, int N, int K) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int m = blockIdx.y * blockDim.y + threadIdx.y;
    if (m >= M || n >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += A[(size_t)m * K + k] * B[(size_t)k * N + n];
    C[(size_t)m * N + n] = acc;
}

// ---- elementwise, math, stack -------------------------------------------------------------

// y = a·x + y, the ABI's EW(n) grid-stride loop.
extern "C" __global__ void st_axpy(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = a * x[i] + y[i];
}

// Every math function of the layer on x[i] (positive), out[f * n + i] for function f.
extern "C" __global__ void st_math(const float* __restrict__ x, float* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    const double d = (double)v;
    float r[24];
    r[0] = expf(v);
    r[1] = logf(v);
    r[2] = log1pf(v);
    r[3] = sqrtf(v);
    r[4] = rsqrtf(v);
    r[5] = fmaxf(v, 1.0f);
    r[6] = fminf(v, 1.0f);
    r[7] = fabsf(-v);
    r[8] = tanhf(v);
    r[9] = erff(v);
    r[10] = powf(v, 1.5f);
    r[11] = floorf(v * 3.0f);
    r[12] = ceilf(v * 3.0f);
    r[13] = __expf(v);
    r[14] = __logf(v);
    r[15] = __fdividef(v, 3.0f);
    r[16] = fmaf(v, v, -1.0f);
    r[17] = (float)(exp(d) + log(d) + sqrt(d) + fabs(-d) + fmax(d, 1.0));
    r[18] = exp(v) + log(v) + sqrt(v) + fabs(-v) + fmax(v, 1.0f);  // float overloads
    r[19] = (float)(isfinite(v) + 2 * isnan(v) + 4 * isinf(v) + 8 * isfinite(d) + 16 * isinf(INFINITY) +
                    32 * isnan(__int_as_float(0x7fc00000)));
    r[20] = __int_as_float(__float_as_int(v) + 1);
    r[21] = __uint_as_float(__float_as_uint(v) ^ 0x80000000u);
    r[22] = FLT_MAX;
    r[23] = (float)(min(3, -2) + max(3u, 7u) + min(-5ll, 4ll) + max(9ull, 2ull)) + __ldg(x + i);
    for (int f = 0; f < 24; ++f) out[f * n + i] = r[f];
}

// A 32 KiB local array (half of the default 64 KiB fiber stack): out[i] = Σ_j buf[j] with
// buf[j] = j + i, through volatile so the array is really on the stack.
extern "C" __global__ void st_big_stack(unsigned* __restrict__ out) {
    volatile unsigned buf[8192];
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    for (unsigned j = 0; j < 8192; ++j) buf[j] = j + i;
    __syncthreads();  // all fibers' stacks live at once
    unsigned s = 0;
    for (unsigned j = 0; j < 8192; ++j) s += buf[j];
    out[i] = s;
}

// ---- schedule-order bugs ------------------------------------------------------------------

// Thread 0 produces a per-block scale in dynamic shared memory that every thread consumes:
// y[i] = x[i] * (blockIdx.x + 1). `with_sync` = 0 leaves out the __syncthreads between producer
// and consumer: in thread order thread 0 always runs first and the result is right; in any other
// order a consumer reads the unwritten (0xFF-poisoned, NaN) slot. A real GPU has the same race.
extern "C" __global__ void st_broadcast_race(const float* __restrict__ x, float* __restrict__ y, int n,
                                             int with_sync) {
    DYNAMIC_SHARED(float, scale);
    if (threadIdx.x == 0) scale[0] = (float)(blockIdx.x + 1);
    if (with_sync) __syncthreads();
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * scale[0];
}

// Each block appends its index to order[] through an atomic ticket: order[k] = the k-th block to
// claim a ticket. Shows the block claim order (a permutation of 0..gridDim.x-1).
extern "C" __global__ void st_block_claims(unsigned* __restrict__ ticket, unsigned* __restrict__ order) {
    if (threadIdx.x == 0) order[atomicAdd(ticket, 1u)] = blockIdx.x;
}

// ---- vector types -------------------------------------------------------------------------

// y[offset + 4k .. 4k+3] = x[offset + 4k .. 4k+3] as float4 loads and stores, k < n4 (grid-stride).
// offset = 0 on 16-byte-aligned buffers is the common vectorised copy; offset = 1 is misaligned
// (the GPU faults with "misaligned address"), which the layer must report.
extern "C" __global__ void st_copy_float4(const float* __restrict__ x, float* __restrict__ y, int n4, int offset) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n4; k += gridDim.x * blockDim.x) {
        const float4 v = *reinterpret_cast<const float4*>(x + offset + 4 * k);
        *reinterpret_cast<float4*>(y + offset + 4 * k) = make_float4(v.x, v.y, v.z, v.w);
    }
}

// The other vector types: out2[k] = (k, 2k) as float2, out_i4[k] = (k, -k, 2k, 3) as int4, read
// back through an int2 view of its low half: sum[k] = k + -k + 2k = 2k. align[0..3] =
// alignof(float2, float4, int2, int4).
extern "C" __global__ void st_vector_types(float2* __restrict__ out2, int4* __restrict__ out_i4,
                                           int* __restrict__ sum, unsigned* __restrict__ align, int n) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k == 0) {
        align[0] = alignof(float2);
        align[1] = alignof(float4);
        align[2] = alignof(int2);
        align[3] = alignof(int4);
    }
    if (k >= n) return;
    out2[k] = make_float2((float)k, 2.0f * k);
    out_i4[k] = make_int4(k, -k, 2 * k, 3);
    const int2 lo = *reinterpret_cast<const int2*>(&out_i4[k]);
    sum[k] = lo.x + lo.y + out_i4[k].z;
}

// ---- failure modes (CUDA's undefined behaviour; the layer must report, not hang) ----------

// A full-mask ballot in every warp, also the partial last one of a block whose size is not a
// multiple of 32 (lanes that do not exist are named in the mask).
extern "C" __global__ void st_full_mask_partial_warp(unsigned* y) {
    y[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
}

// Only even threads reach the barrier.
extern "C" __global__ void st_divergent_sync(float* y) {
    if (threadIdx.x % 2 == 0) __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// Even and odd threads wait at different barriers.
extern "C" __global__ void st_split_sync(float* y) {
    if (threadIdx.x % 2 == 0) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    y[threadIdx.x] = 1.0f;
}

// Thread 0 returns early; the others reach a barrier.
extern "C" __global__ void st_early_exit_sync(float* y) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// Lanes 16..31 exit while lanes 0..15 shuffle with the full mask.
extern "C" __global__ void st_shfl_exited(float* y) {
    const int lane = threadIdx.x % 32;
    if (lane >= 16) return;
    y[threadIdx.x] = __shfl_down_sync(0xffffffffu, (float)lane, 1);
}

// Every lane shuffles with mask 0x1, which leaves lanes 1..31 out.
extern "C" __global__ void st_shfl_bad_mask(float* y) {
    y[threadIdx.x] = __shfl_sync(0x1u, 1.0f, 0);
}

// Lanes 0..15 shuffle (full mask) while 16..31 wait at __syncthreads: nobody can proceed.
extern "C" __global__ void st_deadlock(float* y) {
    if (threadIdx.x % 32 < 16) {
        y[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
    } else {
        __syncthreads();
    }
}

// Even lanes vote while odd lanes shuffle, both with the full mask.
extern "C" __global__ void st_mixed_collectives(float* y) {
    if (threadIdx.x % 2 == 0) {
        y[threadIdx.x] = (float)__ballot_sync(0xffffffffu, 1);
    } else {
        y[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
    }
}

SIM_EXPORT(st_block_reverse)
SIM_EXPORT(st_dynamic_shared)
SIM_EXPORT(st_dynamic_shared_f64)
SIM_EXPORT(st_shuffle)
SIM_EXPORT(st_vote)
SIM_EXPORT(st_activemask)
SIM_EXPORT(st_syncwarp)
SIM_EXPORT(st_block_sum)
SIM_EXPORT(st_atomic_int)
SIM_EXPORT(st_atomic_float)
SIM_EXPORT(st_atomic_cas)
SIM_EXPORT(st_index3d)
SIM_EXPORT(st_gemm_tiled)
SIM_EXPORT(st_gemm_naive)
SIM_EXPORT(st_axpy)
SIM_EXPORT(st_math)
SIM_EXPORT(st_big_stack)
SIM_EXPORT(st_broadcast_race)
SIM_EXPORT(st_block_claims)
SIM_EXPORT(st_copy_float4)
SIM_EXPORT(st_vector_types)
SIM_EXPORT(st_full_mask_partial_warp)
SIM_EXPORT(st_divergent_sync)
SIM_EXPORT(st_split_sync)
SIM_EXPORT(st_early_exit_sync)
SIM_EXPORT(st_shfl_exited)
SIM_EXPORT(st_shfl_bad_mask)
SIM_EXPORT(st_deadlock)
SIM_EXPORT(st_mixed_collectives)
