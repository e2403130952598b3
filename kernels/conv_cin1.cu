// Convolutions with one input channel (the spectrogram layer of the VGG audio tower: 1 → 64
// channels, 3×3, pad 1, over a 128×1292 map). The implicit-GEMM kernels of conv.cu have a
// reduction of C·R·S = 9 here: the forward wastes most of each 16-deep reduction step and the
// weight gradient (columns = 9 taps) most of each 64-wide tile. These kernels are direct
// convolutions instead.
//
// Shared by both: a block works on output tiles of TH × TW pixels of one image (8 rows × 128
// columns; warp w owns tile row w, lane l the columns l, l+32, l+64, l+96, so every warp-wide
// access of dy/y is 32 consecutive floats of one row: 128-byte coalesced, and the shared-memory
// reads of the input patch hit 32 consecutive words, conflict-free for stride 1). The block
// first stages the tile's input patch, ((TH−1)·stride + R) × ((TW−1)·stride + S) floats with the
// zero padding filled in, into dynamic shared memory; the launcher sizes it and dispatches here
// only when it (and the forward's weights) fit in 48 KB.
//
// Every tile, chunk and pass loop is grid-strided with block-uniform bounds, so any grid is
// correct and every thread reaches every barrier. No atomics: the weight gradient's per-chunk
// partials are summed in a fixed order, so results are bit-reproducible under any block order.
#include "common.cuh"
#include "device.cuh"

// nvcc's "keep this loop rolled" (register pressure); nothing on the host.
#ifdef __CUDACC__
#define CIN1_NO_UNROLL _Pragma("unroll 1")
#else
#define CIN1_NO_UNROLL
#endif

namespace {

constexpr int TH = 8;             // tile rows: one per warp
constexpr int TW = 128;           // tile columns: 4 per lane, strided by 32
constexpr int PX = TW / 32;       // pixels per thread per tile row
constexpr int THREADS = TH * 32;  // 256
constexpr int KG = 8;             // output channels per thread per pass (two float4 of weights)
// Weight gradient: per thread 4 channels × 9 taps (a whole 3×3) of register accumulators.
// (8 channels took 150 registers, one block per SM: too few loads in flight for a kernel that
// streams dy; at 4 the FMAs and patch reads still take well under the time dy's bytes do.)
constexpr int WKG = 4;
constexpr int TAPG = 9;
constexpr int KPASS = TH * WKG;   // weight-gradient channels per block pass (32)

struct Tiles {
    int tiles_x, tiles_y, count;
    __device__ inline Tiles(int N, int OH, int OW)
        : tiles_x((OW + TW - 1) / TW), tiles_y((OH + TH - 1) / TH), count(N * tiles_x * tiles_y) {}
};

// Tile `tile`'s image index and output origin.
__device__ inline void tile_origin(const Tiles& tl, int tile, int& n, int& oy0, int& ox0) {
    const int tx = tile % tl.tiles_x, rest = tile / tl.tiles_x;
    n = rest / tl.tiles_y;
    oy0 = (rest % tl.tiles_y) * TH;
    ox0 = tx * TW;
}

// Stages the input patch [PH][PW] of the tile at (n, oy0, ox0), zero outside the image. Ends
// with a barrier; the caller must have one between its last read of the previous patch and
// this call.
__device__ inline void stage_patch(const float* __restrict__ x, float* patch, int n, int oy0, int ox0, int H, int W,
                                   int stride, int pad, int PH, int PW) {
    const int iy0 = oy0 * stride - pad, ix0 = ox0 * stride - pad;
    const float* xn = x + n * H * W;
    // Row-wise: warp w fills rows w, w+8, … with consecutive lanes on consecutive columns.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int pr = warp; pr < PH; pr += TH) {
        const int iy = iy0 + pr;
        const bool row_ok = (unsigned)iy < (unsigned)H;
        for (int pc = lane; pc < PW; pc += 32) {
            const int ix = ix0 + pc;
            patch[pr * PW + pc] = (row_ok && (unsigned)ix < (unsigned)W) ? __ldg(xn + (iy * W + ix)) : 0.0f;
        }
    }
    __syncthreads();
}

}  // namespace

// ---- forward ------------------------------------------------------------------------------
// Dynamic shared memory: weights ws[R·S][KP] (KP = K rounded up to 8, zero-padded: one 16-byte
// aligned group of 8 channels per tap, read as two broadcast float4), then the patch.
// Per thread and tile: its 4 pixels of tile row `warp`; per pass of 8 channels and per tap, 4
// patch reads + 2 float4 weight reads feed 32 FMAs, accumulated in tap order from the bias.
// Stores: for each channel, 4 warp-wide stores of 32 consecutive floats.
extern "C" __global__ void conv_cin1_forward(const float* __restrict__ x, const float* __restrict__ w,
                                             const float* __restrict__ b, float* __restrict__ y, int N, int H,
                                             int W, int K, int R, int S, int stride, int pad, int OH, int OW) {
    DYNAMIC_SHARED(float, smem);
    const int t = threadIdx.x, warp = t / 32, lane = t % 32;
    const int RS = R * S, KP = (K + KG - 1) / KG * KG;
    const int PH = (TH - 1) * stride + R, PW = (TW - 1) * stride + S;
    float* const ws = smem;
    float* const patch = smem + RS * KP;  // RS·KP is a multiple of 8 floats: patch stays aligned

    for (int i = t; i < RS * KP; i += THREADS) {
        const int tap = i / KP, k = i - tap * KP;
        ws[i] = k < K ? __ldg(w + (k * RS + tap)) : 0.0f;
    }
    // (The first stage_patch barrier publishes ws too.)

    const Tiles tl(N, OH, OW);
    for (int tile = blockIdx.x; tile < tl.count; tile += gridDim.x) {
        int n, oy0, ox0;
        tile_origin(tl, tile, n, oy0, ox0);
        __syncthreads();  // the previous tile's patch reads are done
        stage_patch(x, patch, n, oy0, ox0, H, W, stride, pad, PH, PW);

        const int oy = oy0 + warp;
        const float* prow = patch + warp * stride * PW + lane * stride;
        for (int k0 = 0; k0 < K; k0 += KG) {
            float acc[KG][PX];
            MG_UNROLL
            for (int kk = 0; kk < KG; ++kk) {
                const float bias = (b && k0 + kk < K) ? __ldg(b + (k0 + kk)) : 0.0f;
                MG_UNROLL
                for (int j = 0; j < PX; ++j) acc[kk][j] = bias;
            }
            for (int r = 0; r < R; ++r) {
                for (int s = 0; s < S; ++s) {
                    const float* pp = prow + r * PW + s;
                    float xin[PX];
                    MG_UNROLL
                    for (int j = 0; j < PX; ++j) xin[j] = pp[j * 32 * stride];
                    const float4* wp = reinterpret_cast<const float4*>(ws + ((r * S + s) * KP + k0));
                    const float4 wa = wp[0], wb = wp[1];
                    const float wk[KG] = {wa.x, wa.y, wa.z, wa.w, wb.x, wb.y, wb.z, wb.w};
                    MG_UNROLL
                    for (int kk = 0; kk < KG; ++kk) {
                        MG_UNROLL
                        for (int j = 0; j < PX; ++j) acc[kk][j] = fmaf(wk[kk], xin[j], acc[kk][j]);
                    }
                }
            }
            if (oy < OH) {
                MG_UNROLL
                for (int kk = 0; kk < KG; ++kk) {
                    const int k = k0 + kk;
                    if (k >= K) continue;
                    float* yrow = y + ((n * K + k) * OH + oy) * OW;
                    MG_UNROLL
                    for (int j = 0; j < PX; ++j) {
                        const int ox = ox0 + lane + 32 * j;
                        if (ox < OW) yrow[ox] = acc[kk][j];
                    }
                }
            }
        }
    }
}

// ---- weight gradient ----------------------------------------------------------------------
// dW[k, r, s] = Σ_{n,oy,ox} dy[n,k,oy,ox] · x[n, 0, oy·stride−pad+r, ox·stride−pad+s].
// The N·ceil(OH/8)·ceil(OW/128) tiles are cut into chunks of `tiles_per_chunk` consecutive
// tiles; chunk z writes its partial sums, all K·R·S of them, to partials[z][K·R·S] (every
// element written, no zeroing needed), and reduce.cu's splitk_sum adds the chunks in order.
// Per pass (32 channels × 9 taps: two passes for K = 64 and a 3×3 kernel, each re-staging the
// small x patches), warp w accumulates channels pass·32 + 4w … +3 against taps tg·9 … +8 for
// all its lanes' pixels: per pixel 4 coalesced dy loads (the only large stream: dy is read
// exactly once overall) and 9 patch reads feed 36 FMAs into 36 register accumulators. At the
// end of the chunk the block sums each warp's 32 lanes in shared memory, in lane order.
// Dynamic shared memory: the patch, and at least THREADS·TAPG = 2304 floats for those sums.
extern "C" __global__ void conv_cin1_backward_weight(const float* __restrict__ dy, const float* __restrict__ x,
                                                     float* __restrict__ partials, int N, int H, int W, int K,
                                                     int R, int S, int stride, int pad, int OH, int OW,
                                                     int tiles_per_chunk) {
    DYNAMIC_SHARED(float, patch);
    const int t = threadIdx.x, warp = t / 32, lane = t % 32;
    const int RS = R * S, KRS = K * RS;
    const int PH = (TH - 1) * stride + R, PW = (TW - 1) * stride + S;
    const Tiles tl(N, OH, OW);
    if (tiles_per_chunk <= 0) tiles_per_chunk = tl.count;  // defensive: "no split"
    const int nchunks = tl.count > 0 ? (tl.count - 1) / tiles_per_chunk + 1 : 0;
    const int kpasses = (K + KPASS - 1) / KPASS, tgroups = (RS + TAPG - 1) / TAPG;
    const int ohw = OH * OW;

    for (int z = blockIdx.x; z < nchunks; z += gridDim.x) {
        const int tbeg = z * tiles_per_chunk;
        const int tend = tl.count - tbeg <= tiles_per_chunk ? tl.count : tbeg + tiles_per_chunk;
        for (int kp = 0; kp < kpasses; ++kp) {
            const int k0 = kp * KPASS + warp * WKG;  // this warp's channels (warp-uniform)
            for (int tg = 0; tg < tgroups; ++tg) {
                // The thread's taps as byte offsets into the patch (one add per read in the
                // loop); a tap past R·S reads offset 0 (in range) and is never written out.
                int toff[TAPG];
                MG_UNROLL
                for (int j = 0; j < TAPG; ++j) {
                    const int tap = tg * TAPG + j;
                    toff[j] = tap < RS ? 4 * ((tap / S) * PW + tap % S) : 0;
                }
                float acc[WKG][TAPG] = {};
                for (int tile = tbeg; tile < tend; ++tile) {
                    int n, oy0, ox0;
                    tile_origin(tl, tile, n, oy0, ox0);
                    // dy of the warp's channels one tile row ahead: each pixel's slot is
                    // reloaded with the pixel below right after its FMAs, so a row's 16 loads
                    // are in flight during the next row's work (the first row's during the patch
                    // staging). The row loop stays rolled: unrolled, the registers double.
                    // Lanes past OW and idle warps load nothing (0).
                    const bool active = k0 < K;  // warp-uniform
                    // Channels past K load channel K−1 instead: their accumulators are never
                    // written out, so no per-load channel test is needed.
                    int kofs[WKG];
                    MG_UNROLL
                    for (int kk = 0; kk < WKG; ++kk) kofs[kk] = active ? (k0 + kk < K ? kk : K - 1 - k0) * ohw : 0;
                    const float* dyn = dy + (active ? (n * K + k0) * ohw + oy0 * OW + ox0 + lane : 0);
                    const int rows = OH - oy0 < TH ? OH - oy0 : TH;
                    bool col_ok[PX];
                    MG_UNROLL
                    for (int j = 0; j < PX; ++j) col_ok[j] = ox0 + lane + 32 * j < OW;
                    // One pointer per channel and an unsigned offset: one wide multiply-add per
                    // address.
                    const float* dk[WKG];
                    MG_UNROLL
                    for (int kk = 0; kk < WKG; ++kk) dk[kk] = dyn + kofs[kk];
                    auto load_px = [&](int row, int j, float (&g)[WKG]) {
                        const bool ok = active && row < rows && col_ok[j];
                        const unsigned o = (unsigned)(row * OW + 32 * j);
                        MG_UNROLL
                        for (int kk = 0; kk < WKG; ++kk) g[kk] = ok ? __ldg(dk[kk] + o) : 0.0f;
                    };
                    float g[PX][WKG];  // g[j]: the pixel in column j of the current row
                    MG_UNROLL
                    for (int j = 0; j < PX; ++j) load_px(0, j, g[j]);
                    __syncthreads();  // the previous patch's reads are done
                    stage_patch(x, patch, n, oy0, ox0, H, W, stride, pad, PH, PW);
                    if (!active) continue;  // the barriers above stay block-wide
                    const char* const pbase = reinterpret_cast<const char*>(patch + lane * stride);
                    CIN1_NO_UNROLL
                    for (int row = 0; row < rows; ++row) {
                        const char* prow = pbase + 4 * (row * stride * PW);
                        MG_UNROLL
                        for (int j = 0; j < PX; ++j) {
                            // Columns past OW read zero-filled or unused patch cells, times
                            // dy = 0: the patch covers all TW columns.
                            const char* pp = prow + 4 * (32 * j * stride);
                            float xv[TAPG];
                            MG_UNROLL
                            for (int q = 0; q < TAPG; ++q) xv[q] = *reinterpret_cast<const float*>(pp + toff[q]);
                            MG_UNROLL
                            for (int kk = 0; kk < WKG; ++kk) {
                                MG_UNROLL
                                for (int q = 0; q < TAPG; ++q) acc[kk][q] = fmaf(g[j][kk], xv[q], acc[kk][q]);
                            }
                            load_px(row + 1, j, g[j]);  // the same column, one row down
                        }
                    }
                }
                // Sum each (channel, tap) over the warp's 32 lanes through shared memory (the
                // patch's space; the launcher sizes it for THREADS·TAPG floats), one channel
                // slot at a time, lanes added in order: fixed, and cheaper than 36 butterflies.
                float* const red = patch;
                MG_UNROLL
                for (int kk = 0; kk < WKG; ++kk) {
                    __syncthreads();  // the patch reads (or the previous slot's sums) are done
                    MG_UNROLL
                    for (int q = 0; q < TAPG; ++q) red[t * TAPG + q] = acc[kk][q];
                    __syncthreads();
                    if (t < TH * TAPG) {
                        const int w = t / TAPG, q = t % TAPG;
                        const int k = kp * KPASS + w * WKG + kk, tap = tg * TAPG + q;
                        float v = 0.0f;
                        for (int l = 0; l < 32; ++l) v += red[(w * 32 + l) * TAPG + q];
                        if (k < K && tap < RS) partials[z * KRS + k * RS + tap] = v;
                    }
                }
            }
        }
    }
}

SIM_EXPORT(conv_cin1_forward)
SIM_EXPORT(conv_cin1_backward_weight)
