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
//   * cheap gathers. The FMAs are one issue slot each, so every instruction of index arithmetic
//     in the main loop costs throughput directly. Each gathered element's address is split into
//     a per-column part (fixed for the whole tile, computed once with divisions) plus a
//     per-reduction-row part (shared by all of a thread's loads in a step, advanced by BK with
//     add-and-carry instead of division), so a load is one integer add, two bounds compares and
//     one 32-bit-index address computation. Out-of-range columns get a sentinel coordinate that
//     fails the bounds compare, so they need no extra test.
// Every load and store is bounds-checked: M, columns and the reduction need not be multiples of
// the tile. Any grid is correct: the tile loops are grid-strided (the ABI's grid gives each block
// exactly one tile).
#include "common.cuh"
#include "device.cuh"
#include "conv_index.cuh"

namespace {

constexpr int BM = 64;       // tile rows (output channels / input channels)
constexpr int BN = 64;       // tile columns (positions / weight taps)
constexpr int BK = 16;       // reduction step
constexpr int THREADS = 256;
// Shared tiles are stored k-major ([BK][rows]) so a thread's 4 consecutive rows/columns are one
// 16-byte load; row lengths stay multiples of 4 floats for that alignment.
// LDA = 68: the A tiles are stored transposed (16 threads of a warp hold consecutive k of one
// row), and the +4 pad turns that store's 16-way bank conflict into a 2-way one.
// LDB = 80 for the gathers staged row-wise (a warp stores 16 consecutive columns of two
// consecutive k rows): 80 ≡ 16 mod 32 banks puts the two rows in disjoint bank halves.
constexpr int LDA = BM + 4;
constexpr int LDB_ROWWISE = BN + 16;
constexpr int LDB_TRANSPOSED = BN + 4;
// A coordinate that fails every bounds test (`(unsigned)(sentinel + tap) >= extent`) for the
// columns past the end of the GEMM, so they need no separate validity check per load.
constexpr int kOutside = -(1 << 30);

static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "each thread stages 4 elements per tile");

// Thread (warp w, lane l) owns rows m_base..m_base+3 and columns n_base..n_base+3 of the tile.
__device__ inline int micro_row(int t) { return (t / 32 / 2) * 16 + (t % 32 / 8) * 4; }
__device__ inline int micro_col(int t) { return (t / 32 % 2) * 32 + (t % 8) * 4; }

// One BK step of the block GEMM out of shared memory: acc += As[:, rows]ᵀ · Bs[:, cols].
template <int LDB>
__device__ inline void mma_step(const float (*As)[LDA], const float (*Bs)[LDB], int mb, int nb, float acc[4][4]) {
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

}  // namespace

// ---- forward ------------------------------------------------------------------------------
// M = K output channels, columns = N·OH·OW output positions, reduction = C·R·S taps (c,ki,kj).
// A = W [K, CRS] row-major, staged with the reduction index fastest across threads (16 threads
// read 64 contiguous bytes of one filter): thread t loads W[m0 + t/16 + 16j][r0 + t%16].
// B = X̃, staged row-wise: thread t loads reduction row r0 + t/16 at columns n0 + t%16 + 16j, so
// 16 threads read 16 consecutive output positions (consecutive input pixels for stride 1) and a
// thread's 4 loads share one (c,ki,kj).
// x offset of (row r = (c,ki,kj), column (img,oy,ox)) = [img·C·HW + iy0·W + ix0] + [c·HW + ki·W + kj]
// with iy0 = oy·stride − pad, ix0 = ox·stride − pad: column part + row part.
extern "C" __global__ void conv2d_forward(const float* __restrict__ x, const float* __restrict__ w,
                                          const float* __restrict__ b, float* __restrict__ y, int N, int C, int H,
                                          int W, int K, int R, int S, int stride, int pad, int OH, int OW) {
    alignas(16) __shared__ float As[2][BK][LDA];
    alignas(16) __shared__ float Bs[2][BK][LDB_ROWWISE];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW;
    const int cols = N * OHW;
    const int mb = micro_row(t), nb = micro_col(t);
    const int a_k = t % BK, a_m = t / BK;  // A staging: k fixed, rows a_m + 16j
    const int b_k = t / 16, b_n = t % 16;  // B staging: row fixed, columns b_n + 16j
    const int nsteps = (CRS + BK - 1) / BK;

    for (int m0 = blockIdx.y * BM; m0 < K; m0 += gridDim.y * BM) {
        for (int n0 = blockIdx.x * BN; n0 < cols; n0 += gridDim.x * BN) {
            // Column parts, fixed for the tile.
            int a_off[4], b_base[4], b_iy[4], b_ix[4];
            bool a_ok[4];
            MG_UNROLL
            for (int j = 0; j < 4; ++j) {
                const int m = m0 + a_m + 16 * j;
                a_ok[j] = m < K;
                a_off[j] = (a_ok[j] ? m : 0) * CRS + a_k;
                const int col = n0 + b_n + 16 * j;
                b_iy[j] = kOutside;
                b_ix[j] = kOutside;
                b_base[j] = 0;
                if (col < cols) {
                    const int img = col / OHW, pos = col - img * OHW;
                    const int oy = pos / OW, ox = pos - oy * OW;
                    b_iy[j] = oy * stride - pad;
                    b_ix[j] = ox * stride - pad;
                    b_base[j] = img * C * HW + b_iy[j] * W + b_ix[j];
                }
            }
            // Row part: this thread's B row r = b_k + BK·step as (c·HW, ki, kj).
            mg::Radix3 rb;
            rb.init(b_k, R, S, HW, BK);

            float ra[4], rbv[4];  // the staged next tile
            auto load = [&](int r0) {
                const bool ka_ok = r0 + a_k < CRS;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) ra[j] = (a_ok[j] && ka_ok) ? __ldg(w + (a_off[j] + r0)) : 0.0f;
                const bool r_ok = r0 + b_k < CRS;
                const int ki = rb.mid, kj = rb.lo;
                const int roff = rb.hi + ki * W + kj;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const bool ok = r_ok && (unsigned)(b_iy[j] + ki) < (unsigned)H && (unsigned)(b_ix[j] + kj) < (unsigned)W;
                    rbv[j] = ok ? __ldg(x + (b_base[j] + roff)) : 0.0f;
                }
                rb.next();
            };
            auto store = [&](int buf) {
                MG_UNROLL
                for (int j = 0; j < 4; ++j) As[buf][a_k][a_m + 16 * j] = ra[j];
                MG_UNROLL
                for (int j = 0; j < 4; ++j) Bs[buf][b_k][b_n + 16 * j] = rbv[j];
            };

            float acc[4][4] = {};
            load(0);
            for (int s = 0; s < nsteps; ++s) {
                const int buf = s & 1;
                store(buf);
                __syncthreads();
                if (s + 1 < nsteps) load((s + 1) * BK);  // in flight during the FMAs below
                mma_step<LDB_ROWWISE>(As[buf], Bs[buf], mb, nb, acc);
            }
            // The next tile's first store reuses a buffer slower threads may still be reading.
            __syncthreads();

            // Epilogue: bias, then scatter to NCHW. A thread's 4 columns are consecutive output
            // positions (usually one output row), so over its j loop a warp's 8 column groups fill
            // whole 128-byte lines of y.
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
                    y[(oimg * K + m) * OHW + opos] = acc[i][j] + bias;
                }
            }
        }
    }
}

// ---- backward w.r.t. the input ------------------------------------------------------------
// M = C input channels, columns = N·H·W input positions, reduction = K·R·S (k, ki, kj).
// A[c, (k,ki,kj)] = w[k, c, ki, kj], staged like the forward's A (k fixed per thread): offset
// k·CRS + ki·S + kj (row part, per step) + c·RS (column part, per tile).
// B = dỸ, staged row-wise like the forward's B. For stride 1, oy = iy + pad − ki and
// dy offset = [img·K·OHW + (iy+pad)·OW + (ix+pad)] + [k·OHW − ki·OW − kj]. Other strides take
// a general path (uniform branch) that also checks divisibility.
// Every dx element is produced by exactly one thread: no atomics, no zeroing needed.
extern "C" __global__ void conv2d_backward_input(const float* __restrict__ dy, const float* __restrict__ w,
                                                 float* __restrict__ dx, int N, int C, int H, int W, int K, int R,
                                                 int S, int stride, int pad, int OH, int OW) {
    alignas(16) __shared__ float As[2][BK][LDA];
    alignas(16) __shared__ float Bs[2][BK][LDB_ROWWISE];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, KRS = K * RS, HW = H * W, OHW = OH * OW;
    const int cols = N * HW;
    const int mb = micro_row(t), nb = micro_col(t);
    const int a_k = t % BK, a_m = t / BK;
    const int b_k = t / 16, b_n = t % 16;
    const int nsteps = (KRS + BK - 1) / BK;

    for (int m0 = blockIdx.y * BM; m0 < C; m0 += gridDim.y * BM) {
        for (int n0 = blockIdx.x * BN; n0 < cols; n0 += gridDim.x * BN) {
            int a_off[4], b_base[4], b_iy[4], b_ix[4];
            bool a_ok[4];
            MG_UNROLL
            for (int j = 0; j < 4; ++j) {
                const int c = m0 + a_m + 16 * j;
                a_ok[j] = c < C;
                a_off[j] = (a_ok[j] ? c : 0) * RS;
                const int col = n0 + b_n + 16 * j;
                b_iy[j] = kOutside;
                b_ix[j] = kOutside;
                b_base[j] = 0;
                if (col < cols) {
                    const int img = col / HW, pos = col - img * HW;
                    const int iy = pos / W, ix = pos - iy * W;
                    b_iy[j] = iy + pad;  // oy·stride + ki
                    b_ix[j] = ix + pad;
                    b_base[j] = img * K * OHW + b_iy[j] * OW + b_ix[j];
                }
            }
            mg::Radix3 ra_idx;  // A: reduction index a_k + BK·step as (k·CRS, ki, kj)
            ra_idx.init(a_k, R, S, CRS, BK);
            mg::Radix3 rb;      // B: reduction row b_k + BK·step as (k·OHW, ki, kj)
            rb.init(b_k, R, S, OHW, BK);

            float ra[4], rbv[4];
            auto load = [&](int r0) {
                const bool ka_ok = r0 + a_k < KRS;
                const int aro = ra_idx.hi + ra_idx.mid * S + ra_idx.lo;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) ra[j] = (a_ok[j] && ka_ok) ? __ldg(w + (a_off[j] + aro)) : 0.0f;
                ra_idx.next();

                const bool r_ok = r0 + b_k < KRS;
                const int ki = rb.mid, kj = rb.lo;
                if (stride == 1) {
                    const int roff = rb.hi - ki * OW - kj;
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        const bool ok =
                            r_ok && (unsigned)(b_iy[j] - ki) < (unsigned)OH && (unsigned)(b_ix[j] - kj) < (unsigned)OW;
                        rbv[j] = ok ? __ldg(dy + (b_base[j] + roff)) : 0.0f;
                    }
                } else {
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        const int ty = b_iy[j] - ki, tx = b_ix[j] - kj;  // oy·stride, ox·stride
                        const int oy = ty / stride, ox = tx / stride;
                        const bool ok = r_ok && ty >= 0 && tx >= 0 && oy * stride == ty && ox * stride == tx &&
                                        oy < OH && ox < OW;
                        // (Evaluated only when ok: a sentinel column's b_iy·OW would overflow.)
                        rbv[j] = ok ? __ldg(dy + (b_base[j] - b_iy[j] * OW - b_ix[j] + rb.hi + oy * OW + ox)) : 0.0f;
                    }
                }
                rb.next();
            };
            auto store = [&](int buf) {
                MG_UNROLL
                for (int j = 0; j < 4; ++j) As[buf][a_k][a_m + 16 * j] = ra[j];
                MG_UNROLL
                for (int j = 0; j < 4; ++j) Bs[buf][b_k][b_n + 16 * j] = rbv[j];
            };

            float acc[4][4] = {};
            load(0);
            for (int s = 0; s < nsteps; ++s) {
                const int buf = s & 1;
                store(buf);
                __syncthreads();
                if (s + 1 < nsteps) load((s + 1) * BK);
                mma_step<LDB_ROWWISE>(As[buf], Bs[buf], mb, nb, acc);
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
                    if (c < C) dx[(oimg * C + c) * HW + opos] = acc[i][j];
                }
            }
        }
    }
}

// ---- backward w.r.t. the weight -----------------------------------------------------------
// M = K, columns = C·R·S taps, reduction = output positions (n, oy, ox), split into chunks of
// `chunk` positions (split-K: the weight gradient is a small output with a huge reduction, so
// without the split only ceil(K/64)·ceil(CRS/64) blocks would run).
// Deterministic: no atomics. Block (x, y, z) sums the chunks z, z + gridDim.z, … in that order
// into its registers and stores its tile to its own split slot,
//   partials[z][m·CRS + r]  (partials: gridDim.z slots of K·CRS floats),
// every element of every slot written (0 where a slot has no chunk), so the caller needs no
// zero fill; splitk_sum (reduce.cu) then adds the slots in order 0, 1, … With gridDim.z = 1 the
// one slot is dw itself.
// Both operands are staged with the position fastest across threads: thread t handles position
// p = p0 + t%16 for tile rows/columns t/16 + 16j, so 16 threads read 16 consecutive positions
// (contiguous in dy, and in x for stride 1), and one position decomposition per step serves all
// 8 of a thread's loads:
//   dy offset = [img·K·OHW + oy·OW + ox] (row part) + k·OHW (column part)
//   x offset  = [img·C·HW + iy0·W + ix0] (row part) + [c·HW + ki·W + kj] (column part).
extern "C" __global__ void conv2d_backward_weight(const float* __restrict__ dy, const float* __restrict__ x,
                                                  float* __restrict__ partials, int N, int C, int H, int W, int K,
                                                  int R, int S, int stride, int pad, int OH, int OW, int chunk) {
    alignas(16) __shared__ float As[2][BK][LDA];
    alignas(16) __shared__ float Bs[2][BK][LDB_TRANSPOSED];

    const int t = threadIdx.x;
    const int RS = R * S, CRS = C * RS, HW = H * W, OHW = OH * OW;
    const int npos = N * OHW;
    if (npos <= 0) chunk = 1;  // no positions: every slot is written with zeros below
    if (chunk <= 0) chunk = npos;  // defensive: a non-positive chunk means "no split"
    // Written so that a huge chunk (say INT_MAX for "no split") cannot overflow.
    const int nchunks = npos > 0 ? (npos - 1) / chunk + 1 : 0;
    const int mb = micro_row(t), nb = micro_col(t);
    const int s_k = t % BK, s_r = t / BK;
    float* __restrict__ slot = partials + (size_t)blockIdx.z * (size_t)K * (size_t)CRS;

    for (int m0 = blockIdx.y * BM; m0 < K; m0 += gridDim.y * BM) {
        for (int n0 = blockIdx.x * BN; n0 < CRS; n0 += gridDim.x * BN) {
            // Column parts: the thread's 4 output channels and 4 taps, fixed for the tile.
            int a_off[4], tap_off[4], tap_ki[4], tap_kj[4];
            bool a_ok[4];
            MG_UNROLL
            for (int j = 0; j < 4; ++j) {
                const int m = m0 + s_r + 16 * j;
                a_ok[j] = m < K;
                a_off[j] = (a_ok[j] ? m : 0) * OHW;
                const int r = n0 + s_r + 16 * j;
                tap_ki[j] = kOutside;  // a tap past C·R·S fails the bounds test
                tap_kj[j] = kOutside;
                tap_off[j] = 0;
                if (r < CRS) {
                    const int c = r / RS, rs = r - c * RS;
                    tap_ki[j] = rs / S;
                    tap_kj[j] = rs - tap_ki[j] * S;
                    tap_off[j] = c * HW + tap_ki[j] * W + tap_kj[j];
                }
            }

            float acc[4][4] = {};  // summed over this block's chunks, in chunk order
            for (int z = blockIdx.z; z < nchunks; z += gridDim.z) {
                const int pbeg = z * chunk;
                const int pend = npos - pbeg <= chunk ? npos : pbeg + chunk;
                const int nsteps = (pend - pbeg + BK - 1) / BK;
                // Row part: position p = pbeg + s_k + BK·step as (img, oy, ox).
                mg::Radix3 pp;
                pp.init(pbeg + s_k, OH, OW, 1, BK);

                float ra[4], rbv[4];
                auto load = [&](int p0) {
                    const bool pok = pbeg + p0 + s_k < pend;
                    const int img = pp.hi, oy = pp.mid, ox = pp.lo;
                    const int dro = img * K * OHW + oy * OW + ox;
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) ra[j] = (pok && a_ok[j]) ? __ldg(dy + (dro + a_off[j])) : 0.0f;
                    const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
                    const int xro = img * C * HW + iy0 * W + ix0;
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        const bool ok =
                            pok && (unsigned)(iy0 + tap_ki[j]) < (unsigned)H && (unsigned)(ix0 + tap_kj[j]) < (unsigned)W;
                        rbv[j] = ok ? __ldg(x + (xro + tap_off[j])) : 0.0f;
                    }
                    pp.next();
                };
                auto store = [&](int buf) {
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) As[buf][s_k][s_r + 16 * j] = ra[j];
                    MG_UNROLL
                    for (int j = 0; j < 4; ++j) Bs[buf][s_k][s_r + 16 * j] = rbv[j];
                };

                if (nsteps > 0) load(0);
                for (int s = 0; s < nsteps; ++s) {
                    const int buf = s & 1;
                    store(buf);
                    __syncthreads();
                    if (s + 1 < nsteps) load((s + 1) * BK);
                    mma_step<LDB_TRANSPOSED>(As[buf], Bs[buf], mb, nb, acc);
                }
                // The next chunk's (or tile's) first store reuses a buffer slower threads may
                // still be reading.
                __syncthreads();
            }

            // Plain stores, zeros included: the slot is fully written whatever the chunking.
            MG_UNROLL
            for (int i = 0; i < 4; ++i) {
                const int m = m0 + mb + i;
                if (m >= K) continue;
                MG_UNROLL
                for (int j = 0; j < 4; ++j) {
                    const int r = n0 + nb + j;
                    if (r < CRS) slot[m * CRS + r] = acc[i][j];
                }
            }
        }
    }
}

SIM_EXPORT(conv2d_forward)
SIM_EXPORT(conv2d_backward_input)
SIM_EXPORT(conv2d_backward_weight)
