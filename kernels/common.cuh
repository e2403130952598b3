// Included first by every kernels/*.cu. Under nvcc it only defines the two macros the host
// build needs; everywhere else it brings in the host SIMT layer (kernels/sim/), which compiles
// the same source as C++20 so CI runs every kernel on the CPU.
//
//   SIM_EXPORT(name)         once per kernel, at file scope after its definition: the host
//                            launcher the registry (engine/build.rs) points at. Nothing under nvcc.
//   DYNAMIC_SHARED(T, name)  inside a kernel: `name` is a T* to the launch's dynamic shared
//                            memory (16-byte aligned). Replaces `extern __shared__ T name[]`.
#pragma once

#ifdef __CUDACC__
#define SIM_EXPORT(name)
// The host layer provides FLT_MAX (as CUDA code usually gets it from <cfloat>); nvcc and NVRTC
// do not predefine it, so the same kernel source must find it here too.
#ifndef FLT_MAX
#define FLT_MAX 3.402823466e+38F
#endif
// Likewise INFINITY (<cmath>'s, which nvcc pulls in but NVRTC does not have).
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
// One untyped array for every kernel, so kernels in one file may view it as different types.
#define DYNAMIC_SHARED(T, name)                                         \
    extern __shared__ __align__(16) unsigned char moodgrad_dynamic_shared_[]; \
    T* const name = reinterpret_cast<T*>(moodgrad_dynamic_shared_)
#else
#include "sim/simt.h"
#endif
