// Tensor-core and asynchronous-copy primitives (sm_80+), one spelling for both compilers: inline
// PTX under nvcc/NVRTC, the host SIMT layer's emulation otherwise (kernels/sim/simt.h), which
// follows PTX's fragment layouts, cvt.rna rounding and cp.async group semantics exactly, so a
// kernel that mixes up a fragment or reads a cp.async destination before waiting fails on sim.
#pragma once

namespace mg {

// cvt.rna.tf32.f32: x rounded to TF32 (10 mantissa bits, nearest, ties away from zero), as the
// 32-bit pattern mma.sync's .tf32 operands take.
__device__ __forceinline__ unsigned to_tf32(float x) {
#ifdef __CUDACC__
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#else
    return ::sim::detail::cvt_rna_tf32(x);
#endif
}

// d += A·B over one 16×8×8 warp tile, FP32 accumulate; every lane of the (full) warp calls it.
// Fragments (lane l, g = l / 4, t = l % 4): a[i] = A[g + 8·(i % 2)][t + 4·(i / 2)],
// b[i] = B[t + 4·i][g], d[i] = D[g + 8·(i / 2)][2t + i % 2].
__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef __CUDACC__
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    ::sim::detail::mma_tf32_m16n8k8(d, a, b);
#endif
}

// Asynchronous copy of one float from global to shared memory; when !valid, nothing is read and
// the destination becomes 0 (src-size 0: the zero padding of a convolution's gather). `src` must
// still be a valid address (callers pass the tensor's base) as the GPU computes it either way.
__device__ __forceinline__ void cp_async_f32(float* dst, const float* src, bool valid) {
#ifdef __CUDACC__
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(s), "l"(src), "r"(valid ? 4 : 0) : "memory");
#else
    ::sim::detail::cp_async(dst, src, 4, valid ? 4 : 0);
#endif
}

// 16-byte variant: dst and src 16-byte aligned (the GPU faults otherwise, as sim does).
__device__ __forceinline__ void cp_async_f32x4(float* dst, const float* src, bool valid) {
#ifdef __CUDACC__
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
#else
    ::sim::detail::cp_async(dst, src, 16, valid ? 16 : 0);
#endif
}

// Closes the copies issued since the last commit into one group.
__device__ __forceinline__ void cp_async_commit() {
#ifdef __CUDACC__
    asm volatile("cp.async.commit_group;" ::: "memory");
#else
    ::sim::detail::cp_async_commit();
#endif
}

// Waits until at most `Pending` of this thread's committed groups are still in flight. Other
// threads' copies are visible only after a __syncthreads that follows their wait.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef __CUDACC__
    asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
#else
    ::sim::detail::cp_async_wait(Pending);
#endif
}

}  // namespace mg
