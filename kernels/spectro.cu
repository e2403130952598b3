// Spectrogram kernels, batched over clips: the mel filterbank projection, librosa's power_to_db
// (with its per-clip reference and top_db floor), crop/pad to a fixed frame count, and the
// backward passes of the first two (so a model could learn through its front end).
//
// Layouts (row-major): power [clips, bins, frames] (librosa's [1 + n_fft/2, t] per clip);
// filterbank [n_mels, bins]; mel and dB [clips, n_mels, frames].
#include "common.cuh"
#include "device.cuh"

// mel[c, m, t] = sum over k in [lo[m], hi[m]) of fb[m, k] * power[c, k, t]: f32 products summed in
// double (as the CPU path does). Only each band's non-zero bins are visited (a Slaney band spans
// a few to ~60 of the 1025 bins). Consecutive threads take consecutive frames, so the power reads
// of a warp are coalesced.
extern "C" __global__ void mel_project(const float* __restrict__ power, const float* __restrict__ fb,
                                       const int* __restrict__ lo, const int* __restrict__ hi,
                                       float* __restrict__ mel, int clips, int bins, int frames, int n_mels) {
    const unsigned n = (unsigned)clips * (unsigned)n_mels * (unsigned)frames;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const int t = (int)(i % (unsigned)frames);
        const int m = (int)((i / (unsigned)frames) % (unsigned)n_mels);
        const int c = (int)(i / ((unsigned)frames * (unsigned)n_mels));
        const float* p = power + (size_t)c * bins * frames + t;
        const float* w = fb + (size_t)m * bins;
        double acc = 0.0;
        for (int k = lo[m]; k < hi[m]; ++k) acc += (double)(w[k] * p[(size_t)k * frames]);
        mel[i] = (float)acc;
    }
}

// dpower[c, k, t] = sum over m of fb[m, k] * dmel[c, m, t] (the filterbank is a constant).
extern "C" __global__ void mel_project_backward(const float* __restrict__ dmel, const float* __restrict__ fb,
                                                float* __restrict__ dpower, int clips, int bins, int frames,
                                                int n_mels) {
    const unsigned n = (unsigned)clips * (unsigned)bins * (unsigned)frames;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const int t = (int)(i % (unsigned)frames);
        const int k = (int)((i / (unsigned)frames) % (unsigned)bins);
        const int c = (int)(i / ((unsigned)frames * (unsigned)bins));
        const float* d = dmel + (size_t)c * n_mels * frames + t;
        double acc = 0.0;
        for (int m = 0; m < n_mels; ++m) acc += (double)(fb[(size_t)m * bins + k] * d[(size_t)m * frames]);
        dpower[i] = (float)acc;
    }
}

// out[c] = max over the clip's `len` values; one block per clip. NaN is dropped (fmax), as the
// callers feed it non-negative powers or finite dB values.
extern "C" __global__ void clip_max(const float* __restrict__ x, float* __restrict__ out, int clips, int len) {
    __shared__ double scratch[mg::kMaxWarps];
    const int c = blockIdx.x;
    const float* xc = x + (size_t)c * len;
    double v = -INFINITY;
    for (int i = threadIdx.x; i < len; i += blockDim.x) v = fmax(v, (double)xc[i]);
    v = mg::warp_max(v);
    const int lane = threadIdx.x % mg::kWarp, warp = threadIdx.x / mg::kWarp;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double m = -INFINITY;
        for (int w = 0; w < (int)((blockDim.x + mg::kWarp - 1) / mg::kWarp); ++w) m = fmax(m, scratch[w]);
        if (c < clips) out[c] = (float)m;
    }
}

// 10·log10(max(amin, v)) rounded to float, as librosa computes on float32 input (via double).
__device__ inline float db_of(float v, float amin) {
    const double kTenOverLn10 = 4.342944819032518;  // 10 / ln(10)
    return (float)(kTenOverLn10 * log((double)fmaxf(amin, v)));
}

// y = 10·log10(max(amin, x)) − 10·log10(max(amin, |ref[c]|)); ref == NULL means ref = 1.0.
extern "C" __global__ void power_to_db_apply(const float* __restrict__ x, const float* __restrict__ ref,
                                             float* __restrict__ y, int clips, int len, float amin) {
    const unsigned n = (unsigned)clips * (unsigned)len;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const int c = (int)(i / (unsigned)len);
        const float ref_db = ref ? db_of(fabsf(ref[c]), amin) : 0.0f;
        y[i] = db_of(x[i], amin) - ref_db;
    }
}

// y = max(y, top[c] − top_db): librosa's dynamic-range floor, per clip.
extern "C" __global__ void db_floor(float* __restrict__ y, const float* __restrict__ top, int clips, int len,
                                    float top_db) {
    const unsigned n = (unsigned)clips * (unsigned)len;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const float floor = top[i / (unsigned)len] - top_db;
        y[i] = fmaxf(y[i], floor);
    }
}

// Elementwise part of the gradient: dx = dy · 10/(ln10 · x) where the dB value follows x: x > amin
// and (no floor, or y above the clip's floor top[c] − top_db). power_to_db_backward_max then adds
// the share of the clip's largest power (the reference and the floor follow it).
extern "C" __global__ void power_to_db_backward(const float* __restrict__ x, const float* __restrict__ y,
                                                const float* __restrict__ dy, const float* __restrict__ top,
                                                float* __restrict__ dx, int clips, int len, float amin,
                                                float top_db) {
    const unsigned n = (unsigned)clips * (unsigned)len;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const bool floored = top && y[i] <= top[i / (unsigned)len] - top_db;
        const bool live = x[i] > amin && !floored;
        dx[i] = live ? (float)((double)dy[i] * 4.342944819032518 / (double)x[i]) : 0.0f;
    }
}

// out[c, r, t] = in[c, r, start_c + t] for t < min(frames, n_c), else pad; n_c = in_frames[c],
// start_c = (n_c − frames)/2 when centre and n_c > frames, else 0. in is [clips, rows, in_stride].
extern "C" __global__ void crop_pad(const float* __restrict__ in, const int* __restrict__ in_frames,
                                    float* __restrict__ out, int clips, int rows, int in_stride, int frames,
                                    int centre, float pad) {
    const unsigned n = (unsigned)clips * (unsigned)rows * (unsigned)frames;
    for (unsigned i = mg::ew_start(); i < n; i += mg::ew_stride()) {
        const int t = (int)(i % (unsigned)frames);
        const int r = (int)((i / (unsigned)frames) % (unsigned)rows);
        const int c = (int)(i / ((unsigned)frames * (unsigned)rows));
        const int nc = in_frames[c];
        const int start = (centre && nc > frames) ? (nc - frames) / 2 : 0;
        out[i] = t < nc ? in[((size_t)c * rows + r) * in_stride + start + t] : pad;
    }
}

// The share of the clip's largest power m (first maximum, as the CPU): with `ref_max` every live
// value's dy subtracts (ref = x[m]); otherwise every floored value's dy adds (the floor is
// max(y) − top_db, and max(y) is m's dB). One block per clip, after power_to_db_backward.
extern "C" __global__ void power_to_db_backward_max(const float* __restrict__ x, const float* __restrict__ y,
                                                    const float* __restrict__ dy, const float* __restrict__ top,
                                                    float* __restrict__ dx, int clips, int len, float amin,
                                                    float top_db, int ref_max) {
    __shared__ double scratch[mg::kMaxWarps];
    __shared__ float best_v[256];
    __shared__ int best_i[256];
    const int c = blockIdx.x;
    const size_t base = (size_t)c * len;
    double s_floored = 0.0, s_live = 0.0;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        const float xi = x[base + i];
        const bool floored = top && y[base + i] <= top[c] - top_db;
        if (floored) s_floored += (double)dy[base + i];
        else if (xi > amin) s_live += (double)dy[base + i];
        if (xi > bv) { bv = xi; bi = i; }  // strided visit: i grows, so ties keep the first
    }
    s_floored = mg::block_sum(s_floored, scratch);
    s_live = mg::block_sum(s_live, scratch);
    if (threadIdx.x < 256) { best_v[threadIdx.x] = bv; best_i[threadIdx.x] = bi; }
    __syncthreads();
    if (threadIdx.x == 0 && c < clips) {
        int n = blockDim.x < 256 ? (int)blockDim.x : 256;
        float v = best_v[0];
        int m = best_i[0];
        for (int t = 1; t < n; ++t)
            if (best_v[t] > v || (best_v[t] == v && best_i[t] < m)) { v = best_v[t]; m = best_i[t]; }
        const double share = ref_max ? -s_live : s_floored;
        if (m < len && v > amin && share != 0.0) dx[base + m] += (float)(share * 4.342944819032518 / (double)v);
    }
}

SIM_EXPORT(mel_project)
SIM_EXPORT(mel_project_backward)
SIM_EXPORT(clip_max)
SIM_EXPORT(power_to_db_apply)
SIM_EXPORT(db_floor)
SIM_EXPORT(power_to_db_backward)
SIM_EXPORT(power_to_db_backward_max)
SIM_EXPORT(crop_pad)
