//! Where a batch's lyrics vectors come from: nowhere (audio-only), a table computed once by a
//! frozen encoder in eval mode, or an encoder that trains with the rest of the model.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The lyrics half of the model, as the training loop sees it.
pub trait LyricsSide<B: Backend>: Send {
    /// Width of the vectors (0: no lyrics).
    fn dim(&self) -> usize;
    /// The [B, dim] vectors of these songs (indices into the run's song list); None without lyrics.
    fn batch(
        &mut self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        songs: &[usize],
        train: bool,
        seed: u64,
    ) -> Result<Option<Var<B>>>;
    /// A short description for logs and reports.
    fn describe(&self) -> String;
    /// Writes what this side learned from the data before training (the built-in encoder's
    /// vocabulary) into the run's `dir`; nothing for the others.
    fn save_learned(&self, _dir: &std::path::Path) -> Result<()> {
        Ok(())
    }
    /// Makes `texts[i]` song i's lyric, replacing the song list (prediction over a stream of new
    /// songs, one batch at a time). Only sides that encode text can; the others refuse.
    fn set_texts(&mut self, _texts: Vec<String>) -> Result<()> {
        Err(Error::Invalid(format!("the lyrics side `{}` cannot take new lyrics", self.describe())))
    }
}

/// Audio-only models.
pub struct NoLyrics;

impl<B: Backend> LyricsSide<B> for NoLyrics {
    fn dim(&self) -> usize {
        0
    }
    fn batch(
        &mut self,
        _: &mut Tape<B>,
        _: &mut ParamStore<B>,
        _: &[usize],
        _: bool,
        _: u64,
    ) -> Result<Option<Var<B>>> {
        Ok(None)
    }
    fn describe(&self) -> String {
        "none (audio only)".into()
    }
}

/// One vector per song, computed before training (a frozen encoder in eval mode) and fed to the
/// head as a constant: the encoder's cost is paid once, not every epoch.
pub struct FixedVectors {
    pub dim: usize,
    /// Row i is song i's vector.
    pub rows: Vec<Vec<f32>>,
    pub what: String,
}

impl<B: Backend> LyricsSide<B> for FixedVectors {
    fn dim(&self) -> usize {
        self.dim
    }
    fn batch(
        &mut self,
        tape: &mut Tape<B>,
        _: &mut ParamStore<B>,
        songs: &[usize],
        _: bool,
        _: u64,
    ) -> Result<Option<Var<B>>> {
        let mut v = Vec::with_capacity(songs.len() * self.dim);
        for &i in songs {
            let row = self.rows.get(i).ok_or_else(|| Error::Invalid(format!("no lyrics vector for song #{i}")))?;
            v.extend(row.iter().map(|&x| x as f64));
        }
        let t = Tensor::from_f64(&tape.backend, &[songs.len(), self.dim], &v)?;
        Ok(Some(tape.constant(t)))
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}
