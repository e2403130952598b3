// Deliberately order-dependent variants of production kernels: the mutations that the
// determinism tests (tests/sim_determinism.rs) must be shown to catch. Never launched by the
// backend.
#include "common.cuh"
#include "device.cuh"

// splitk_sum (reduce.cu) as it must NOT be written: out[i] += partials[s·len + i] with a float
// atomicAdd per split slot s, so each element's additions happen in the order the blocks that
// own the slots run. Block (x, y) adds slots s = y, y + gridDim.y, … over elements grid-strided
// in x; `out` is zeroed by the caller. Grid (ceil(len/256), splits): one block per (column, slot).
extern "C" __global__ void mut_splitk_sum_atomic(const float* __restrict__ partials, float* __restrict__ out,
                                                 int splits, int len) {
    for (int s = blockIdx.y; s < splits; s += gridDim.y) {
        const float* p = partials + (size_t)s * (unsigned)len;
        for (unsigned i = mg::ew_start(); i < (unsigned)len; i += mg::ew_stride()) atomicAdd(out + i, p[i]);
    }
}

SIM_EXPORT(mut_splitk_sum_atomic)
