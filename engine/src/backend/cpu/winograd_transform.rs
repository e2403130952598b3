//! The four Winograd transforms of F(m×m, 3×3) (Lavin & Gray 2016), each on NR tiles at once.
//!
//! A tile is an m×m block of outputs and the (m+2)×(m+2) input patch it reads. The tiles of one
//! transform call sit in NR lanes; lane l holds tile l of a *panel* (NR consecutive tiles in
//! (sample, tile row, tile column) order, so a panel may span tile rows and samples). Every value
//! is a lane vector `[T; NR]`, so the arithmetic vectorizes across tiles.
//!
//! Forward:          y = Aᵀ [(G w Gᵀ) ⊙ (Bᵀ d B)] A        per tile and channel pair, summed over c_in
//! Weight gradient:  dw = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G
//! The input gradient is a forward pass of the adjoint convolution (see `conv.rs`).

use super::microkernel::{self, MR, NR, has_simd};
use crate::backend::ConvGeom;
use crate::float::Float;

/// A tile size: its matrices, in the points 0, ±1, ±2 (F4) / 0, ±1 (F2) and ∞.
pub trait TileSize: Copy + Send + Sync + 'static {
    /// Outputs per tile side.
    const M: usize;
    /// Inputs per tile side: M + 2.
    const A: usize;
    /// Bᵀ (A×A) in the top-left corner.
    const BT: [[f64; 6]; 6];
    /// G (A×3).
    const G: [[f64; 3]; 6];
    /// Aᵀ (M×A).
    const AT: [[f64; 6]; 4];
}

/// F(2×2, 3×3): 16 multiplies per 4 outputs instead of 36.
#[derive(Clone, Copy, Debug)]
pub struct F2;
/// F(4×4, 3×3): 36 multiplies per 16 outputs instead of 144.
#[derive(Clone, Copy, Debug)]
pub struct F4;

impl TileSize for F2 {
    const M: usize = 2;
    const A: usize = 4;
    const BT: [[f64; 6]; 6] = [
        [1.0, 0.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ];
    const G: [[f64; 3]; 6] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0], [0.0; 3], [0.0; 3]];
    const AT: [[f64; 6]; 4] = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, -1.0, 0.0, 0.0], [0.0; 6], [0.0; 6]];
}

impl TileSize for F4 {
    const M: usize = 4;
    const A: usize = 6;
    const BT: [[f64; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
}

/// One lane vector.
pub type Lanes<T> = [T; NR];

/// acc += c · v, with the coefficient's special cases (0, ±1) folded at compile time: every
/// caller passes an entry of a constant matrix with constant indices, after inlining.
#[inline(always)]
fn axpy<T: Float>(acc: &mut Lanes<T>, c: f64, v: &Lanes<T>) {
    if c == 0.0 {
    } else if c == 1.0 {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += x;
        }
    } else if c == -1.0 {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a -= x;
        }
    } else {
        let c = T::from_f64(c);
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += c * x;
        }
    }
}

/// A run of lanes [l0, l0 + len) holding tiles (n, ty, tx0 + 0..len) of one tile row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub n: usize,
    pub ty: usize,
    pub tx0: usize,
    pub l0: usize,
    pub len: usize,
}

/// The tile grid of a stride-1 3×3 convolution's output.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub tiles_y: usize,
    pub tiles_x: usize,
    pub tiles: usize,
}

impl Grid {
    pub fn new(g: &ConvGeom, m: usize) -> Self {
        let (ty, tx) = (g.out_h().div_ceil(m), g.out_w().div_ceil(m));
        Grid { tiles_y: ty, tiles_x: tx, tiles: g.n * ty * tx }
    }
    pub fn panels(&self) -> usize {
        self.tiles.div_ceil(NR)
    }
    /// The segments of panel `p` into `out` (a panel has at most NR); returns how many.
    pub fn segments(&self, p: usize, out: &mut [Segment; NR]) -> usize {
        let (mut t, end, mut k) = (p * NR, ((p + 1) * NR).min(self.tiles), 0);
        while t < end {
            let row = t / self.tiles_x;
            let tx0 = t % self.tiles_x;
            let len = (self.tiles_x - tx0).min(end - t);
            out[k] = Segment { n: row / self.tiles_y, ty: row % self.tiles_y, tx0, l0: t - p * NR, len };
            k += 1;
            t += len;
        }
        k
    }
}

/// Scratch for the transforms of one worker: A² lane vectors twice, plus one row.
pub fn scratch_len(a: usize) -> usize {
    2 * a * a * NR + row_len(a)
}

/// A padded input row: up to NR·m + 2 ≤ (NR + 2)·A columns.
fn row_len(a: usize) -> usize {
    (NR + 2) * a
}

/// Splits a worker's scratch into two A²-vector work areas and a row buffer.
#[allow(clippy::type_complexity)]
fn split_scratch<T: Float>(a: usize, s: &mut [T]) -> (&mut [Lanes<T>], &mut [Lanes<T>], &mut [T]) {
    let (v1, rest) = s.split_at_mut(a * a * NR);
    let (v2, row) = rest.split_at_mut(a * a * NR);
    (as_lanes(v1), as_lanes(v2), &mut row[..row_len(a)])
}

fn as_lanes<T>(s: &mut [T]) -> &mut [Lanes<T>] {
    let (head, body, tail) = {
        // SAFETY: [T; NR] has T's alignment and no padding; the length is a multiple of NR.
        unsafe { s.align_to_mut::<Lanes<T>>() }
    };
    debug_assert!(head.is_empty() && tail.is_empty());
    body
}

/// Copies `row[x0 .. x0 + out.len()]` into `out`, zero where the index leaves [0, row.len()).
#[inline(always)]
pub fn padded_copy<T: Float>(row: &[T], x0: isize, out: &mut [T]) {
    let w = row.len() as isize;
    let lo = (-x0).clamp(0, out.len() as isize) as usize;
    let hi = (w - x0).clamp(lo as isize, out.len() as isize) as usize;
    out[..lo].fill(T::ZERO);
    if hi > lo {
        out[lo..hi].copy_from_slice(&row[(x0 + lo as isize) as usize..(x0 + hi as isize) as usize]);
    }
    out[hi..].fill(T::ZERO);
}

/// dst[c][l0 + l] = src[l·m + c] for c < p (≤ m), l < len: one loop over whole groups of m
/// (an interleaved access the compiler turns into vector loads and shuffles).
#[inline(always)]
fn deinterleave<T: Float>(src: &[T], m: usize, p: usize, len: usize, dst: &mut [Lanes<T>], l0: usize) {
    if len == 0 {
        return;
    }
    let src = &src[..(len - 1) * m + p];
    let dp: [*mut T; 4] =
        std::array::from_fn(|c| if c < p { dst[c][l0..l0 + len].as_mut_ptr() } else { std::ptr::null_mut() });
    // SAFETY: src has the (len - 1)·m + p elements read, and each dst[c] len lanes from l0.
    if unsafe { microkernel::deinterleave_simd(src.as_ptr(), m, p, len, dp) } {
        return;
    }
    match (m, p, dst) {
        (_, 2, [d0, d1]) => {
            let (d0, d1) = (&mut d0[l0..l0 + len], &mut d1[l0..l0 + len]);
            for l in 0..len {
                d0[l] = src[l * m];
                d1[l] = src[l * m + 1];
            }
        }
        (4, 4, [d0, d1, d2, d3]) => {
            let (d0, d1) = (&mut d0[l0..l0 + len], &mut d1[l0..l0 + len]);
            let (d2, d3) = (&mut d2[l0..l0 + len], &mut d3[l0..l0 + len]);
            for (l, q) in src.chunks_exact(4).enumerate() {
                d0[l] = q[0];
                d1[l] = q[1];
                d2[l] = q[2];
                d3[l] = q[3];
            }
        }
        _ => unreachable!("tile sizes are 2 and 4"),
    }
}

/// row[l·m + c] = v[c][l0 + l] for l < len, c < m (v holds m lane vectors).
#[inline(always)]
fn interleave<T: Float>(v: &[Lanes<T>], l0: usize, len: usize, row: &mut [T]) {
    let m = v.len();
    assert!(row.len() >= len * m && l0 + len <= NR);
    let vp: [*const T; 4] = std::array::from_fn(|c| if c < m { v[c][l0..].as_ptr() } else { std::ptr::null() });
    // SAFETY: each v[c] has len lanes from l0 and row len·m elements (asserted).
    if unsafe { microkernel::interleave_simd(vp, m, len, row.as_mut_ptr()) } {
        return;
    }
    match v {
        [v0, v1] => {
            let (v0, v1) = (&v0[l0..l0 + len], &v1[l0..l0 + len]);
            for (l, q) in row.chunks_exact_mut(2).enumerate().take(len) {
                q[0] = v0[l];
                q[1] = v1[l];
            }
        }
        [v0, v1, v2, v3] => {
            let (v0, v1, v2, v3) = (&v0[l0..l0 + len], &v1[l0..l0 + len], &v2[l0..l0 + len], &v3[l0..l0 + len]);
            for (l, q) in row.chunks_exact_mut(4).enumerate().take(len) {
                q[0] = v0[l];
                q[1] = v1[l];
                q[2] = v2[l];
                q[3] = v3[l];
            }
        }
        _ => unreachable!("tile sizes are 2 and 4"),
    }
}

/// Input transform Bᵀ d B of one channel plane ([h, w] of sample seg.n) for the panel's tiles:
/// writes V[ξ] (lane vector) to `out(ξ)`, ξ = i·A + j. Lanes past the segments are zero.
#[inline(always)]
fn input_impl<S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>(
    x: &[T],
    g: &ConvGeom,
    c: usize,
    segs: &[Segment],
    scratch: &mut [T],
    mut out: F,
) {
    let (m, a) = (S::M, S::A);
    let (rph, eph, row) = split_scratch::<T>(a, scratch);
    let (h, w) = (g.h, g.w);
    // rph[r·A + c] = d[r][c] per lane: input row r, column c of each lane's patch. Lanes past
    // the segments and rows outside the map are zero.
    let covered: usize = segs.iter().map(|s| s.len).sum();
    if covered < NR {
        for v in rph.iter_mut() {
            v[covered..].fill(T::ZERO);
        }
    }
    for s in segs {
        let plane = &x[(s.n * g.c_in + c) * h * w..][..h * w];
        let x0 = (s.tx0 * m) as isize - g.pad as isize;
        // Columns x0 .. x0 + span: lane l reads l·m .. l·m + A.
        let span = s.len * m + (a - m);
        let interior = x0 >= 0 && x0 as usize + span <= w;
        for r in 0..a {
            let iy = (s.ty * m + r) as isize - g.pad as isize;
            let dst = &mut rph[r * a..(r + 1) * a];
            if iy < 0 || iy >= h as isize {
                for v in dst.iter_mut() {
                    v[s.l0..s.l0 + s.len].fill(T::ZERO);
                }
                continue;
            }
            let src = if interior {
                &plane[iy as usize * w + x0 as usize..][..span]
            } else {
                padded_copy(&plane[iy as usize * w..][..w], x0, &mut row[..span]);
                &row[..span]
            };
            let dp: [*mut T; 6] =
                std::array::from_fn(|cc| if cc < a { dst[cc][s.l0..].as_mut_ptr() } else { std::ptr::null_mut() });
            // SAFETY: src holds span = len·m + 2 columns; each dst[cc] has len lanes from l0.
            if unsafe { microkernel::patch_columns_simd(src.as_ptr(), m, s.len, dp) } {
                continue;
            }
            // Columns 0..m of each lane, then m..A (the first A - m of the next lane's).
            deinterleave(src, m, m, s.len, &mut dst[..m], s.l0);
            deinterleave(&src[m..], m, a - m, s.len, &mut dst[m..], s.l0);
        }
    }
    // Vertical: eph[i·A + c] = Σ_r Bᵀ[i][r] d[r][c].
    for i in 0..a {
        for cc in 0..a {
            let mut acc = [T::ZERO; NR];
            for r in 0..a {
                axpy(&mut acc, S::BT[i][r], &rph[r * a + cc]);
            }
            eph[i * a + cc] = acc;
        }
    }
    // Horizontal: V[i][j] = Σ_c eph[i][c] Bᵀ[j][c].
    for i in 0..a {
        for j in 0..a {
            let mut acc = [T::ZERO; NR];
            for cc in 0..a {
                axpy(&mut acc, S::BT[j][cc], &eph[i * a + cc]);
            }
            out(i * a + j, &acc);
        }
    }
}

/// Output transform Aᵀ M A (+ bias) of one output channel for the panel's tiles: `mt[ξ]` holds
/// M[ξ] per lane; writes the m×m outputs of every tile into plane `yp` ([oh, ow]), clipped.
#[inline(always)]
fn output_impl<S: TileSize, T: Float, F: FnMut(usize, usize, usize) -> *mut T>(
    mt: &[Lanes<T>],
    bias: T,
    g: &ConvGeom,
    segs: &[Segment],
    scratch: &mut [T],
    mut yrow: F,
) {
    let (m, a) = (S::M, S::A);
    let (f, yv, row) = split_scratch::<T>(a, scratch);
    let (oh, ow) = (g.out_h(), g.out_w());
    // f[i·M + jj] = Σ_j M[i][j] Aᵀ[jj][j].
    for i in 0..a {
        for jj in 0..m {
            let mut acc = [T::ZERO; NR];
            for j in 0..a {
                axpy(&mut acc, S::AT[jj][j], &mt[i * a + j]);
            }
            f[i * m + jj] = acc;
        }
    }
    // Y[ii][jj] = bias + Σ_i Aᵀ[ii][i] f[i][jj].
    for ii in 0..m {
        for jj in 0..m {
            let mut acc = [bias; NR];
            for i in 0..a {
                axpy(&mut acc, S::AT[ii][i], &f[i * m + jj]);
            }
            yv[ii * m + jj] = acc;
        }
    }
    for s in segs {
        let ox0 = s.tx0 * m;
        let valid = (s.len * m).min(ow - ox0);
        for ii in 0..m {
            let oy = s.ty * m + ii;
            if oy >= oh {
                break;
            }
            // SAFETY: the caller's pointer addresses `valid` writable outputs of row oy of
            // sample s.n from column ox0, owned by this panel's tiles.
            let dst = unsafe { std::slice::from_raw_parts_mut(yrow(s.n, oy, ox0), valid) };
            if valid == s.len * m {
                interleave(&yv[ii * m..(ii + 1) * m], s.l0, s.len, dst);
            } else {
                interleave(&yv[ii * m..(ii + 1) * m], s.l0, s.len, &mut row[..s.len * m]);
                dst.copy_from_slice(&row[..valid]);
            }
        }
    }
}

/// The weight gradient's transform of dy: A dy Aᵀ of one output channel for the panel's tiles
/// (dy zero outside the [oh, ow] map), written per ξ to `out(ξ)`.
#[inline(always)]
fn grad_output_impl<S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>(
    dy: &[T],
    g: &ConvGeom,
    co: usize,
    segs: &[Segment],
    scratch: &mut [T],
    mut out: F,
) {
    let (m, a) = (S::M, S::A);
    let (dph, f, row) = split_scratch::<T>(a, scratch);
    let (oh, ow) = (g.out_h(), g.out_w());
    for v in dph.iter_mut().take(m * m) {
        *v = [T::ZERO; NR];
    }
    for s in segs {
        let plane = &dy[(s.n * g.c_out + co) * oh * ow..][..oh * ow];
        let (ox0, span) = (s.tx0 * m, s.len * m);
        for ii in 0..m {
            let oy = s.ty * m + ii;
            if oy >= oh {
                break;
            }
            let src = if ox0 + span <= ow {
                &plane[oy * ow + ox0..][..span]
            } else {
                padded_copy(&plane[oy * ow..][..ow], ox0 as isize, &mut row[..span]);
                &row[..span]
            };
            deinterleave(src, m, m, s.len, &mut dph[ii * m..(ii + 1) * m], s.l0);
        }
    }
    // f[ii·A + j] = Σ_jj dy[ii][jj] Aᵀ[jj][j].
    for ii in 0..m {
        for j in 0..a {
            let mut acc = [T::ZERO; NR];
            for jj in 0..m {
                axpy(&mut acc, S::AT[jj][j], &dph[ii * m + jj]);
            }
            f[ii * a + j] = acc;
        }
    }
    // M̄[i][j] = Σ_ii Aᵀ[ii][i] f[ii][j].
    for i in 0..a {
        for j in 0..a {
            let mut acc = [T::ZERO; NR];
            for ii in 0..m {
                axpy(&mut acc, S::AT[ii][i], &f[ii * a + j]);
            }
            out(i * a + j, &acc);
        }
    }
}

/// Weight transform G w Gᵀ of output channel `co` for input channels ci0 .. ci0 + NR (lanes past
/// c_in are zero), written per ξ to `out(ξ)`. With `flip`, `g` is the adjoint geometry of the
/// convolution whose weights `w` are ([g.c_in][g.c_out][3][3]), and the kernel read is theirs
/// flipped and transposed: w'[co][ci][i][j] = w[ci][co][2 - i][2 - j].
#[inline(always)]
fn weight_impl<S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>(
    w: &[T],
    g: &ConvGeom,
    co: usize,
    ci0: usize,
    flip: bool,
    scratch: &mut [T],
    mut out: F,
) {
    let a = S::A;
    let (wk, t, _) = split_scratch::<T>(a, scratch);
    let n = (g.c_in - ci0).min(NR);
    for k in 0..9 {
        let dst = &mut wk[k];
        dst.fill(T::ZERO);
        for (l, d) in dst.iter_mut().enumerate().take(n) {
            let ci = ci0 + l;
            *d = if flip { w[(ci * g.c_out + co) * 9 + 8 - k] } else { w[(co * g.c_in + ci) * 9 + k] };
        }
    }
    // t[i·3 + b] = Σ_a G[i][a] w[a][b].
    for i in 0..a {
        for b in 0..3 {
            let mut acc = [T::ZERO; NR];
            for aa in 0..3 {
                axpy(&mut acc, S::G[i][aa], &wk[aa * 3 + b]);
            }
            t[i * 3 + b] = acc;
        }
    }
    for i in 0..a {
        for j in 0..a {
            let mut acc = [T::ZERO; NR];
            for b in 0..3 {
                axpy(&mut acc, S::G[j][b], &t[i * 3 + b]);
            }
            out(i * a + j, &acc);
        }
    }
}

/// The weight gradient's last step Gᵀ M̄ G for output channel `co` and input channels
/// ci0 .. ci0 + NR: `mw(ξ)` gives the lane vector of M̄[ξ] over those input channels; writes
/// dw[co][ci][3][3] for the ones below c_in.
#[inline(always)]
fn weight_grad_impl<'a, S: TileSize, T: Float, F: Fn(usize) -> &'a Lanes<T>>(
    mw: F,
    g: &ConvGeom,
    ci0: usize,
    scratch: &mut [T],
    dw_co: &mut [T],
) {
    let a = S::A;
    let (t, r, _) = split_scratch::<T>(a, scratch);
    // t[aa·A + j] = Σ_i G[i][aa] M̄[i][j].
    for aa in 0..3 {
        for j in 0..a {
            let mut acc = [T::ZERO; NR];
            for i in 0..a {
                axpy(&mut acc, S::G[i][aa], mw(i * a + j));
            }
            t[aa * a + j] = acc;
        }
    }
    // dw[aa][b] = Σ_j t[aa][j] G[j][b].
    for aa in 0..3 {
        for b in 0..3 {
            let mut acc = [T::ZERO; NR];
            for j in 0..a {
                axpy(&mut acc, S::G[j][b], &t[aa * a + j]);
            }
            r[aa * 3 + b] = acc;
        }
    }
    let n = (g.c_in - ci0).min(NR);
    for l in 0..n {
        for k in 0..9 {
            dw_co[(ci0 + l) * 9 + k] = r[k][l];
        }
    }
}

/// Packs lane vector `v` (input channels ci0 .. ci0 + NR of output channel `co`, transform
/// element ξ) into the forward kernel's weight layout U[ξ][co / MR][ci][co % MR].
///
/// # Safety
/// `u` must address the whole U (A² · co_pad · c_in elements), and no other thread may write
/// output channel `co`'s entries meanwhile.
#[inline(always)]
pub unsafe fn pack_u<T: Float>(u: *mut T, xi: usize, co: usize, ci0: usize, c_in: usize, co_pad: usize, v: &Lanes<T>) {
    let base = (xi * (co_pad / MR) + co / MR) * c_in * MR + co % MR;
    for (l, &val) in v.iter().enumerate().take((c_in - ci0).min(NR)) {
        // SAFETY: upheld by the caller.
        unsafe { *u.add(base + (ci0 + l) * MR) = val };
    }
}

// Each transform runs in an AVX-512 instantiation when the SIMD kernels apply (f32 on a CPU that
// has it): the lane loops then vectorize 16 wide instead of SSE's 4.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* $name:ident, $imp:ident, $avx:ident, <$($lt:lifetime,)? $($gen:ident: $bound:path),*>,
     ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name<$($lt,)? $($gen: $bound),*>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_simd::<T>() {
                // SAFETY: has_simd checked that this CPU has AVX-512F.
                return unsafe { $avx::<$($gen),*>($($arg),*) };
            }
            $imp::<$($gen),*>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx<$($lt,)? $($gen: $bound),*>($($arg: $ty),*) {
            $imp::<$($gen),*>($($arg),*)
        }
    };
}

simd_dispatch!(
    /// Input transform Bᵀ d B of input channel `c` for a panel's tiles (see `input_impl`).
    input, input_impl, input_avx512, <S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>,
    (x: &[T], g: &ConvGeom, c: usize, segs: &[Segment], scratch: &mut [T], out: F)
);
simd_dispatch!(
    /// Output transform Aᵀ M A + bias for a panel's tiles (see `output_impl`).
    output, output_impl, output_avx512, <S: TileSize, T: Float, F: FnMut(usize, usize, usize) -> *mut T>,
    (mt: &[Lanes<T>], bias: T, g: &ConvGeom, segs: &[Segment], scratch: &mut [T], yrow: F)
);
simd_dispatch!(
    /// The weight gradient's transform A dy Aᵀ for a panel's tiles (see `grad_output_impl`).
    grad_output, grad_output_impl, grad_output_avx512, <S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>,
    (dy: &[T], g: &ConvGeom, co: usize, segs: &[Segment], scratch: &mut [T], out: F)
);
simd_dispatch!(
    /// Weight transform G w Gᵀ (see `weight_impl`).
    weight, weight_impl, weight_avx512, <S: TileSize, T: Float, F: FnMut(usize, &Lanes<T>)>,
    (w: &[T], g: &ConvGeom, co: usize, ci0: usize, flip: bool, scratch: &mut [T], out: F)
);
simd_dispatch!(
    /// The weight gradient's last step Gᵀ M̄ G (see `weight_grad_impl`).
    weight_grad, weight_grad_impl, weight_grad_avx512, <'a, S: TileSize, T: Float, F: Fn(usize) -> &'a Lanes<T>>,
    (mw: F, g: &ConvGeom, ci0: usize, scratch: &mut [T], dw_co: &mut [T])
);
