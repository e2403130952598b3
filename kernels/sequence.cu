// Token-level kernels: embedding gather, its deterministic backward (each table row sums its own
// tokens' gradients in a fixed order: no atomics) and slices along an axis. As
// engine/src/backend/cpu/sequence.rs.
#include "common.cuh"
#include "device.cuh"

// y[t, :] = table[ids[t], :]; an id outside the table gives NaN instead of a read past it (the op
// checks ids on the host, so this only guards the memory).
extern "C" __global__ void embedding_forward(const float* __restrict__ table, const unsigned int* __restrict__ ids,
                                             float* __restrict__ y, int tokens, int vocab, int dim) {
    const unsigned total = (unsigned)tokens * (unsigned)dim;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)dim); w.i < total; w.next()) {
        const unsigned id = ids[w.q];
        y[w.i] = id < (unsigned)vocab ? table[(size_t)id * dim + w.r] : __int_as_float(0x7fc00000);
    }
}

// dtable[v, c] = Σ dy[p, c] over p = order[offsets[v] .. offsets[v+1]), in that order, in double.
// One thread per table element: the threads of a row read one dy row together (coalesced), and a
// row no token uses is written 0 (the table's gradient is fully written; no zero fill needed).
extern "C" __global__ void embedding_backward(const float* __restrict__ dy, const unsigned int* __restrict__ order,
                                              const unsigned int* __restrict__ offsets, float* __restrict__ dtable,
                                              int vocab, int dim) {
    const unsigned total = (unsigned)vocab * (unsigned)dim;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), (unsigned)dim); w.i < total; w.next()) {
        const unsigned lo = offsets[w.q], hi = offsets[w.q + 1];
        double acc = 0.0;
        for (unsigned j = lo; j < hi; ++j) acc += (double)dy[(size_t)order[j] * dim + w.r];
        dtable[w.i] = (float)acc;
    }
}

// [outer, dim, inner] → [outer, len, inner] from position `start` of the middle axis.
extern "C" __global__ void narrow_forward(const float* __restrict__ x, float* __restrict__ y, int outer, int dim,
                                          int inner, int start, int len) {
    const unsigned block = (unsigned)len * (unsigned)inner;
    const unsigned total = (unsigned)outer * block;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), block); w.i < total; w.next())
        y[w.i] = x[((size_t)w.q * dim + start) * inner + w.r];
}

// The gradient of narrow_forward: dy where the slice was, 0 elsewhere (dx fully written).
extern "C" __global__ void narrow_backward(const float* __restrict__ dy, float* __restrict__ dx, int outer, int dim,
                                           int inner, int start, int len) {
    const unsigned block = (unsigned)dim * (unsigned)inner;
    const unsigned total = (unsigned)outer * block;
    if (total == 0) return;
    for (mg::DivWalk w(mg::ew_start(), mg::ew_stride(), block); w.i < total; w.next()) {
        const unsigned j = w.r / (unsigned)inner;  // position along the sliced axis
        float v = 0.0f;
        if (j >= (unsigned)start && j < (unsigned)(start + len))
            v = dy[((size_t)w.q * len + (j - (unsigned)start)) * inner + (w.r - j * (unsigned)inner)];
        dx[w.i] = v;
    }
}

SIM_EXPORT(embedding_forward)
SIM_EXPORT(embedding_backward)
SIM_EXPORT(narrow_forward)
SIM_EXPORT(narrow_backward)
