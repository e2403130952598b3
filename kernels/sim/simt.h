// The host SIMT layer: the CUDA subset moodgrad's kernels use, as plain C++20 for g++/clang.
//
// kernels/*.cu include "common.cuh", which includes this header when not under nvcc. Each block's
// threads run as fibers on one OS thread (kernels/sim/simt.cpp); a fiber runs until it reaches
// __syncthreads, a warp collective or its end, and the ready fibers resume in a seeded shuffled
// order (MOODGRAD_SIM_SHUFFLE). Blocks are spread over a pool of OS threads.
//
// Only what is declared here exists for a kernel: anything else (sinf, printf, __syncthreads_or,
// atomicSub, __constant__, ...) fails to compile, so a kernel never silently differs from CUDA.
// Restrictions kernel authors must know are listed in kernels/sim/README.md.
#pragma once

#ifdef __CUDACC__
#error "kernels/sim/simt.h is the host SIMT layer; under nvcc include common.cuh only"
#endif

#include <stddef.h>

#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers ---------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ __inline__ __attribute__((always_inline))
// A block's fibers share their OS thread's copy; blocks on other OS threads have their own.
// The array keeps the previous block's contents (it is not cleared): never read before writing.
#define __shared__ static thread_local

// ---- built-in vector types and indices ----------------------------------------------------

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// CUDA's vector types with CUDA's alignment (8 bytes for the 2-wide, 16 for the 4-wide ones), so
// `*reinterpret_cast<const float4*>(p + i)` is the same 16-byte access as on the GPU. Kernels are
// compiled with -fsanitize=alignment: a misaligned access (p + i not a multiple of 16 bytes)
// fails the launch naming the file, line and address, as the GPU faults ("misaligned address")
// where x86 would silently load.
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

namespace sim {

// The part of a fiber a kernel sees. The runtime's fiber record begins with it.
struct ThreadCtx {
    uint3 tid;
};

struct BlockCtx {
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};

namespace detail {

// The running fiber of this OS thread (every fiber of a block runs on the same OS thread, and
// the scheduler sets this before resuming one) and the block it belongs to. constinit: no
// dynamic initialisation, so an access is a plain TLS load, not a call to a TLS wrapper.
extern thread_local constinit ThreadCtx* t_thread;
extern thread_local constinit BlockCtx t_block;

// Not constexpr on purpose: CUDA's warpSize is a run-time value, so `int a[warpSize]` must not
// compile here either.
inline int warp_size() noexcept {
    return 32;
}

enum class WarpOp : int { Shfl = 0, Up = 1, Down = 2, Xor = 3, Sync = 4, Ballot = 5, Any = 6, All = 7, Mma = 8 };

// The runtime's entry points (simt.cpp). Each may suspend the calling fiber.
void syncthreads(const char* file, unsigned line, unsigned column);
unsigned long long warp_collective(WarpOp op, unsigned mask, unsigned long long bits, int arg, int width,
                                   int bytes);
unsigned activemask(const char* file, unsigned line, unsigned column);
void* dynamic_shared();

template <class T>
inline T shuffle(WarpOp op, unsigned mask, T v, int arg, int width) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8);
    unsigned long long bits = 0;
    __builtin_memcpy(&bits, &v, sizeof(T));
    bits = warp_collective(op, mask, bits, arg, width, (int)sizeof(T));
    T out;
    __builtin_memcpy(&out, &bits, sizeof(T));
    return out;
}

}  // namespace detail
}  // namespace sim

#define threadIdx (static_cast<const ::uint3&>(::sim::detail::t_thread->tid))
#define blockIdx (static_cast<const ::uint3&>(::sim::detail::t_block.block_idx))
#define blockDim (static_cast<const ::dim3&>(::sim::detail::t_block.block_dim))
#define gridDim (static_cast<const ::dim3&>(::sim::detail::t_block.grid_dim))
#define warpSize (::sim::detail::warp_size())

// Dynamic shared memory: `shared_bytes` of the launch, 16-byte aligned (64 in fact), filled with
// 0xFF bytes (NaN as float/double, -1 as int) before every block so reads of unwritten shared
// memory show up in tests.
#define DYNAMIC_SHARED(T, name) T* const name = static_cast<T*>(::sim::detail::dynamic_shared())

// ---- synchronisation ----------------------------------------------------------------------

// Every thread of the block must reach the same __syncthreads (same source location); a thread
// that exits, or waits at another call site, makes the launch fail with an error naming the block.
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
    ::sim::detail::syncthreads(loc.file_name(), loc.line(), loc.column());
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)::sim::detail::warp_collective(::sim::detail::WarpOp::Sync, mask, 0, 0, 32, 0);
}

inline void __threadfence() noexcept {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// ---- tensor cores and asynchronous copies (sm_80+) ------------------------------------------
// What kernels/mma.cuh's wrappers call when not under nvcc (under nvcc they are inline PTX):
// `cvt.rna.tf32.f32`, `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` with PTX's fragment
// layouts, and `cp.async` with commit and wait groups. Kernels use the mg:: wrappers, never these.
namespace sim::detail {
// cvt.rna.tf32.f32: round to 10 mantissa bits, nearest, ties away from zero; the result is a
// 32-bit pattern with the low 13 bits clear (NaN becomes 0x7fffffff).
inline unsigned cvt_rna_tf32(float x) noexcept {
    const unsigned u = __builtin_bit_cast(unsigned, x);
    if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x007fffffu) ? 0x7fffffffu : u;
    return (u + 0x1000u) & 0xffffe000u;
}
// d = A·B + d for the warp's 16×8×8 tile. A warp collective: all 32 lanes of a full warp must
// call it together (mma.sync.aligned); operands must be in tf32 form (low 13 bits clear).
void mma_tf32_m16n8k8(float* d, const unsigned* a, const unsigned* b);
// cp.async of `bytes` (4, 8 or 16) from global `src` to shared `dst`, reading `src_bytes` of
// them and zero-filling the rest. The copy lands only when a later cp_async_wait covers its
// group: until then `dst` keeps whatever it held (0xFF bytes in fresh dynamic shared memory).
void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes);
void cp_async_commit();
// Completes every committed group but the newest `pending` ones (cp.async.wait_group).
void cp_async_wait(unsigned pending);
}  // namespace sim::detail

// ---- warp collectives ---------------------------------------------------------------------
// Every lane named in `mask` must call the same collective, and every lane named must exist: a
// full mask in the partial last warp of a block whose size is not a multiple of 32 fails the
// launch (CUDA leaves it undefined). A lane reading from a lane outside `mask` gets its own value.

#define SIM_SHUFFLES(T)                                                                           \
    inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize) {                \
        return ::sim::detail::shuffle(::sim::detail::WarpOp::Shfl, mask, v, src_lane, width);    \
    }                                                                                             \
    inline T __shfl_up_sync(unsigned mask, T v, unsigned int delta, int width = warpSize) {       \
        return ::sim::detail::shuffle(::sim::detail::WarpOp::Up, mask, v, (int)delta, width);     \
    }                                                                                             \
    inline T __shfl_down_sync(unsigned mask, T v, unsigned int delta, int width = warpSize) {     \
        return ::sim::detail::shuffle(::sim::detail::WarpOp::Down, mask, v, (int)delta, width);   \
    }                                                                                             \
    inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {           \
        return ::sim::detail::shuffle(::sim::detail::WarpOp::Xor, mask, v, lane_mask, width);     \
    }
SIM_SHUFFLES(float)
SIM_SHUFFLES(double)
SIM_SHUFFLES(int)
SIM_SHUFFLES(unsigned int)
SIM_SHUFFLES(long long)
SIM_SHUFFLES(unsigned long long)
#undef SIM_SHUFFLES

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return (unsigned)::sim::detail::warp_collective(::sim::detail::WarpOp::Ballot, mask, predicate != 0, 0, 32, 4);
}
inline int __any_sync(unsigned mask, int predicate) {
    return (int)::sim::detail::warp_collective(::sim::detail::WarpOp::Any, mask, predicate != 0, 0, 32, 4);
}
inline int __all_sync(unsigned mask, int predicate) {
    return (int)::sim::detail::warp_collective(::sim::detail::WarpOp::All, mask, predicate != 0, 0, 32, 4);
}
// The lanes of the caller's warp that are executing this same __activemask() call. Fibers have no
// program counter to compare, so the call is a rendezvous: it returns once every other lane of
// the warp has arrived here too, exited, or blocked (at __syncthreads or a warp collective); the
// mask is the lanes that arrived at this call site. Lanes of a partial last warp that do not
// exist are never in it. So `if (i >= n) return; m = __activemask();` gives CUDA's mask.
inline unsigned __activemask(std::source_location loc = std::source_location::current()) {
    return ::sim::detail::activemask(loc.file_name(), loc.line(), loc.column());
}

// ---- atomics (relaxed, like CUDA's device-scope atomics) ----------------------------------
// GCC's __atomic builtins, which is what std::atomic_ref compiles to; <atomic> itself is not
// included because in C++20 it drags <cstdio>, <cstdlib> and more into every kernel.

namespace sim::detail {
template <class T>
inline T atomic_add(T* p, T v) {
    if constexpr (std::is_integral_v<T>) {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    } else {
        T old, sum;
        __atomic_load(p, &old, __ATOMIC_RELAXED);
        do {
            sum = old + v;
        } while (!__atomic_compare_exchange(p, &old, &sum, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
        return old;
    }
}
template <class T>
inline T atomic_exch(T* p, T v) {
    T old;
    __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
    return old;
}
template <class T>
inline T atomic_cas(T* p, T compare, T v) {
    __atomic_compare_exchange(p, &compare, &v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;  // the old value, whether or not the swap happened
}
template <class T, bool Max>
inline T atomic_extremum(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while ((Max ? old < v : v < old) &&
           !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
}  // namespace sim::detail

inline float atomicAdd(float* p, float v) { return ::sim::detail::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return ::sim::detail::atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return ::sim::detail::atomic_add(p, v); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return ::sim::detail::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return ::sim::detail::atomic_add(p, v);
}
inline int atomicMax(int* p, int v) { return ::sim::detail::atomic_extremum<int, true>(p, v); }
inline unsigned int atomicMax(unsigned int* p, unsigned int v) {
    return ::sim::detail::atomic_extremum<unsigned int, true>(p, v);
}
inline int atomicMin(int* p, int v) { return ::sim::detail::atomic_extremum<int, false>(p, v); }
inline unsigned int atomicMin(unsigned int* p, unsigned int v) {
    return ::sim::detail::atomic_extremum<unsigned int, false>(p, v);
}
inline int atomicCAS(int* p, int compare, int v) { return ::sim::detail::atomic_cas(p, compare, v); }
inline unsigned int atomicCAS(unsigned int* p, unsigned int compare, unsigned int v) {
    return ::sim::detail::atomic_cas(p, compare, v);
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
    return ::sim::detail::atomic_cas(p, compare, v);
}
inline int atomicExch(int* p, int v) { return ::sim::detail::atomic_exch(p, v); }
inline unsigned int atomicExch(unsigned int* p, unsigned int v) { return ::sim::detail::atomic_exch(p, v); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) {
    return ::sim::detail::atomic_exch(p, v);
}
inline float atomicExch(float* p, float v) { return ::sim::detail::atomic_exch(p, v); }

// ---- math ---------------------------------------------------------------------------------
// The C library's functions, declared here one by one (no <math.h>: whatever is not listed must
// not compile). Host results are glibc's correctly-rounded-or-close ones; CUDA's differ by a few
// ulp for the transcendental functions, and __expf/__logf/rsqrtf are approximations on the GPU.

extern "C" {
float expf(float) noexcept;
float logf(float) noexcept;
float log1pf(float) noexcept;
float sqrtf(float) noexcept;
float fmaxf(float, float) noexcept;
float fminf(float, float) noexcept;
float fabsf(float) noexcept;
float tanhf(float) noexcept;
float erff(float) noexcept;
float powf(float, float) noexcept;
float floorf(float) noexcept;
float ceilf(float) noexcept;
float fmaf(float, float, float) noexcept;
double exp(double) noexcept;
double log(double) noexcept;
double sqrt(double) noexcept;
double fabs(double) noexcept;
double fmax(double, double) noexcept;
double fmin(double, double) noexcept;
}

// CUDA's float overloads of the double-named functions (exp(float) is expf, not exp in double).
inline float exp(float x) noexcept { return expf(x); }
inline float log(float x) noexcept { return logf(x); }
inline float sqrt(float x) noexcept { return sqrtf(x); }
inline float fabs(float x) noexcept { return fabsf(x); }
inline float fmax(float a, float b) noexcept { return fmaxf(a, b); }
inline float fmin(float a, float b) noexcept { return fminf(a, b); }

inline float rsqrtf(float x) noexcept { return 1.0f / sqrtf(x); }
inline float __expf(float x) noexcept { return expf(x); }
inline float __logf(float x) noexcept { return logf(x); }
inline float __fdividef(float a, float b) noexcept { return a / b; }

inline bool isfinite(float x) noexcept { return __builtin_isfinite(x); }
inline bool isfinite(double x) noexcept { return __builtin_isfinite(x); }
inline bool isnan(float x) noexcept { return __builtin_isnan(x); }
inline bool isnan(double x) noexcept { return __builtin_isnan(x); }
inline bool isinf(float x) noexcept { return __builtin_isinf(x); }
inline bool isinf(double x) noexcept { return __builtin_isinf(x); }

inline int __float_as_int(float x) noexcept { return __builtin_bit_cast(int, x); }
inline unsigned int __float_as_uint(float x) noexcept { return __builtin_bit_cast(unsigned int, x); }
inline float __int_as_float(int x) noexcept { return __builtin_bit_cast(float, x); }
inline float __uint_as_float(unsigned int x) noexcept { return __builtin_bit_cast(float, x); }

// Integer min/max only: min(float, float) etc. is ambiguous here, so it does not compile.
inline int min(int a, int b) noexcept { return a < b ? a : b; }
inline int max(int a, int b) noexcept { return a < b ? b : a; }
inline unsigned int min(unsigned int a, unsigned int b) noexcept { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) noexcept { return a < b ? b : a; }
inline long long min(long long a, long long b) noexcept { return a < b ? a : b; }
inline long long max(long long a, long long b) noexcept { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) noexcept { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) noexcept { return a < b ? b : a; }

template <class T>
inline T __ldg(const T* p) {
    return *p;
}

// Spelled exactly as glibc's <math.h> and GCC's <float.h> do, so including those later is silent.
#ifndef INFINITY
#define INFINITY (__builtin_inff ())
#endif
#ifndef FLT_MAX
#define FLT_MAX __FLT_MAX__
#endif

// ---- launching ----------------------------------------------------------------------------

namespace sim {

// Runs the kernel body `entry(closure)` once per thread of the grid. Returns 0 or an error code;
// the message is in moodgrad_sim_last_error().
using Entry = void (*)(const void* closure);
int run_grid(const char* name, const unsigned* grid, const unsigned* block, unsigned shared_bytes, Entry entry,
             const void* closure);
// Records a launch error (for argument problems found before run_grid); returns the error code.
int launch_error(const char* name, const char* message);

namespace detail {

// A parameter's type as one byte: base type in bits 0-3 (0 = other, 1 void, 2 bool, 3 char,
// 4 signed char, 5 unsigned char, 6 short, 7 unsigned short, 8 int, 9 unsigned int, 10 long,
// 11 unsigned long, 12 long long, 13 unsigned long long, 14 float, 15 double), bit 4 pointer,
// bit 5 pointee const, bit 6 pointer to pointer. engine/src/backend/sim/ffi.rs decodes it.
template <class T>
constexpr unsigned char base_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, void>) return 1;
    else if constexpr (std::is_same_v<U, bool>) return 2;
    else if constexpr (std::is_same_v<U, char>) return 3;
    else if constexpr (std::is_same_v<U, signed char>) return 4;
    else if constexpr (std::is_same_v<U, unsigned char>) return 5;
    else if constexpr (std::is_same_v<U, short>) return 6;
    else if constexpr (std::is_same_v<U, unsigned short>) return 7;
    else if constexpr (std::is_same_v<U, int>) return 8;
    else if constexpr (std::is_same_v<U, unsigned int>) return 9;
    else if constexpr (std::is_same_v<U, long>) return 10;
    else if constexpr (std::is_same_v<U, unsigned long>) return 11;
    else if constexpr (std::is_same_v<U, long long>) return 12;
    else if constexpr (std::is_same_v<U, unsigned long long>) return 13;
    else if constexpr (std::is_same_v<U, float>) return 14;
    else if constexpr (std::is_same_v<U, double>) return 15;
    else return 0;
}

template <class T>
constexpr unsigned char type_code() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        if constexpr (std::is_pointer_v<P>) return 0x40 | 0x10;
        else return (unsigned char)(0x10 | (std::is_const_v<P> ? 0x20 : 0) | base_code<P>());
    } else {
        return base_code<T>();
    }
}

template <class... A, size_t... I>
inline std::tuple<std::remove_cv_t<A>...> unpack(void** args, std::index_sequence<I...>) {
    return std::tuple<std::remove_cv_t<A>...>{*static_cast<const std::remove_cv_t<A>*>(args[I])...};
}

}  // namespace detail

// cuLaunchKernel-style: args[i] points at the i-th argument's value.
template <class... A>
int launch(void (*fn)(A...), const char* name, const unsigned* grid, const unsigned* block, unsigned shared_bytes,
           void** args) {
    static_assert((std::is_trivially_copyable_v<A> && ...), "kernel parameters must be trivially copyable");
    if constexpr (sizeof...(A) > 0) {
        if (args == nullptr) return launch_error(name, "argument array is NULL");
        for (size_t i = 0; i < sizeof...(A); ++i)
            if (args[i] == nullptr) return launch_error(name, "an argument pointer is NULL");
    }
    struct Closure {
        void (*fn)(A...);
        std::tuple<std::remove_cv_t<A>...> args;
    };
    const Closure closure{fn, detail::unpack<A...>(args, std::index_sequence_for<A...>{})};
    return run_grid(
        name, grid, block, shared_bytes,
        [](const void* p) {
            const Closure* c = static_cast<const Closure*>(p);
            std::apply(c->fn, c->args);
        },
        &closure);
}

// The kernel's arity; *codes = one type code per parameter (see type_code).
template <class... A>
unsigned info(void (*)(A...), const unsigned char** codes) {
    static constexpr unsigned char table[sizeof...(A) + 1] = {detail::type_code<A>()..., 0xff};
    *codes = table;
    return (unsigned)sizeof...(A);
}

}  // namespace sim

// One per kernel, at file scope after the kernel's definition: the launcher and type info the
// generated registry (engine/build.rs) points at.
#define SIM_EXPORT(name)                                                                             \
    extern "C" int moodgrad_sim_launch_##name(const unsigned* grid, const unsigned* block,           \
                                              unsigned shared_bytes, void** args) {                  \
        return ::sim::launch(name, #name, grid, block, shared_bytes, args);                         \
    }                                                                                                \
    extern "C" unsigned moodgrad_sim_info_##name(const unsigned char** codes) {                      \
        return ::sim::info(name, codes);                                                             \
    }
