// 2-D convolution on tensor cores: the three implicit GEMMs of kernels/conv.cu (same operands,
// same gathers, same ABI plus a split-K workspace for the weight gradient) with TF32 inputs and
// FP32 accumulation through mma.sync m16n8k8, fed by a 3-stage cp.async pipeline.
//
//   forward          Y[k, (n,oy,ox)]  = Σ_{(c,ki,kj)}  W[k, (c,ki,kj)]  · X̃[(c,ki,kj), (n,oy,ox)]
//   backward input   dX[c, (n,iy,ix)] = Σ_{(k,ki,kj)}  W[k, (c,ki,kj)]  · dỸ[(k,ki,kj), (n,iy,ix)]
//   backward weight  dW[k, (c,ki,kj)] = Σ_{(n,oy,ox)}  dY[k, (n,oy,ox)] · X̃[(c,ki,kj), (n,oy,ox)]
//
// Block tile BM (M, 128 or 64) × 128 (columns) × 32 (reduction), 256 threads = 8 warps as 2 (M) ×
// 4 (columns), each warp BM/2 × 32 = BM/32 × 4 mma tiles of 16 × 8 (64 or 32 accumulators).
// Per reduction tile a thread issues 16 + 16 four-byte cp.async (the gathers cannot be wider in
// general: a tap's row of the im2col matrix starts at any offset), zero-filling the padding and
// the tile's ragged edges (src-size 0), so the main loop has no bounds logic of its own.
// Operands are rounded to TF32 (cvt.rna, as cuDNN/cuBLAS TF32 do) when the fragments are read
// from shared memory. Shared memory, shared_bytes(BM) = 3 stages × (A BM×36 + B 128×36 floats):
// 108 KiB at BM = 128, 81 KiB at BM = 64, above the 48 KiB default: the launcher opts in
// (engine/src/backend/kernel/conv_tc.rs). The `_m64_` kernels (BM = 64, warps of 32 × 32) serve layers
// with at most 64 rows (MODEL_4's 64 → 64 convolution, block 1's forward).
//
// Shared layouts (bank-conflict-free fragment reads; the +4/+8 pads keep rows 16-byte aligned):
//   A  As[m][k], row stride 36: lane (g, t) reads As[g + …][t + …] → banks 4g + t, all distinct.
//   B  K-major Bs[k][n], stride 136 (forward, input gradient: the gathers run along columns):
//      lane reads Bs[t + …][g + …] → banks 8t + g; or N-major Bs[n][k], stride 36 (weight
//      gradient: its gathers run along the reduction), banks 4g + t.
// Every element of the outputs is written by exactly one thread with a plain store; the weight
// gradient writes one partial per split (blockIdx.z) to the workspace and reduce.cu's splitk_sum adds
// them in split order: no atomics anywhere, so results are bit-reproducible.
#include "common.cuh"
#include "conv_index.cuh"
#include "device.cuh"
#include "mma.cuh"

namespace {

// BM (the tile's rows: output channels, or input channels for the input gradient) is 128, or 64
// for layers with at most 64 (the `_m64_` kernels), so that a 64-channel layer does not pad half
// of every tile with zeros. BN, BK and the pipeline are fixed.
constexpr int BN = 128, BK = 32, STAGES = 3, THREADS = 256;
constexpr int LDA = BK + 4;       // As[m][k]
constexpr int LDB_K = BN + 8;     // Bs[k][n]
constexpr int LDB_N = BK + 4;     // Bs[n][k]
constexpr int B_FLOATS = BN * LDB_N;  // ≥ BK · LDB_K, so either layout fits
constexpr int WN = 32, NI = WN / 8;  // warp tile columns; 8 warps as 2 (rows) × 4 (columns)

template <int BM>
struct Tile {
    static_assert(BM == 64 || BM == 128, "tile rows");
    static constexpr int WM = BM / 2;  // warp tile rows
    static constexpr int MI = WM / 16;
    static constexpr int A_FLOATS = BM * LDA;
    static constexpr int STAGE_FLOATS = A_FLOATS + B_FLOATS;
};
constexpr int kOutside = -(1 << 30);  // a coordinate that fails every bounds test

static_assert(BK == 32, "the gathers map one warp lane to one reduction index or column of 32");
static_assert(BK * LDB_K <= B_FLOATS, "the K-major B tile fits the stage's B area");
static_assert(2 * (BN / WN) * 32 == THREADS, "8 warps cover the block tile");

// One reduction tile out of shared memory: acc += A[wm.., k] · B[k, wn..].
template <bool B_NMAJOR, int MI>
__device__ __forceinline__ void mma_tile(const float* As, const float* Bs, int wm, int wn, int g, int t,
                                         float (&acc)[MI][NI][4]) {
    MG_UNROLL
    for (int kk = 0; kk < BK; kk += 8) {
        unsigned a[MI][4], b[NI][2];
        MG_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
            const float* p = As + (wm + mi * 16 + g) * LDA + kk + t;
            a[mi][0] = mg::to_tf32(p[0]);
            a[mi][1] = mg::to_tf32(p[8 * LDA]);
            a[mi][2] = mg::to_tf32(p[4]);
            a[mi][3] = mg::to_tf32(p[8 * LDA + 4]);
        }
        MG_UNROLL
        for (int ni = 0; ni < NI; ++ni) {
            if (B_NMAJOR) {
                const float* p = Bs + (wn + ni * 8 + g) * LDB_N + kk + t;
                b[ni][0] = mg::to_tf32(p[0]);
                b[ni][1] = mg::to_tf32(p[4]);
            } else {
                const float* p = Bs + (kk + t) * LDB_K + wn + ni * 8 + g;
                b[ni][0] = mg::to_tf32(p[0]);
                b[ni][1] = mg::to_tf32(p[4 * LDB_K]);
            }
        }
        MG_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
            MG_UNROLL
            for (int ni = 0; ni < NI; ++ni) mg::mma_tf32_16x8x8(acc[mi][ni], a[mi], b[ni]);
        }
    }
}

// The pipelined main loop shared by the three kernels. `load(As, Bs, kt)` issues the cp.async
// copies of reduction tile kt into a stage; it is called for kt = 0, 1, 2, … in order (loaders
// keep running index counters). One commit per iteration, whether or not it loaded, keeps
// wait_group's count of pending groups uniform.
template <bool B_NMAJOR, int BM, class Loader>
__device__ __forceinline__ void mainloop(float* smem, int ktiles, Loader& load,
                                         float (&acc)[Tile<BM>::MI][NI][4]) {
    constexpr int MI = Tile<BM>::MI, A_FLOATS = Tile<BM>::A_FLOATS, STAGE_FLOATS = Tile<BM>::STAGE_FLOATS;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wm = (warp / (BN / WN)) * Tile<BM>::WM, wn = (warp % (BN / WN)) * WN;
    const int g = lane / 4, t = lane % 4;
    MG_UNROLL
    for (int mi = 0; mi < MI; ++mi)
        MG_UNROLL
    for (int ni = 0; ni < NI; ++ni)
        MG_UNROLL
    for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    MG_UNROLL
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load(smem + s * STAGE_FLOATS, smem + s * STAGE_FLOATS + A_FLOATS, s);
        mg::cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        // Tile kt has landed for this thread; the barrier makes every thread's copies visible
        // and tells that all have finished reading the stage the next load overwrites.
        mg::cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int next = kt + STAGES - 1;
        if (next < ktiles) {
            float* st = smem + (next % STAGES) * STAGE_FLOATS;
            load(st, st + A_FLOATS, next);
        }
        mg::cp_async_commit();
        const float* st = smem + (kt % STAGES) * STAGE_FLOATS;
        mma_tile<B_NMAJOR, MI>(st, st + A_FLOATS, wm, wn, g, t, acc);
    }
    mg::cp_async_wait<0>();
}

// The accumulator element (mi, ni, r) of this thread sits at tile row wm + 16·mi + g + 8·(r/2)
// and tile column wn + 8·ni + 2t + r%2.
template <int BM>
struct Fragment {
    int wm, wn, g, t;
    __device__ Fragment() {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        wm = (warp / (BN / WN)) * Tile<BM>::WM;
        wn = (warp % (BN / WN)) * WN;
        g = lane / 4;
        t = lane % 4;
    }
    __device__ int row(int mi, int r) const { return wm + 16 * mi + g + 8 * (r / 2); }
    __device__ int col(int ni, int r) const { return wn + 8 * ni + 2 * t + r % 2; }
};

// The epilogue of the forward and the input gradient: the tile's rows are channels (of `rows`),
// its columns positions (img, pos) of `plane`-sized images, scattered to NCHW out[img][m][pos],
// plus the nullable per-channel `bias` (none: the accumulator as it is, −0 included). A thread's
// 8 columns are decomposed once each.
template <int BM>
__device__ __forceinline__ void store_nchw(const float (&acc)[Tile<BM>::MI][NI][4], float* __restrict__ out,
                                           const float* __restrict__ bias, int m0, int n0, int rows, int cols,
                                           int plane) {
    const Fragment<BM> f;
    MG_UNROLL
    for (int ni = 0; ni < NI; ++ni) {
        MG_UNROLL
        for (int h = 0; h < 2; ++h) {
            const int col = n0 + f.col(ni, h);
            if (col >= cols) continue;
            const int img = col / plane, pos = col - img * plane;
            MG_UNROLL
            for (int mi = 0; mi < Tile<BM>::MI; ++mi) {
                MG_UNROLL
                for (int rr = 0; rr < 2; ++rr) {
                    const int r = 2 * rr + h, m = m0 + f.row(mi, r);
                    if (m >= rows) continue;
                    const float v = acc[mi][ni][r];
                    out[(size_t)(img * rows + m) * plane + pos] = bias ? v + __ldg(bias + m) : v;
                }
            }
        }
    }
}

// ---- forward loader -----------------------------------------------------------------------
// A = W [K, CRS]: lane ↔ reduction index (one 128-byte row segment per warp), warp ↔ rows
// warp + 8j. B = X̃: thread ↔ columns lane + 32i (i < 4) and reduction rows warp + 8j (j < 4),
// as (c·HW, ki, kj) from a Radix3 counter stepped by 8.
template <int BM>
struct ForwardLoader {
    const float* x;
    const float* w;
    int CRS, H, W, lane, warp, a_rows;  // a_rows: rows of this block's tile that exist, from warp on
    const float* a_row0;                // W row m0 + warp, at column lane
    int b_base[4], b_iy[4], b_ix[4];
    mg::Radix3 rb;

    __device__ void operator()(float* As, float* Bs, int kt) {
        const int k0 = kt * BK;
        const bool ka = k0 + lane < CRS;
        MG_UNROLL
        for (int j = 0; j < BM / 8; ++j) {
            const bool ok = ka && 8 * j < a_rows;
            mg::cp_async_f32(As + (warp + 8 * j) * LDA + lane, ok ? a_row0 + 8 * j * CRS + k0 : w, ok);
        }
        MG_UNROLL
        for (int j = 0; j < BK / 8; ++j) {
            const int kr = warp + 8 * j;
            const bool rok = k0 + kr < CRS;
            const int ki = rb.mid, kj = rb.lo, roff = rb.hi + ki * W + kj;
            MG_UNROLL
            for (int i = 0; i < 4; ++i) {
                const bool ok = rok && (unsigned)(b_iy[i] + ki) < (unsigned)H && (unsigned)(b_ix[i] + kj) < (unsigned)W;
                mg::cp_async_f32(Bs + kr * LDB_K + lane + 32 * i, ok ? x + (b_base[i] + roff) : x, ok);
            }
            rb.next();
        }
    }
};

// ---- input-gradient loader ----------------------------------------------------------------
// A[c, (k,ki,kj)] = w[k, c, ki, kj]: lane ↔ reduction index (Radix3 over (k·CRS, ki, kj)), warp ↔
// rows c = warp + 8j at offset c·RS. B = dỸ, the adjoint gather (as kernels/conv.cu): thread ↔
// columns lane + 32i and reduction rows warp + 8j as (k·OHW, ki, kj).
template <int BM>
struct InputGradLoader {
    const float* dy;
    const float* w;
    int KRS, RS, S, OH, OW, stride, lane, warp, a_rows;
    const float* a_row0;  // w + (m0 + warp)·RS
    mg::Radix3 ra;        // this lane's reduction index
    int b_base[4], b_iy[4], b_ix[4];
    mg::Radix3 rb;

    __device__ void operator()(float* As, float* Bs, int kt) {
        const int k0 = kt * BK;
        const bool ka = k0 + lane < KRS;
        const int aro = ra.hi + ra.mid * S + ra.lo;
        MG_UNROLL
        for (int j = 0; j < BM / 8; ++j) {
            const bool ok = ka && 8 * j < a_rows;
            mg::cp_async_f32(As + (warp + 8 * j) * LDA + lane, ok ? a_row0 + (8 * j * RS + aro) : w, ok);
        }
        ra.next();
        MG_UNROLL
        for (int j = 0; j < BK / 8; ++j) {
            const int kr = warp + 8 * j;
            const bool rok = k0 + kr < KRS;
            const int ki = rb.mid, kj = rb.lo;
            MG_UNROLL
            for (int i = 0; i < 4; ++i) {
                bool ok;
                int off;
                if (stride == 1) {
                    ok = rok && (unsigned)(b_iy[i] - ki) < (unsigned)OH && (unsigned)(b_ix[i] - kj) < (unsigned)OW;
                    off = b_base[i] + rb.hi - ki * OW - kj;
                } else {
                    const int ty = b_iy[i] - ki, tx = b_ix[i] - kj;  // oy·stride, ox·stride
                    const int oy = ty / stride, ox = tx / stride;
                    ok = rok && ty >= 0 && tx >= 0 && oy * stride == ty && ox * stride == tx && oy < OH && ox < OW;
                    off = ok ? b_base[i] - b_iy[i] * OW - b_ix[i] + rb.hi + oy * OW + ox : 0;
                }
                mg::cp_async_f32(Bs + kr * LDB_K + lane + 32 * i, ok ? dy + off : dy, ok);
            }
            rb.next();
        }
    }
};

// ---- weight-gradient loader ---------------------------------------------------------------
// Reduction = positions p of this split, lane ↔ p (one Radix3 over (img, oy, ox) per thread, shared
// by both operands). A = dY[k, p]: warp ↔ rows k = warp + 8j. B = X̃ᵀ[p, (c,ki,kj)] stored N-major:
// warp ↔ taps warp + 8j, whose (offset, ki, kj) come from a per-tile table in shared memory.
template <int BM>
struct WeightGradLoader {
    const float* dy;
    const float* x;
    int K, C, H, W, OHW, OW, stride, pad, pend, p_lane, lane, warp, a_rows;
    const float* a_row0;  // dy + (m0 + warp)·OHW
    const int* tap_off;  // [BN]: c·HW + ki·W + kj
    const int* tap_ki;   // [BN]: ki, kj, or kOutside past C·R·S (fails the bounds test)
    const int* tap_kj;
    mg::Radix3 pp;

    __device__ void operator()(float* As, float* Bs, int kt) {
        const bool pok = p_lane + kt * BK < pend;
        const int img = pp.hi, oy = pp.mid, ox = pp.lo;
        const int dro = img * K * OHW + oy * OW + ox;
        MG_UNROLL
        for (int j = 0; j < BM / 8; ++j) {
            const bool ok = pok && 8 * j < a_rows;
            mg::cp_async_f32(As + (warp + 8 * j) * LDA + lane, ok ? a_row0 + (8 * j * OHW + dro) : dy, ok);
        }
        const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
        const int xro = img * C * H * W + iy0 * W + ix0;
        MG_UNROLL
        for (int j = 0; j < BN / 8; ++j) {
            const int n = warp + 8 * j;
            const int ki = tap_ki[n], kj = tap_kj[n];
            const bool ok = pok && (unsigned)(iy0 + ki) < (unsigned)H && (unsigned)(ix0 + kj) < (unsigned)W;
            mg::cp_async_f32(Bs + n * LDB_N + lane, ok ? x + (xro + tap_off[n]) : x, ok);
        }
        pp.next();
    }
};

}  // namespace

// ---- forward ------------------------------------------------------------------------------
// Grid (ceil(N·OH·OW / 128), ceil(K / BM)), 256 threads, shared_bytes(BM) of dynamic shared memory.
template <int BM>
__device__ void conv2d_forward_tc(const float* __restrict__ x, const float* __restrict__ w,
        const float* __restrict__ b, float* __restrict__ y, int N, int C, int H, int W, int K, int R, int S,
        int stride, int pad, int OH, int OW) {
    DYNAMIC_SHARED(float, smem);
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW, cols = N * OHW;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    if (m0 >= K || n0 >= cols) return;  // uniform per block: no thread reaches a barrier
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    ForwardLoader<BM> ld;
    ld.x = x;
    ld.w = w;
    ld.CRS = CRS;
    ld.H = H;
    ld.W = W;
    ld.lane = lane;
    ld.warp = warp;
    ld.a_rows = K - m0 - warp;
    ld.a_row0 = w + (size_t)(ld.a_rows > 0 ? m0 + warp : 0) * CRS + lane;
    MG_UNROLL
    for (int i = 0; i < 4; ++i) {
        const int col = n0 + lane + 32 * i;
        ld.b_iy[i] = kOutside;
        ld.b_ix[i] = kOutside;
        ld.b_base[i] = 0;
        if (col < cols) {
            const int img = col / OHW, pos = col - img * OHW;
            const int oy = pos / OW, ox = pos - oy * OW;
            ld.b_iy[i] = oy * stride - pad;
            ld.b_ix[i] = ox * stride - pad;
            ld.b_base[i] = img * C * HW + ld.b_iy[i] * W + ld.b_ix[i];
        }
    }
    ld.rb.init(warp, R, S, HW, 8);

    float acc[Tile<BM>::MI][NI][4];
    mainloop<false, BM>(smem, (CRS + BK - 1) / BK, ld, acc);

    store_nchw<BM>(acc, y, b, m0, n0, K, cols, OHW);
}

// ---- backward w.r.t. the input ------------------------------------------------------------
// Grid (ceil(N·H·W / 128), ceil(C / BM)), 256 threads, shared_bytes(BM) of dynamic shared memory.
template <int BM>
__device__ void conv2d_backward_input_tc(const float* __restrict__ dy, const float* __restrict__ w,
        float* __restrict__ dx, int N, int C, int H, int W, int K, int R, int S, int stride, int pad, int OH,
        int OW) {
    DYNAMIC_SHARED(float, smem);
    const int RS = R * S, CRS = C * RS, KRS = K * RS, HW = H * W, OHW = OH * OW, cols = N * HW;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    if (m0 >= C || n0 >= cols) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    InputGradLoader<BM> ld;
    ld.dy = dy;
    ld.w = w;
    ld.KRS = KRS;
    ld.RS = RS;
    ld.S = S;
    ld.OH = OH;
    ld.OW = OW;
    ld.stride = stride;
    ld.lane = lane;
    ld.warp = warp;
    ld.a_rows = C - m0 - warp;
    ld.a_row0 = w + (size_t)(ld.a_rows > 0 ? m0 + warp : 0) * RS;
    ld.ra.init(lane, R, S, CRS, BK);
    MG_UNROLL
    for (int i = 0; i < 4; ++i) {
        const int col = n0 + lane + 32 * i;
        ld.b_iy[i] = kOutside;
        ld.b_ix[i] = kOutside;
        ld.b_base[i] = 0;
        if (col < cols) {
            const int img = col / HW, pos = col - img * HW;
            const int iy = pos / W, ix = pos - iy * W;
            ld.b_iy[i] = iy + pad;  // oy·stride + ki
            ld.b_ix[i] = ix + pad;
            ld.b_base[i] = img * K * OHW + ld.b_iy[i] * OW + ld.b_ix[i];
        }
    }
    ld.rb.init(warp, R, S, OHW, 8);

    float acc[Tile<BM>::MI][NI][4];
    mainloop<false, BM>(smem, (KRS + BK - 1) / BK, ld, acc);

    store_nchw<BM>(acc, dx, nullptr, m0, n0, C, cols, HW);
}

// ---- backward w.r.t. the weight -----------------------------------------------------------
// Grid (ceil(CRS / 128), ceil(K / BM), splits), 256 threads, shared_bytes(BM) of dynamic shared
// memory. Split z reduces positions [z·chunk, min((z+1)·chunk, N·OH·OW)) and stores its partial
// dW tile to partial[z][K][CRS] (every element of the tile, zeros where it has no positions), so
// the caller needs no zeroing; reduce.cu's splitk_sum then adds the splits in order.
template <int BM>
__device__ void conv2d_backward_weight_tc(const float* __restrict__ dy, const float* __restrict__ x,
        float* __restrict__ partial, int N, int C, int H, int W, int K, int R, int S, int stride, int pad,
        int OH, int OW, int chunk) {
    DYNAMIC_SHARED(float, smem);
    __shared__ int tap_off[BN], tap_ki[BN], tap_kj[BN];
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW, npos = N * OHW;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    if (m0 >= K || n0 >= CRS || chunk <= 0) return;
    const int pbeg = (int)blockIdx.z * chunk;
    const int pend = npos - pbeg <= chunk ? npos : pbeg + chunk;  // pbeg ≤ npos by the grid
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int n = threadIdx.x; n < BN; n += THREADS) {
        const int r = n0 + n;
        tap_off[n] = 0;
        tap_ki[n] = kOutside;
        tap_kj[n] = kOutside;
        if (r < CRS) {
            const int c = r / RS, rs = r - c * RS, ki = rs / S, kj = rs - ki * S;
            tap_off[n] = c * HW + ki * W + kj;
            tap_ki[n] = ki;
            tap_kj[n] = kj;
        }
    }
    __syncthreads();

    WeightGradLoader<BM> ld;
    ld.dy = dy;
    ld.x = x;
    ld.K = K;
    ld.C = C;
    ld.H = H;
    ld.W = W;
    ld.OHW = OHW;
    ld.OW = OW;
    ld.stride = stride;
    ld.pad = pad;
    ld.pend = pend;
    ld.p_lane = pbeg + lane;
    ld.lane = lane;
    ld.warp = warp;
    ld.a_rows = K - m0 - warp;
    ld.a_row0 = dy + (size_t)(ld.a_rows > 0 ? m0 + warp : 0) * OHW;
    ld.tap_off = tap_off;
    ld.tap_ki = tap_ki;
    ld.tap_kj = tap_kj;
    ld.pp.init(pbeg + lane, OH, OW, 1, BK);

    float acc[Tile<BM>::MI][NI][4];
    mainloop<true, BM>(smem, (pend - pbeg + BK - 1) / BK, ld, acc);

    float* out = partial + (size_t)blockIdx.z * K * CRS;
    const Fragment<BM> f;
    MG_UNROLL
    for (int mi = 0; mi < Tile<BM>::MI; ++mi) {
        MG_UNROLL
        for (int r = 0; r < 4; ++r) {
            const int m = m0 + f.row(mi, r);
            if (m >= K) continue;
            MG_UNROLL
            for (int ni = 0; ni < NI; ++ni) {
                const int tap = n0 + f.col(ni, r);
                if (tap < CRS) out[(size_t)m * CRS + tap] = acc[mi][ni][r];
            }
        }
    }
}


// ---- the kernels: each pass at 128 and at 64 tile rows --------------------------------------
extern "C" __global__ void conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w,
        const float* __restrict__ b, float* __restrict__ y, int N, int C, int H, int W, int K, int R, int S,
        int stride, int pad, int OH, int OW) {
    conv2d_forward_tc<128>(x, w, b, y, N, C, H, W, K, R, S, stride, pad, OH, OW);
}
extern "C" __global__ void conv2d_forward_m64_tf32(const float* __restrict__ x, const float* __restrict__ w,
        const float* __restrict__ b, float* __restrict__ y, int N, int C, int H, int W, int K, int R, int S,
        int stride, int pad, int OH, int OW) {
    conv2d_forward_tc<64>(x, w, b, y, N, C, H, W, K, R, S, stride, pad, OH, OW);
}
extern "C" __global__ void conv2d_backward_input_tf32(const float* __restrict__ dy, const float* __restrict__ w,
        float* __restrict__ dx, int N, int C, int H, int W, int K, int R, int S, int stride, int pad, int OH,
        int OW) {
    conv2d_backward_input_tc<128>(dy, w, dx, N, C, H, W, K, R, S, stride, pad, OH, OW);
}
extern "C" __global__ void conv2d_backward_input_m64_tf32(const float* __restrict__ dy,
        const float* __restrict__ w, float* __restrict__ dx, int N, int C, int H, int W, int K, int R, int S,
        int stride, int pad, int OH, int OW) {
    conv2d_backward_input_tc<64>(dy, w, dx, N, C, H, W, K, R, S, stride, pad, OH, OW);
}
extern "C" __global__ void conv2d_backward_weight_tf32(const float* __restrict__ dy,
        const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H, int W, int K, int R,
        int S, int stride, int pad, int OH, int OW, int chunk) {
    conv2d_backward_weight_tc<128>(dy, x, partial, N, C, H, W, K, R, S, stride, pad, OH, OW, chunk);
}
extern "C" __global__ void conv2d_backward_weight_m64_tf32(const float* __restrict__ dy,
        const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H, int W, int K, int R,
        int S, int stride, int pad, int OH, int OW, int chunk) {
    conv2d_backward_weight_tc<64>(dy, x, partial, N, C, H, W, K, R, S, stride, pad, OH, OW, chunk);
}

SIM_EXPORT(conv2d_forward_tf32)
SIM_EXPORT(conv2d_forward_m64_tf32)
SIM_EXPORT(conv2d_backward_input_tf32)
SIM_EXPORT(conv2d_backward_input_m64_tf32)
SIM_EXPORT(conv2d_backward_weight_tf32)
SIM_EXPORT(conv2d_backward_weight_m64_tf32)
