//! Mean-reduced losses, accumulated in f64.

use super::HostBuf;
use crate::backend::geom::check_lens;
use crate::backend::{RowsGeom, same_len};
use crate::error::Result;
use crate::float::Float;

pub fn mse_forward<T: Float>(p: &[T], t: &[T]) -> f64 {
    p.iter().zip(t).map(|(a, b)| (a.to_f64() - b.to_f64()).powi(2)).sum::<f64>() / p.len() as f64
}

pub fn mse_backward<T: Float>(p: &[T], t: &[T], dl: f64) -> Vec<T> {
    let k = T::from_f64(2.0 * dl / p.len() as f64);
    p.iter().zip(t).map(|(&a, &b)| k * (a - b)).collect()
}

pub fn l1_forward<T: Float>(p: &[T], t: &[T]) -> f64 {
    p.iter().zip(t).map(|(a, b)| (a.to_f64() - b.to_f64()).abs()).sum::<f64>() / p.len() as f64
}

pub fn l1_backward<T: Float>(p: &[T], t: &[T], dl: f64) -> Vec<T> {
    let k = T::from_f64(dl / p.len() as f64);
    // sign(0) = 0, as torch.sign.
    p.iter()
        .zip(t)
        .map(|(&a, &b)| {
            if a > b {
                k
            } else if a < b {
                -k
            } else {
                T::ZERO
            }
        })
        .collect()
}

fn log_softmax_row(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

pub fn cross_entropy_forward<T: Float>(logits: &[T], labels: &[u32], classes: usize) -> f64 {
    let rows = labels.len();
    (0..rows)
        .map(|r| {
            let row: Vec<f64> = logits[r * classes..(r + 1) * classes].iter().map(|v| v.to_f64()).collect();
            -log_softmax_row(&row)[labels[r] as usize]
        })
        .sum::<f64>()
        / rows as f64
}

pub fn cross_entropy_backward<T: Float>(logits: &[T], labels: &[u32], classes: usize, dl: f64) -> Vec<T> {
    let rows = labels.len();
    let mut out = Vec::with_capacity(logits.len());
    for r in 0..rows {
        let row: Vec<f64> = logits[r * classes..(r + 1) * classes].iter().map(|v| v.to_f64()).collect();
        for (j, ls) in log_softmax_row(&row).into_iter().enumerate() {
            let onehot = if j == labels[r] as usize { 1.0 } else { 0.0 };
            out.push(T::from_f64(dl * (ls.exp() - onehot) / rows as f64));
        }
    }
    out
}

impl<T: Float> crate::backend::Loss for super::Cpu<T> {
    fn mse_forward(&self, pred: &HostBuf<T>, target: &HostBuf<T>) -> Result<HostBuf<T>> {
        same_len("mse_forward", pred.len(), target.len())?;
        Ok(self.wrap(vec![T::from_f64(mse_forward(pred, target))]))
    }
    fn mse_backward(&self, pred: &HostBuf<T>, target: &HostBuf<T>, dl: &HostBuf<T>) -> Result<HostBuf<T>> {
        same_len("mse_backward", pred.len(), target.len())?;
        check_lens("mse_backward", &[("dl", dl.len(), 1)])?;
        Ok(self.wrap(mse_backward(pred, target, dl[0].to_f64())))
    }
    fn l1_forward(&self, pred: &HostBuf<T>, target: &HostBuf<T>) -> Result<HostBuf<T>> {
        same_len("l1_forward", pred.len(), target.len())?;
        Ok(self.wrap(vec![T::from_f64(l1_forward(pred, target))]))
    }
    fn l1_backward(&self, pred: &HostBuf<T>, target: &HostBuf<T>, dl: &HostBuf<T>) -> Result<HostBuf<T>> {
        same_len("l1_backward", pred.len(), target.len())?;
        check_lens("l1_backward", &[("dl", dl.len(), 1)])?;
        Ok(self.wrap(l1_backward(pred, target, dl[0].to_f64())))
    }
    fn cross_entropy_forward(&self, logits: &HostBuf<T>, labels: &HostBuf<u32>, g: &RowsGeom) -> Result<HostBuf<T>> {
        g.check("cross_entropy_forward", logits.len(), None, Some(labels.len()))?;
        Ok(self.wrap(vec![T::from_f64(cross_entropy_forward(logits, labels, g.cols))]))
    }
    fn cross_entropy_backward(
        &self,
        logits: &HostBuf<T>,
        labels: &HostBuf<u32>,
        g: &RowsGeom,
        dl: &HostBuf<T>,
    ) -> Result<HostBuf<T>> {
        g.check("cross_entropy_backward", logits.len(), None, Some(labels.len()))?;
        check_lens("cross_entropy_backward", &[("dl", dl.len(), 1)])?;
        Ok(self.wrap(cross_entropy_backward(logits, labels, g.cols, dl[0].to_f64())))
    }
}
