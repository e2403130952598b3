//! Central finite differences in f64 against the tape's gradients: any op (`check_op`), and the
//! quotients a whole-network check judges by (`quotients`; moodgrad's `train::gradcheck` runs
//! them through the seed network).
//!
//! ReLU and max-pool make the loss piecewise smooth. Where a kink lies within ±h of the checked
//! point, the difference quotient averages two one-sided derivatives and disagrees with a correct
//! analytic gradient. `quotients` detects such points, so that a network check can skip them:
//! with the quotients at h and h/2, a smooth function gives D(h) ≈ 2·D(h/2) for the gap
//! D = right − left one-sided quotient, and C(h) ≈ C(h/2) for the central quotient C, to
//! O(h²); a kink at distance δ < h breaks at least one of the two by ≥ J/7 of its derivative jump J
//! (the first vanishes only at δ = h/3, the second only at δ = 0), while it moves C by ≥ J/4. So a
//! kink large enough to fail the check is always seen. A point that fails the test is tried again
//! with h/10 and h/100 (a kink at distance δ drops out once h < δ) before it is skipped.

use crate::backend::Memory;
use crate::backend::cpu::Cpu;
use crate::error::{Error, Result};
use crate::ops;
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

type C64 = Cpu<f64>;
/// A recorded evaluation: the tape, the input leaves and the projected scalar.
type Recorded = (Tape<C64>, Vec<Var<C64>>, Var<C64>);

/// |a − n| / max(|a| + |n|, floor): relative where the gradient is sizeable, absolute (scaled
/// by 1/floor) where it is zero up to rounding.
pub fn rel_err(analytic: f64, numeric: f64, floor: f64) -> f64 {
    (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(floor)
}

/// Checks `f` (inputs -> any tensor) by projecting its output on a fixed random direction
/// R, so the scalar is Σ out·R. Returns the max relative error per input, over every element.
pub fn check_op(
    shapes: &[Vec<usize>],
    seed: u64,
    h: f64,
    f: impl Fn(&mut Tape<C64>, &[Var<C64>]) -> Result<Var<C64>>,
) -> Result<Vec<f64>> {
    let be = C64::new();
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<f64>> =
        shapes.iter().map(|s| (0..s.iter().product::<usize>()).map(|_| rng.normal()).collect()).collect();
    // The projected scalar, on a tape that records (`grad`) or not.
    let eval = |vals: &[Vec<f64>], rdir: &[f64], grad: bool| -> Result<Recorded> {
        let mut tape = if grad { Tape::new(be.clone()) } else { Tape::no_grad(be.clone()) };
        let vars: Vec<Var<C64>> = vals
            .iter()
            .zip(shapes)
            .map(|(v, s)| Ok(tape.input(Tensor::from_f64(&be, s, v)?, true)))
            .collect::<Result<_>>()?;
        let out = f(&mut tape, &vars)?;
        let n = out.value().numel();
        if rdir.len() != n {
            return Err(Error::Invalid(format!("projection of {} values for an output of {n}", rdir.len())));
        }
        let flat = ops::reshape(&mut tape, &out, &[1, n])?;
        let rv = tape.input(Tensor::from_f64(&be, &[1, n], rdir)?, false);
        let s = ops::linear(&mut tape, &flat, &rv, None)?;
        Ok((tape, vars, s))
    };
    let n_out = {
        let mut tape = Tape::no_grad(be.clone());
        let vars: Vec<Var<C64>> = inputs
            .iter()
            .zip(shapes)
            .map(|(v, s)| Ok(tape.input(Tensor::from_f64(&be, s, v)?, false)))
            .collect::<Result<_>>()?;
        f(&mut tape, &vars)?.value().numel()
    };
    let rdir: Vec<f64> = (0..n_out).map(|_| rng.normal()).collect();
    let (tape, vars, s) = eval(&inputs, &rdir, true)?;
    let mut store = ParamStore::new(be.clone());
    let grads = tape.backward(&s, &mut store)?;
    let scalar = |vals: &[Vec<f64>]| -> Result<f64> { Ok(eval(vals, &rdir, false)?.2.value().to_f64(&be)?[0]) };
    let mut worst = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        let an = match grads.get(v) {
            Some(g) => be.download(g)?,
            None => vec![0.0; inputs[i].len()],
        };
        let mut w: f64 = 0.0;
        for j in 0..inputs[i].len() {
            let mut p = inputs.clone();
            p[i][j] += h;
            let lp = scalar(&p)?;
            p[i][j] -= 2.0 * h;
            let lm = scalar(&p)?;
            let num = (lp - lm) / (2.0 * h);
            w = w.max(rel_err(an[j], num, 1e-6));
        }
        worst.push(w);
    }
    Ok(worst)
}

/// The quotients at one element, and whether the loss is smooth enough there to judge.
pub struct Quotients {
    /// The central difference at h.
    pub central: f64,
    /// Whether the loss is smooth over [x − h, x + h] (no kink to average across).
    pub smooth: bool,
}

/// The quotients of a scalar `at(d)` = loss at x + d around `f0` = loss at x, and whether they
/// agree with a smooth function (see the module doc): `analytic` is the gradient being judged,
/// `tol` the relative error that would fail it, `floor` the smallest gradient scale that counts.
pub fn quotients(
    f0: f64,
    at: &mut impl FnMut(f64) -> Result<f64>,
    h: f64,
    analytic: f64,
    tol: f64,
    floor: f64,
) -> Result<Quotients> {
    let (p1, m1, p2, m2) = (at(h)?, at(-h)?, at(h / 2.0)?, at(-h / 2.0)?);
    let c1 = (p1 - m1) / (2.0 * h);
    let c2 = (p2 - m2) / h;
    let gap1 = (p1 - 2.0 * f0 + m1) / h;
    let gap2 = (p2 - 2.0 * f0 + m2) / (h / 2.0);
    // What rounding alone can do to these quotients: a few ulps of the loss over the step.
    let noise = 64.0 * f64::EPSILON * [f0, p1, m1, p2, m2].iter().map(|v| v.abs()).fold(0.0, f64::max) / (h / 2.0);
    let scale = (analytic.abs() + c1.abs()).max(floor);
    let limit = (0.25 * tol * scale).max(noise);
    let smooth = (gap1 - 2.0 * gap2).abs() <= limit && (c1 - c2).abs() <= limit;
    Ok(Quotients { central: c1, smooth })
}
