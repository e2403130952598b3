//! Range checks on a parsed config: the first problem, as (key, what is wrong and the fix).

use super::{Config, LyricsMode, Scheduler};

type Problem = (&'static str, String);

fn positive_finite(key: &'static str, x: f64) -> Result<(), Problem> {
    if x.is_finite() && x > 0.0 { Ok(()) } else { Err((key, format!("= {x}: must be a finite number above 0"))) }
}

fn at_least_one(key: &'static str, n: usize) -> Result<(), Problem> {
    if n >= 1 { Ok(()) } else { Err((key, "= 0: must be at least 1".into())) }
}

pub fn check(c: &Config) -> Result<(), Problem> {
    let m = &c.model;
    at_least_one("model.convs_per_block", m.convs_per_block)?;
    if m.channels.is_empty() {
        return Err(("model.channels", "is empty: give at least one block width, e.g. [64, 128, 256, 512]".into()));
    }
    if let Some(i) = m.channels.iter().position(|&w| w == 0) {
        return Err(("model.channels", format!("[{i}] = 0: every block needs at least one channel")));
    }
    let last = *m.channels.last().expect("checked non-empty");
    at_least_one("model.se_reduction", m.se_reduction)?;
    if m.se_reduction > last {
        return Err((
            "model.se_reduction",
            format!(
                "= {}: must not exceed the last block's {last} channels (the SE bottleneck would be 0)",
                m.se_reduction
            ),
        ));
    }
    at_least_one("model.audio_hidden", m.audio_hidden)?;
    at_least_one("model.audio_out", m.audio_out)?;
    at_least_one("model.head_hidden", m.head_hidden)?;
    if !(0.0..1.0).contains(&m.dropout) {
        return Err(("model.dropout", format!("= {}: must be in [0, 1)", m.dropout)));
    }

    let l = &c.lyrics;
    if l.model.trim().is_empty() {
        return Err(("lyrics.model", "is empty: give a directory, a hub name or \"builtin\"".into()));
    }
    positive_finite("lyrics.lr", l.lr)?;
    if l.max_len < 2 {
        return Err(("lyrics.max_len", format!("= {}: needs room for [CLS] and [SEP] (at least 2)", l.max_len)));
    }
    if l.model == super::BUILTIN
        && l.mode.is_frozen()
        && c.model.modality != super::Modality::Audio
        && l.vectors.is_empty()
    {
        return Err((
            "lyrics.mode",
            format!(
                "= \"{}\" with model = \"builtin\": the built-in encoder starts from random weights and trains with \
                 the model; set mode = \"finetune\" (and lyrics.lr near train.lr, e.g. 1e-3)",
                l.mode
            ),
        ));
    }
    if !l.vectors.is_empty() && l.mode != LyricsMode::Frozen {
        return Err((
            "lyrics.vectors",
            format!(
                "is set with mode = \"{}\": vectors given as data are constants, so nothing of the encoder can \
                 train; use mode = \"frozen\", or remove `vectors` to run the encoder",
                l.mode
            ),
        ));
    }
    if l.mode == LyricsMode::TopK && l.layers == 0 {
        return Err(("lyrics.layers", "= 0: mode \"top-k\" trains the top `layers` layers; use at least 1".into()));
    }

    let t = &c.train;
    at_least_one("train.epochs", t.epochs)?;
    at_least_one("train.batch_size", t.batch_size)?;
    at_least_one("train.accumulate", t.accumulate)?;
    if t.accumulate > t.batch_size {
        return Err((
            "train.accumulate",
            format!("= {}: more micro-batches than the batch_size ({}) has songs", t.accumulate, t.batch_size),
        ));
    }
    positive_finite("train.lr", t.lr)?;
    if !(t.clip.is_finite() && t.clip >= 0.0) {
        return Err(("train.clip", format!("= {}: must be a max gradient norm above 0, or 0 for no clipping", t.clip)));
    }
    if t.patience == 0 {
        return Err(("train.patience", "= 0: must be at least 1 (set it to epochs to never stop early)".into()));
    }
    at_least_one("train.step_size", t.step_size)?;
    positive_finite("train.gamma", t.gamma)?;
    if t.warmup_epochs >= t.epochs && t.scheduler == Scheduler::WarmupLinear {
        return Err(("train.warmup_epochs", format!("= {}: must be below epochs = {}", t.warmup_epochs, t.epochs)));
    }
    if i64::try_from(t.seed).is_err() {
        return Err(("train.seed", format!("= {}: must fit a TOML integer (at most {})", t.seed, i64::MAX)));
    }
    if !(t.quadrant_loss.is_finite() && t.quadrant_loss >= 0.0) {
        return Err((
            "train.quadrant_loss",
            format!("= {}: must be a weight ≥ 0 (0 = no quadrant head)", t.quadrant_loss),
        ));
    }
    Ok(())
}
