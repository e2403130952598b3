// Index arithmetic shared by the implicit-GEMM convolutions (kernels/conv.cu, kernels/conv_tc.cu).
#pragma once

namespace mg {

// A mixed-radix counter (hi, mid, lo) with radices (·, R, S) advanced by a fixed step with carry:
// it tracks the decomposition r = hi·R·S + mid·S + lo of an index as r grows by BK, replacing
// two divisions per step. `hi` is kept pre-multiplied by `hi_stride`.
struct Radix3 {
    int hi, mid, lo;     // hi is hi·hi_stride
    int dhi, dmid, dlo;  // the step, decomposed; dhi pre-multiplied
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

}  // namespace mg
