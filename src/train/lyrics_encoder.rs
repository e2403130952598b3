//! The lyrics half of a run built from its config: no lyrics (audio-only), a frozen Hugging Face
//! encoder's vectors computed once (and cached on disk beside the spectrograms), or an encoder on
//! the tape that trains with the model (fine-tuned, top-K, the built-in one, or frozen with the
//! seed's dropout left on).

use super::config::{Config, LyricsMode, Modality, Pool};
use super::dataset::SongRecord;
use super::lyrics::{FixedVectors, LyricsSide, NoLyrics};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::text::{BuiltinConfig, LyricsTower, Pooling, TowerMode};
use crate::params::ParamStore;
use crate::tape::{Tape, Var};
use crate::text::lyrics::read_lyric;
use std::path::Path;

/// Parameter-name prefix of the lyrics encoder (the seed's `lyrics_tower` module).
pub const PREFIX: &str = "lyrics_tower";

/// Where the lyrics side reads and writes its files.
pub struct LyricsPlaces<'a> {
    /// The spectrogram cache: frozen vectors go to `<cache>/lyric-vectors/` (None: computed, not
    /// cached, as `predict` does for new songs).
    pub cache: Option<&'a Path>,
    /// `RUN/lyrics_encoder/`: the built-in encoder's config.json and tokenizer.json. Read when
    /// present (resume, evaluate, predict); a new built-in vocabulary goes there by `save_learned`.
    pub encoder_files: &'a Path,
    /// Whether a missing built-in vocabulary may be learned here (a new run) or is an error.
    pub learn: bool,
}

/// Checks, before any work, that the config's lyrics model can be found (a folder, or a hub name
/// in the Hugging Face cache, downloaded there first if missing); the error names the places looked
/// and `--lyrics-model builtin`.
pub fn check_model(cfg: &Config) -> Result<()> {
    if cfg.model.modality == Modality::Audio {
        return Ok(());
    }
    if !cfg.lyrics.vectors.is_empty() {
        let p = Path::new(&cfg.lyrics.vectors);
        return if p.is_file() {
            Ok(())
        } else {
            Err(Error::file(p, "[lyrics] vectors: no such file (write one with `moodgrad encode`)"))
        };
    }
    if cfg.builtin_lyrics() {
        return Ok(());
    }
    crate::text::hf::resolve_model(&cfg.lyrics.model).map(|_| ())
}

fn pooling(p: Pool) -> Pooling {
    match p {
        Pool::Cls => Pooling::Cls,
        Pool::Pooler => Pooling::Pooler,
        Pool::Mean => Pooling::Mean,
    }
}

fn tower_mode(cfg: &Config) -> TowerMode {
    match cfg.lyrics.mode {
        LyricsMode::Frozen => TowerMode::Frozen { dropout: false },
        LyricsMode::FrozenDropout => TowerMode::Frozen { dropout: true },
        LyricsMode::Finetune => TowerMode::Full,
        LyricsMode::TopK => TowerMode::FineTuneTop(cfg.lyrics.layers),
    }
}

/// The lyrics side of `[lyrics] vectors`: song i's vector is the file's tensor named by its id
/// (or, failing that, by its lyric file's stem, as `moodgrad encode` names them). A song without
/// one, or a vector of another width or with a non-finite value, is an error naming both.
pub fn vectors_from_file(cfg: &Config, songs: &[SongRecord]) -> Result<FixedVectors> {
    let path = Path::new(&cfg.lyrics.vectors);
    let file = crate::io::read(path)?;
    let mut dim = None;
    let mut rows = Vec::with_capacity(songs.len());
    for s in songs {
        let stem = s.lyric.as_ref().and_then(|p| p.file_stem()).map(|x| x.to_string_lossy().into_owned());
        let t =
            file.tensors.get(&s.id).or_else(|| stem.as_ref().and_then(|k| file.tensors.get(k))).ok_or_else(|| {
                Error::file(
                    path,
                    format!("no vector for song {} (a tensor named `{}`); encode its lyric again", s.id, s.id),
                )
            })?;
        if t.shape.len() != 1 || dim.is_some_and(|d| d != t.shape[0]) {
            return Err(Error::file(
                path,
                format!("song {}: vector of shape {:?}, expected [{}]", s.id, t.shape, dim.unwrap_or(t.len())),
            ));
        }
        dim = Some(t.shape[0]);
        let v: Vec<f32> = t.to_f64().iter().map(|&x| x as f32).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::file(path, format!("song {}: the vector holds a non-finite value", s.id)));
        }
        rows.push(v);
    }
    let dim = dim.ok_or_else(|| Error::file(path, "no songs to look up"))?;
    Ok(FixedVectors { dim, rows, what: format!("vectors given as data ({}, width {dim})", path.display()) })
}

/// Each song's lyric text, in song order; a missing or unreadable lyric is an error naming the
/// song and the file. Warnings (empty, huge, re-encoded) go to `say`.
pub fn read_texts(songs: &[SongRecord], say: &mut dyn FnMut(&str)) -> Result<Vec<String>> {
    songs
        .iter()
        .map(|s| {
            let path = s.lyric.as_ref().ok_or_else(|| {
                Error::Invalid(format!(
                    "song {}: no lyric in the cache's list; a bimodal or lyrics model needs one per song \
                     (add lyrics/<Q>/{}.txt and preprocess again, or train with [model] modality = \"audio\")",
                    s.id, s.id
                ))
            })?;
            let l = read_lyric(path).map_err(|e| Error::Invalid(format!("song {}: {e}", s.id)))?;
            for w in &l.warnings {
                say(&format!("  warning: song {}: {w}", s.id));
            }
            Ok(l.text)
        })
        .collect()
}

/// The lyrics side for `cfg` over `songs` (with `texts[i]` song i's lyric). `train_songs` are the
/// indices whose lyrics teach the built-in encoder its vocabulary (never the test songs').
pub fn build<B: Backend>(
    cfg: &Config,
    store: &mut ParamStore<B>,
    texts: Vec<String>,
    train_songs: &[usize],
    places: &LyricsPlaces,
    say: &mut dyn FnMut(&str),
) -> Result<Box<dyn LyricsSide<B>>> {
    if cfg.model.modality == Modality::Audio {
        return Ok(Box::new(NoLyrics));
    }
    if !cfg.lyrics.vectors.is_empty() {
        return Err(Error::Invalid(format!(
            "this run read its lyric vectors from {} ([lyrics] vectors): new songs need vectors from an encoder; \
             train with [lyrics] model set and no `vectors` to predict from lyric text",
            cfg.lyrics.vectors
        )));
    }
    let (pool, max_len) = (pooling(cfg.lyrics.pool), cfg.lyrics.max_len);
    // A vocabulary learned here is saved by `save_learned`, once the run's folder exists.
    let mut learned = false;
    let mut tower = if cfg.builtin_lyrics() {
        if places.encoder_files.join("tokenizer.json").is_file() {
            LyricsTower::builtin_from_files(store, PREFIX, places.encoder_files, pool, max_len)?
        } else if !places.learn {
            return Err(Error::file(
                places.encoder_files,
                "the built-in lyrics encoder's config.json and tokenizer.json are missing: they are saved in the \
                 RUN folder that trained it (give that RUN, not its weights alone)",
            ));
        } else {
            let vocab_texts: Vec<&str> = train_songs.iter().map(|&i| texts[i].as_str()).collect();
            let t = LyricsTower::builtin(
                store,
                PREFIX,
                &vocab_texts,
                &BuiltinConfig::default(),
                pool,
                max_len,
                cfg.train.seed,
            )?;
            learned = true;
            t
        }
    } else if cfg.lyrics.mode == LyricsMode::Frozen {
        // The frozen encoder is needed only to compute the vectors: in its own store, dropped after.
        let mut own = ParamStore::new(store.backend.clone());
        let (tower, summary) = LyricsTower::from_hf(&mut own, PREFIX, &cfg.lyrics.model, pool, max_len)?;
        say(&format!("  lyrics encoder: {}", summary.describe()));
        let total = texts.len();
        let bar = encode_bar(total as u64);
        let mut progress = |d: usize| bar.set_position(d as u64);
        let dim = tower.hidden_size();
        let Some(c) = places.cache else {
            // New songs (predict): the encoder is kept, so later batches can bring their lyrics.
            let rows = tower.encode(&own, &texts, ENCODE_BATCH, &mut progress)?;
            bar.finish_and_clear();
            let what = format!("{} (frozen, {} vectors)", cfg.lyrics.model, pool.name());
            return Ok(Box::new(FrozenText { tower, store: own, vectors: FixedVectors { dim, rows, what } }));
        };
        let rows = tower.frozen_vectors(&own, &texts, &c.join("lyric-vectors"), ENCODE_BATCH, &mut progress)?;
        bar.finish_and_clear();
        let what = format!("{} (frozen, {} vectors, cached)", cfg.lyrics.model, pool.name());
        return Ok(Box::new(FixedVectors { dim, rows, what }));
    } else {
        let (t, summary) = LyricsTower::from_hf(store, PREFIX, &cfg.lyrics.model, pool, max_len)?;
        say(&format!("  lyrics encoder: {}", summary.describe()));
        t
    };
    tower.set_mode(store, tower_mode(cfg))?;
    let what = format!(
        "{} ({}, {} pooling, max_len {max_len}, hidden {})",
        cfg.lyrics.model,
        cfg.lyrics.mode,
        pool.name(),
        tower.hidden_size()
    );
    Ok(Box::new(EncoderLyrics { tower, texts, what, learned }))
}

/// Lyrics a frozen encoder encodes at once (sorted by length, so little padding is computed).
const ENCODE_BATCH: usize = 16;

/// A frozen encoder kept beside its vectors, for new songs: `set_texts` encodes their lyrics in
/// eval mode (no tape, no dropout), as `build` encoded the first ones.
pub struct FrozenText<B: Backend> {
    tower: LyricsTower,
    store: ParamStore<B>,
    vectors: FixedVectors,
}

impl<B: Backend> LyricsSide<B> for FrozenText<B> {
    fn dim(&self) -> usize {
        self.vectors.dim
    }
    fn batch(
        &mut self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        songs: &[usize],
        train: bool,
        seed: u64,
    ) -> Result<Option<Var<B>>> {
        LyricsSide::<B>::batch(&mut self.vectors, tape, store, songs, train, seed)
    }
    fn describe(&self) -> String {
        self.vectors.what.clone()
    }
    fn set_texts(&mut self, texts: Vec<String>) -> Result<()> {
        self.vectors.rows = self.tower.encode(&self.store, &texts, ENCODE_BATCH, &mut |_| {})?;
        Ok(())
    }
}

/// A progress bar for the one-off encoding (hidden when stderr is not a terminal).
fn encode_bar(total: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("encoding lyrics {bar:30} {pos}/{len}, ETA {eta}") {
        bar.set_style(style);
    }
    bar
}

/// An encoder on the tape: each batch's lyrics tokenized and encoded in the step.
pub struct EncoderLyrics {
    pub tower: LyricsTower,
    /// Song i's lyric.
    pub texts: Vec<String>,
    what: String,
    /// A built-in vocabulary learned by this run (not yet in the run's folder).
    learned: bool,
}

impl<B: Backend> LyricsSide<B> for EncoderLyrics {
    fn dim(&self) -> usize {
        self.tower.hidden_size()
    }
    fn batch(
        &mut self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        songs: &[usize],
        train: bool,
        seed: u64,
    ) -> Result<Option<Var<B>>> {
        let texts = songs
            .iter()
            .map(|&i| {
                self.texts.get(i).map(String::as_str).ok_or_else(|| Error::Invalid(format!("no lyric for song #{i}")))
            })
            .collect::<Result<Vec<&str>>>()?;
        let batch = self.tower.tokenize(&texts)?;
        self.tower.forward(tape, store, &batch, train, seed).map(Some)
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
    fn save_learned(&self, dir: &Path) -> Result<()> {
        if self.learned { self.tower.save_files(dir) } else { Ok(()) }
    }
    fn set_texts(&mut self, texts: Vec<String>) -> Result<()> {
        self.texts = texts;
        Ok(())
    }
}
