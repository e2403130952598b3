// The squeeze-and-excitation block's excitation MLP over the squeezed [N, C] channel means, one
// kernel each way (instead of two GEMMs and two activation launches forward, four GEMMs and two
// activation backwards backward). W1 [hid, C], W2 [C, hid], no biases:
//   forward:  hidden = relu(sq·W1ᵀ) [N, hid], gate = sigmoid(hidden·W2ᵀ) [N, C]
//   backward: dz = dgate·gate·(1 − gate), dW2 = dzᵀ·hidden, dpre = (hidden > 0)·(dz·W2),
//             dW1 = dpreᵀ·sq, dsq = dpre·W1
// Every dot product accumulates in double, the CPU backend's order up to the summation order
// (engine/src/backend/cpu/excite.rs), and every sum over the batch runs in sample order inside one
// thread: dW1 and dW2 are bit-reproducible, with no atomics. These tensors are tiny (16×512 in
// the model) next to the activation passes around them (pool.cu, se.cu); what matters here is
// the launches saved.
#include "common.cuh"
#include "device.cuh"

// Grid [min(n, 4096)], block 256 (whole warps): one block per sample, grid-stride. hidden is
// written and then read back by the same block (after the barrier), so it is not __restrict__.
extern "C" __global__ void se_excite_forward(const float* __restrict__ sq, const float* __restrict__ w1,
                                             const float* __restrict__ w2, float* hidden, float* __restrict__ gate,
                                             int n, int c, int hid) {
    const int lane = (int)threadIdx.x % mg::kWarp, warp = (int)threadIdx.x / mg::kWarp;
    const int nwarps = (int)blockDim.x / mg::kWarp;
    for (int s = blockIdx.x; s < n; s += gridDim.x) {
        const float* q = sq + (size_t)s * c;
        float* h = hidden + (size_t)s * hid;
        // One warp per hidden unit: lanes stride along the contiguous W1 row.
        for (int j = warp; j < hid; j += nwarps) {
            const float* w = w1 + (size_t)j * c;
            double acc = 0.0;
            for (int k = lane; k < c; k += mg::kWarp) acc += (double)q[k] * (double)w[k];
            acc = mg::warp_sum(acc);
            const float v = (float)acc;
            if (lane == 0) h[j] = v > 0.0f ? v : 0.0f;  // NaN -> 0, as the CPU's ReLU
        }
        __syncthreads();
        // One thread per channel: hid multiply-adds along its W2 row.
        for (int i = (int)threadIdx.x; i < c; i += (int)blockDim.x) {
            const float* w = w2 + (size_t)i * hid;
            double acc = 0.0;
            for (int j = 0; j < hid; ++j) acc += (double)h[j] * (double)w[j];
            const float z = (float)acc;
            gate[(size_t)s * c + i] = 1.0f / (1.0f + expf(-z));
        }
        __syncthreads();  // h is complete before any warp moves on (keeps the phases apart)
    }
}

// dz for sample s, channel i: the sigmoid's backward from the saved output, the CPU's d·y·(1−y).
__device__ inline float excite_dz(const float* __restrict__ dgate, const float* __restrict__ gate, size_t e) {
    const float g = gate[e];
    return dgate[e] * g * (1.0f - g);
}

// Grid [1], block 1024: the batch sums need every sample, and a second launch (or a grid-wide
// barrier) would cost more than these ~N·C·hid·3 multiply-adds. dpre [n, hid] is scratch
// written in phase 1 and read in phase 2.
extern "C" __global__ void se_excite_backward(const float* __restrict__ dgate, const float* __restrict__ sq,
                                              const float* __restrict__ hidden, const float* __restrict__ gate,
                                              const float* __restrict__ w1, const float* __restrict__ w2, float* dpre,
                                              float* __restrict__ dsq, float* __restrict__ dw1,
                                              float* __restrict__ dw2, int n, int c, int hid) {
    if (blockIdx.x != 0) return;  // the whole block leaves: no barrier is skipped by part of it
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    // Phase 1a: dpre[s, j], j fastest across threads, so a warp reads a contiguous run of a W2
    // row and one dz (a broadcast) per step.
    for (int e = t; e < n * hid; e += nt) {
        const int s = e / hid, j = e - (e / hid) * hid;
        double acc = 0.0;
        for (int i = 0; i < c; ++i)
            acc += (double)excite_dz(dgate, gate, (size_t)s * c + i) * (double)w2[(size_t)i * hid + j];
        dpre[e] = hidden[e] > 0.0f ? (float)acc : 0.0f;
    }
    // Phase 1b: dW2[i, j] = Σ_s dz[s, i]·hidden[s, j], samples in order.
    for (int e = t; e < c * hid; e += nt) {
        const int i = e / hid, j = e - (e / hid) * hid;
        double acc = 0.0;
        for (int s = 0; s < n; ++s)
            acc += (double)excite_dz(dgate, gate, (size_t)s * c + i) * (double)hidden[(size_t)s * hid + j];
        dw2[e] = (float)acc;
    }
    __syncthreads();  // dpre complete
    // Phase 2a: dW1[j, k] = Σ_s dpre[s, j]·sq[s, k], k fastest (coalesced sq rows).
    for (int e = t; e < hid * c; e += nt) {
        const int j = e / c, k = e - (e / c) * c;
        double acc = 0.0;
        for (int s = 0; s < n; ++s) acc += (double)dpre[(size_t)s * hid + j] * (double)sq[(size_t)s * c + k];
        dw1[e] = (float)acc;
    }
    // Phase 2b: dsq[s, k] = Σ_j dpre[s, j]·W1[j, k], k fastest (coalesced W1 rows).
    for (int e = t; e < n * c; e += nt) {
        const int s = e / c, k = e - (e / c) * c;
        double acc = 0.0;
        for (int j = 0; j < hid; ++j) acc += (double)dpre[(size_t)s * hid + j] * (double)w1[(size_t)j * c + k];
        dsq[e] = (float)acc;
    }
}

SIM_EXPORT(se_excite_forward)
SIM_EXPORT(se_excite_backward)
