// 2-D convolution (NCHW input, OIHW weight, symmetric stride and padding) as implicit GEMM:
// the im2col matrix is never materialised; each block gathers the slice of it that its tile
// needs straight from x (or dy) into shared memory.
//
//   forward          Y[k, (n,oy,ox)]  = Σ_{(c,ki,kj)}  W[k, (c,ki,kj)]  · X̃[(c,ki,kj), (n,oy,ox)]
//   backward input   dX[c, (n,iy,ix)] = Σ_{(k,ki,kj)}  W[k, (c,ki,kj)]  · dỸ[(k,ki,kj), (n,iy,ix)]
//   backward weight  dW[k, (c,ki,kj)] = Σ_{(n,oy,ox)}  dY[k, (n,oy,ox)] · X̃[(c,ki,kj), (n,oy,ox)]
//
// (X̃ is x unfolded with zero padding; dỸ[(k,ki,kj),(n,iy,ix)] is dy[n,k,oy,ox] where
// oy·stride = iy + pad − ki exactly, else 0: the adjoint gather, so dx is written once, without
// atomics, and fully.)
//
// All three share one block-level GEMM engine:
//   * block tile 64 (M) × 64 (columns), 256 threads, reduction step BK = 16;
//   * each thread owns a 4×4 register micro-tile. The 8 warps are arranged 4 (M) × 2 (cols),
//     each warp covers 16 × 32 as 4 × 8 threads, so per reduction step a warp reads 4 distinct
//     16-byte A fragments (64 B) and 8 distinct B fragments (128 B): one shared-memory wavefront
//     each, 2 wavefronts per 16 FMAs per thread, which keeps the FMA pipe (not shared memory) the
//     limit;
//   * double buffering: the next step's tile is loaded from global memory into registers while
//     the current one is multiplied out of shared memory, then stored to the other buffer, so
//     there is one __syncthreads per step and the global latency hides behind 256 FMAs;
//   * the gathers walk their (c,ki,kj) / (n,oy,ox) indices with add-and-carry instead of integer
//     division in the main loop (a division is ~20 instructions, comparable to the FMAs).
// Every load and store is bounds-checked: M, columns and the reduction need not be multiples of
// the tile. Any grid is correct: the tile loops are grid-strided (the ABI's grid gives each block
// exactly one tile).
#include "common.cuh"
#include "device.cuh"

namespace {

constexpr int BM = 64;       // tile rows (output channels / input channels)
constexpr int BN = 64;       // tile columns (positions / weight taps)
constexpr int BK = 16;       // reduction step
constexpr int THREADS = 256;
// Shared tiles are stored k-major ([BK][BM]) so a thread's 4 consecutive rows/columns are one
// 16-byte load. The +4 pad keeps rows 16-byte aligned and turns the 16-way bank conflict of the
// transposing A store (16 threads, same row, consecutive k) into a 2-way one.
constexpr int LDS = BM + 4;

static_assert(BM == BN, "one padded row length serves both tiles");
static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "each thread stages 4 elements per tile");

// Thread (warp w, lane l) owns rows m_base..m_base+3 and columns n_base..n_base+3 of the tile.
__device__ inline int micro_row(int t) { return (t / 32 / 2) * 16 + (t % 32 / 8) * 4; }
__device__ inline int micro_col(int t) { return (t / 32 % 2) * 32 + (t % 8) * 4; }

// One BK step of the block GEMM out of shared memory: acc += As[:, rows]ᵀ · Bs[:, cols].
__device__ inline void mma_step(const float (*As)[LDS], const float (*Bs)[LDS], int mb, int nb, float acc[4][4]) {
    MG_UNROLL
    for (int kk = 0; kk < BK; ++kk) {
        float a[4], b[4];
        MG_UNROLL
        for (int i = 0; i < 4; ++i) a[i] = As[kk][mb + i];
        MG_UNROLL
        for (int j = 0; j < 4; ++j) b[j] = Bs[kk][nb + j];
        MG_UNROLL
        for (int i = 0; i < 4; ++i) {
            MG_UNROLL
            for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
    }
}

// A mixed-radix counter (hi, mid, lo) with radices (·, R, S) advanced by a fixed step with carry:
// it tracks the decomposition r = hi·R·S + mid·S + lo of a reduction index as r grows by BK,
// replacing two divisions per element per step. `hi` is kept pre-multiplied by its stride.
struct Radix3 {
    int hi, mid, lo;           // hi is hi·hi_stride
    int dhi, dmid, dlo;        // the step, decomposed; dhi pre-multiplied
    int R, S, hi_stride;
    __device__ inline void init(int r, int R_, int S_, int hi_stride_, int step) {
        R = R_;
        S = S_;
        hi_stride = hi_stride_;
        const int RS = R * S;
        hi = (r / RS) * hi_stride;
        mid = (r % RS) / S;
        lo = r % S;
        dhi = (step / RS) * hi_stride;
        dmid = (step / S) % R;
        dlo = step % S;
    }
    __device__ inline void next() {
        lo += dlo;  // each digit stays below twice its radix, so one conditional carry suffices
        if (lo >= S) {
            lo -= S;
            ++mid;
        }
        mid += dmid;
        if (mid >= R) {
            mid -= R;
            hi += hi_stride;
        }
        hi += dhi;
    }
};

}  // namespace

// ---- forward ------------------------------------------------------------------------------
// M = K output channels, columns = N·OH·OW output positions, reduction = C·R·S taps.
// A = W [K, CRS] row-major: staged with the reduction index fastest across threads (16 threads
// read 64 contiguous bytes of one filter). B = X̃: staged with the column fastest (32 threads read
// 32 consecutive output positions → consecutive input pixels for stride 1).
extern "C" __global__ void conv2d_forward(const float* __restrict__ x, const float* __restrict__ w,
                                          const float* __restrict__ b, float* __restrict__ y, int N, int C, int H,
                                          int W, int K, int R, int S, int stride, int pad, int OH, int OW) {
    alignas(16) __shared__ float As[2][BK][LDS];
    alignas(16) __shared__ float Bs[2][BK][LDS];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW;
    const int cols = N * OHW;
    const int mb = micro_row(t), nb = micro_col(t);
    // A staging: reduction index a_k fixed per thread, rows a_m + 16j.
    const int a_k = t % BK, a_m = t / BK;
    // B staging: column b_n fixed per thread, reduction rows b_k + 4j.
    const int b_n = t % BN, b_k = t / BN;
    const int nsteps = (CRS + BK - 1) / BK;

    for (int m0 = blockIdx.y * BM; m0 < K; m0 += gridDim.y * BM) {
        for (int n0 = blockIdx.x * BN; n0 < cols; n0 += gridDim.x * BN) {
            // This thread's gather column: output position (img, oy, ox), fixed for the tile.
            const int col = n0 + b_n;
            const bool col_ok = col < cols;
            const int img = col_ok ? col / OHW : 0;
            const int pos = col_ok ? col - img * OHW : 0;
            const int iy0 = (pos / OW) * stride - pad;
            const int ix0 = (pos % OW) * stride - pad;
            const float* __restrict__ xs = x + (size_t)img * C * HW;

            // The gather's 4 reduction rows r = b_k + 4j (+ BK per step) as (c·HW, ki, kj).
            Radix3 rb[4];
            MG_UNROLL
            for (int j = 0; j < 4; ++j) rb[j].init(b_k + 4 * j, R, S, HW, BK);

            float ra[4], rbv[4];  // the staged next tile
            auto load = [&](int r0) {
                const int ka = r0 + a_k;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int m = m0 + a_m + 16 * j;
                    ra[j] = (m < K && ka < CRS) ? __ldg(w + (size_t)m * CRS + ka) : 0.0f;
                }
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int r = r0 + b_k + 4 * j;
                    const int iy = iy0 + rb[j].mid, ix = ix0 + rb[j].lo;
                    const bool ok = col_ok && r < CRS && (unsigned)iy < (unsigned)H && (unsigned)ix < (unsigned)W;
                    rbv[j] = ok ? __ldg(xs + rb[j].hi + iy * W + ix) : 0.0f;
                    rb[j].next();
                }
            };
            auto store = [&](int buf) {
                MG_UNROLL
                for (int j = 0; j < 4; ++j) As[buf][a_k][a_m + 16 * j] = ra[j];
                MG_UNROLL
                for (int j = 0; j < 4; ++j) Bs[buf][b_k + 4 * j][b_n] = rbv[j];
            };

            float acc[4][4] = {};
            load(0);
            for (int s = 0; s < nsteps; ++s) {
                const int buf = s & 1;
                store(buf);
                __syncthreads();
                if (s + 1 < nsteps) load((s + 1) * BK);  // in flight during the FMAs below
                mma_step(As[buf], Bs[buf], mb, nb, acc);
            }
            // The next tile's first store reuses a buffer slower threads may still be reading.
            __syncthreads();

            // Epilogue: bias, then scatter to NCHW. A thread's 4 columns are consecutive output
            // positions, so 8 lanes write 128 contiguous bytes of one output row.
            MG_UNROLL
            for (int j = 0; j < 4; ++j) {
                const int oc = n0 + nb + j;
                if (oc >= cols) continue;
                const int oimg = oc / OHW, opos = oc - oimg * OHW;
                MG_UNROLL
                for (int i = 0; i < 4; ++i) {
                    const int m = m0 + mb + i;
                    if (m >= K) continue;
                    const float bias = b ? __ldg(b + m) : 0.0f;
                    y[((size_t)oimg * K + m) * OHW + opos] = acc[i][j] + bias;
                }
            }
        }
    }
}

// ---- backward w.r.t. the input ------------------------------------------------------------
// M = C input channels, columns = N·H·W input positions, reduction = K·R·S (k, ki, kj).
// A[c, (k,ki,kj)] = w[k, c, ki, kj]; B = dỸ, the adjoint gather from dy (see the file header).
// Every dx element is produced by exactly one thread: no atomics, no zeroing needed.
extern "C" __global__ void conv2d_backward_input(const float* __restrict__ dy, const float* __restrict__ w,
                                                 float* __restrict__ dx, int N, int C, int H, int W, int K, int R,
                                                 int S, int stride, int pad, int OH, int OW) {
    alignas(16) __shared__ float As[2][BK][LDS];
    alignas(16) __shared__ float Bs[2][BK][LDS];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, KRS = K * RS, HW = H * W, OHW = OH * OW;
    const int cols = N * HW;
    const int mb = micro_row(t), nb = micro_col(t);
    const int a_k = t % BK, a_m = t / BK;
    const int b_n = t % BN, b_k = t / BN;
    const int nsteps = (KRS + BK - 1) / BK;

    for (int m0 = blockIdx.y * BM; m0 < C; m0 += gridDim.y * BM) {
        for (int n0 = blockIdx.x * BN; n0 < cols; n0 += gridDim.x * BN) {
            const int col = n0 + b_n;
            const bool col_ok = col < cols;
            const int img = col_ok ? col / HW : 0;
            const int pos = col_ok ? col - img * HW : 0;
            // oy·stride = (iy + pad) − ki: keep iy + pad and subtract the tap.
            const int iyp = pos / W + pad, ixp = pos % W + pad;
            const float* __restrict__ dys = dy + (size_t)img * K * OHW;

            // A: this thread's reduction index a_k + BK·s as (k·CRS, ki, kj) → w offset hi + c·RS + mid·S + lo.
            Radix3 ra_idx;
            ra_idx.init(a_k, R, S, CRS, BK);
            // B: reduction rows b_k + 4j as (k·OHW, ki, kj).
            Radix3 rb[4];
            MG_UNROLL
            for (int j = 0; j < 4; ++j) rb[j].init(b_k + 4 * j, R, S, OHW, BK);

            float ra[4], rbv[4];
            auto load = [&](int r0) {
                const int ka = r0 + a_k;
                const int woff = ra_idx.hi + ra_idx.mid * S + ra_idx.lo;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int c = m0 + a_m + 16 * j;
                    ra[j] = (c < C && ka < KRS) ? __ldg(w + (size_t)woff + (size_t)c * RS) : 0.0f;
                }
                ra_idx.next();
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int r = r0 + b_k + 4 * j;
                    int oy = iyp - rb[j].mid, ox = ixp - rb[j].lo;
                    bool ok = col_ok && r < KRS;
                    if (stride != 1) {  // uniform branch; VGG's stride-1 path never divides
                        ok = ok && oy >= 0 && ox >= 0 && oy % stride == 0 && ox % stride == 0;
                        oy /= stride;
                        ox /= stride;
                    }
                    ok = ok && (unsigned)oy < (unsigned)OH && (unsigned)ox < (unsigned)OW;
                    rbv[j] = ok ? __ldg(dys + rb[j].hi + oy * OW + ox) : 0.0f;
                    rb[j].next();
                }
            };
            auto store = [&](int buf) {
                MG_UNROLL
                for (int j = 0; j < 4; ++j) As[buf][a_k][a_m + 16 * j] = ra[j];
                MG_UNROLL
                for (int j = 0; j < 4; ++j) Bs[buf][b_k + 4 * j][b_n] = rbv[j];
            };

            float acc[4][4] = {};
            load(0);
            for (int s = 0; s < nsteps; ++s) {
                const int buf = s & 1;
                store(buf);
                __syncthreads();
                if (s + 1 < nsteps) load((s + 1) * BK);
                mma_step(As[buf], Bs[buf], mb, nb, acc);
            }
            __syncthreads();

            MG_UNROLL
            for (int j = 0; j < 4; ++j) {
                const int oc = n0 + nb + j;
                if (oc >= cols) continue;
                const int oimg = oc / HW, opos = oc - oimg * HW;
                MG_UNROLL
                for (int i = 0; i < 4; ++i) {
                    const int c = m0 + mb + i;
                    if (c < C) dx[((size_t)oimg * C + c) * HW + opos] = acc[i][j];
                }
            }
        }
    }
}

// ---- backward w.r.t. the weight -----------------------------------------------------------
// M = K, columns = C·R·S taps, reduction = output positions (n, oy, ox), split into chunks of
// `chunk` positions, chunk index = blockIdx.z (split-K: the weight gradient is a small output
// with a huge reduction, so without the split only ceil(K/64)·ceil(CRS/64) blocks would run).
// Each block atomicAdds its partial 64×64 tile into dw, which the caller zeroes.
// Both operands are staged with the position fastest across threads: 16 threads read 16
// consecutive positions (contiguous in dy, and in x for stride 1), and a thread's position
// (img, oy, ox) is shared by its A and B loads.
extern "C" __global__ void conv2d_backward_weight(const float* __restrict__ dy, const float* __restrict__ x,
                                                  float* __restrict__ dw, int N, int C, int H, int W, int K, int R,
                                                  int S, int stride, int pad, int OH, int OW, int chunk) {
    alignas(16) __shared__ float As[2][BK][LDS];
    alignas(16) __shared__ float Bs[2][BK][LDS];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW;
    const int npos = N * OHW;
    if (npos <= 0) return;
    if (chunk <= 0) chunk = npos;  // defensive: a non-positive chunk means "no split"
    // Written so that a huge chunk (say INT_MAX for "no split") cannot overflow.
    const int nchunks = (npos - 1) / chunk + 1;
    const int mb = micro_row(t), nb = micro_col(t);
    // Both stagings: position kk = t % 16 fixed per thread, tile rows/columns t/16 + 16j.
    const int s_k = t % BK, s_r = t / BK;

    for (int z = blockIdx.z; z < nchunks; z += gridDim.z) {
        const int pbeg = z * chunk;
        const int pend = npos - pbeg <= chunk ? npos : pbeg + chunk;
        const int nsteps = (pend - pbeg + BK - 1) / BK;
        for (int m0 = blockIdx.y * BM; m0 < K; m0 += gridDim.y * BM) {
            for (int n0 = blockIdx.x * BN; n0 < CRS; n0 += gridDim.x * BN) {
                // This thread's 4 weight taps (columns) r = n0 + s_r + 16j, fixed for the tile.
                int tap_off[4], tap_ki[4], tap_kj[4];
                bool tap_ok[4];
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int r = n0 + s_r + 16 * j;
                    tap_ok[j] = r < CRS;
                    const int rr = tap_ok[j] ? r : 0;
                    const int c = rr / RS, rs = rr - c * RS;
                    tap_ki[j] = rs / S;
                    tap_kj[j] = rs - tap_ki[j] * S;
                    tap_off[j] = c * HW;
                }
                // This thread's position p = pbeg + s_k + BK·step as (img·C·HW, oy, ox).
                Radix3 pp;
                pp.init(pbeg + s_k, OH, OW, 1, BK);  // hi = img (stride 1: used for both operands)

                float ra[4], rbv[4];
                auto load = [&](int p0) {
                    const int p = pbeg + p0 + s_k;
                    const bool pok = p < pend;
                    const int img = pp.hi, oy = pp.mid, ox = pp.lo;
                    const float* __restrict__ dys = dy + (size_t)img * K * OHW + oy * OW + ox;
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        const int m = m0 + s_r + 16 * j;
                        ra[j] = (pok && m < K) ? __ldg(dys + (size_t)m * OHW) : 0.0f;
                    }
                    const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
                    const float* __restrict__ xs = x + (size_t)img * C * HW;
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        const int iy = iy0 + tap_ki[j], ix = ix0 + tap_kj[j];
                        const bool ok = pok && tap_ok[j] && (unsigned)iy < (unsigned)H && (unsigned)ix < (unsigned)W;
                        rbv[j] = ok ? __ldg(xs + tap_off[j] + iy * W + ix) : 0.0f;
                    }
                    pp.next();
                };
                auto store = [&](int buf) {
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) As[buf][s_k][s_r + 16 * j] = ra[j];
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) Bs[buf][s_k][s_r + 16 * j] = rbv[j];
                };

                float acc[4][4] = {};
                if (nsteps > 0) load(0);
                for (int s = 0; s < nsteps; ++s) {
                    const int buf = s & 1;
                    store(buf);
                    __syncthreads();
                    if (s + 1 < nsteps) load((s + 1) * BK);
                    mma_step(As[buf], Bs[buf], mb, nb, acc);
                }
                __syncthreads();

                if (nsteps > 0) {
                    MG_UNROLL
                    for (int i = 0; i < 4; ++i) {
                        const int m = m0 + mb + i;
                        if (m >= K) continue;
                        MG_UNROLL
                        for (int j = 0; j < 4; ++j) {
                            const int r = n0 + nb + j;
                            if (r < CRS) atomicAdd(dw + (size_t)m * CRS + r, acc[i][j]);
                        }
                    }
                }
            }
        }
    }
}

SIM_EXPORT(conv2d_forward)
SIM_EXPORT(conv2d_backward_input)
SIM_EXPORT(conv2d_backward_weight)
