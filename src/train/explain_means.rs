//! The training means of the two embeddings the fusion head reads (the audio tower's vector and
//! the lyrics vector), over the run's training split in eval mode: what `--explain` puts in place
//! of one modality to see how much the prediction rests on it.

use super::config::Modality;
use super::dataset::{SongRecord, TrainData};
use super::loader::{Prefetch, batches};
use super::lyrics_encoder::read_texts;
use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::Tape;
use std::sync::Arc;

/// Mean audio embedding and mean lyrics vector (None for a modality the model lacks).
#[derive(Clone, Debug, Default)]
pub struct Means {
    pub audio: Option<Vec<f64>>,
    pub lyrics: Option<Vec<f64>>,
    pub songs: usize,
}

/// The means over `data`'s training songs with the session's weights. The session's lyrics side
/// is given the training lyrics (set it again before predicting other songs).
pub fn training_means<B: Backend>(s: &mut Session<B>, data: &TrainData) -> Result<Means> {
    let records: Vec<SongRecord> = data.splits.train.iter().map(|&i| data.songs[i].clone()).collect();
    if records.is_empty() {
        return Err(Error::file(&data.cache, "the training split is empty: no means to explain with"));
    }
    let reads_lyrics = s.cfg.model.modality != Modality::Audio;
    if reads_lyrics {
        s.lyrics.set_texts(read_texts(&records, &mut |_| {})?)?;
    }
    let records = Arc::new(records);
    let order: Vec<usize> = (0..records.len()).collect();
    let be = s.store.backend.clone();
    let (mut audio, mut lyrics): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let add = |sum: &mut Vec<f64>, rows: &[f64], n: usize| {
        let w = rows.len() / n.max(1);
        sum.resize(w, 0.0);
        for r in rows.chunks(w.max(1)) {
            for (s, x) in sum.iter_mut().zip(r) {
                *s += x;
            }
        }
    };
    for b in Prefetch::new(records.clone(), batches(&order, s.cfg.train.batch_size.max(1))) {
        let b = b?;
        let batch = b.upload(&be, &records, s.net.config.inputs)?;
        let mut tape = Tape::no_grad(be.clone());
        let x = batch.audio.map(|a| tape.input(a, false));
        let l = if reads_lyrics { s.lyrics.batch(&mut tape, &mut s.store, &b.songs, false, 0)? } else { None };
        if let Some(l) = &l {
            add(&mut lyrics, &l.value().to_f64(&be)?, b.songs.len());
        }
        let out = s.net.forward_inputs(&mut tape, &mut s.store, x.as_ref(), l.as_ref(), false, 0)?;
        if let Some(a) = &out.audio {
            add(&mut audio, &a.value().to_f64(&be)?, b.songs.len());
        }
    }
    let n = records.len() as f64;
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.into_iter().map(|x| x / n).collect());
    Ok(Means { audio: mean(audio), lyrics: mean(lyrics), songs: records.len() })
}
