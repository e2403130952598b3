//! `moodgrad synth`: a small MERGE-like dataset in the Bimodal layout whose valence and arousal
//! can be learned from the audio and from the lyrics.
//!
//! What carries the emotion:
//! - arousal (audio): loudness (peak level from -26 dB to -4 dB), tempo of note onsets (1.6 to
//!   6.4 notes/s), brightness (more and stronger harmonics), percussive noise bursts at each onset;
//! - valence (audio): major triads (v >= 0.5) against minor triads, with dissonant added tones
//!   (minor second, tritone) the lower v goes and consonant added sixths the higher it goes;
//! - both (lyrics): words drawn from positive/negative lists with probability v and 1 - v and from
//!   energetic/calm lists with probability a and 1 - a, among neutral filler words.
//!
//! Values follow MERGE: quadrants in MERGE's proportions (Q1 525, Q2 673, Q3 500, Q4 518), valence
//! and arousal away from the centre (|x - 0.5| >= 0.1), clip lengths mostly 29.5-30.8 s with a
//! quarter spread down to 5 s. Everything is a function of (seed, song index): the same seed
//! gives byte-identical files.

use super::{create_dir, wav};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::rng::{Rng, mix64};
use rayon::prelude::*;
use std::path::Path;

/// The 27 columns of `merge_bimodal_complete_metadata.csv`, as MERGE names them.
pub const METADATA_COLUMNS: [&str; 27] = [
    "Audio_Song",
    "Lyric_Song",
    "Quadrant",
    "AllMusic Id",
    "AllMusic Extraction Date",
    "Artist",
    "Title",
    "Relevance",
    "Year",
    "LowestYear",
    "Duration",
    "Moods",
    "MoodsAll",
    "MoodsAllWeights",
    "Genres",
    "GenreWeights",
    "Themes",
    "ThemeWeights",
    "Styles",
    "StyleWeights",
    "AppearancesTrackIDs",
    "AppearancesAlbumIDs",
    "Sample",
    "SampleURL",
    "ActualYear",
    "num_Genres",
    "num_MoodsAll",
];

#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub songs: usize,
    pub seed: u64,
    /// 22050 or 44100.
    pub sample_rate: u32,
    /// Scales the length distribution so the longest possible clip is this long (default 30.8 s,
    /// MERGE's own spread); tests use a few seconds.
    pub max_seconds: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { songs: 40, seed: 0, sample_rate: 22050, max_seconds: 30.8 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SynthSong {
    pub audio_id: String,
    pub lyric_id: String,
    pub quadrant: &'static str,
    pub valence: f64,
    pub arousal: f64,
    pub seconds: f64,
    /// train, validate or test (tvt_70_15_15).
    pub split: &'static str,
}

/// The quadrant of (valence, arousal), as MERGE defines it.
pub fn quadrant_of(valence: f64, arousal: f64) -> &'static str {
    match (valence >= 0.5, arousal >= 0.5) {
        (true, true) => "Q1",
        (false, true) => "Q2",
        (false, false) => "Q3",
        (true, false) => "Q4",
    }
}

const POSITIVE: &[&str] = &[
    "love",
    "sunshine",
    "smile",
    "happy",
    "bright",
    "joy",
    "dream",
    "shine",
    "together",
    "warm",
    "laugh",
    "golden",
    "sweet",
    "hope",
    "kiss",
    "beautiful",
    "heaven",
    "glad",
];
const NEGATIVE: &[&str] = &[
    "tears", "alone", "broken", "cold", "dark", "pain", "lost", "cry", "grave", "empty", "fear", "gone", "bleeding",
    "shadow", "goodbye", "hate", "lonely", "ashes",
];
const ENERGETIC: &[&str] = &[
    "run", "fire", "jump", "scream", "fast", "loud", "wild", "burn", "shout", "storm", "thunder", "race", "rush",
    "electric", "fight", "explode", "crash", "rage",
];
const CALM: &[&str] = &[
    "slow", "quiet", "whisper", "gentle", "soft", "still", "rest", "breathe", "drift", "calm", "sleep", "lullaby",
    "easy", "float", "hush", "peaceful", "linger", "dawn",
];
const FILLER: &[&str] = &[
    "the", "I", "you", "we", "in", "on", "my", "your", "and", "of", "night", "day", "heart", "road", "time", "again",
    "with", "me", "all", "we're", "tonight", "away",
];

const MOODS: [[&str; 4]; 4] = [
    ["Happy", "Energetic", "Cheerful", "Exuberant"],
    ["Angry", "Aggressive", "Tense", "Anxious"],
    ["Sad", "Melancholy", "Gloomy", "Bleak"],
    ["Calm", "Peaceful", "Relaxed", "Tender"],
];
const GENRES: &[&str] = &["Pop/Rock", "Electronic", "R&B", "Jazz", "Country", "Folk", "Rap", "Blues"];

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.below(list.len())]
}

/// Per-song draw of the labels and length (a function of seed and index only).
fn draw_song(seed: u64, index: usize, width: usize, max_seconds: f64) -> SynthSong {
    let mut rng = Rng::new(mix64(seed ^ 0x5157_4e54) ^ mix64(index as u64 + 1));
    // MERGE's quadrant proportions: Q1 525, Q2 673, Q3 500, Q4 518 of 2216.
    let u = rng.uniform() * 2216.0;
    let q = if u < 525.0 {
        0
    } else if u < 1198.0 {
        1
    } else if u < 1698.0 {
        2
    } else {
        3
    };
    let (v_hi, a_hi) = [(true, true), (false, true), (false, false), (true, false)][q];
    let valence = if v_hi { rng.uniform_range(0.6, 0.95) } else { rng.uniform_range(0.05, 0.4) };
    let arousal = if a_hi { rng.uniform_range(0.6, 0.9) } else { rng.uniform_range(0.12, 0.4) };
    let (valence, arousal) = ((valence * 1e4).round() / 1e4, (arousal * 1e4).round() / 1e4);
    let full = if rng.uniform() < 0.75 { rng.uniform_range(29.5, 30.8) } else { rng.uniform_range(5.0, 29.5) };
    let seconds = (full * max_seconds / 30.8 * 100.0).round() / 100.0;
    SynthSong {
        audio_id: format!("A{:0width$}", index + 1),
        lyric_id: format!("L{:0width$}", index + 1),
        quadrant: quadrant_of(valence, arousal),
        valence,
        arousal,
        seconds: seconds.max(0.5),
        split: "train",
    }
}

/// Adds a damped sinusoid a·r^n·sin(w n) starting at `start` for `len` samples (two-term
/// recurrence: one multiply-add pair per sample).
fn add_partial(buf: &mut [f32], start: usize, len: usize, freq: f64, amp: f64, decay_s: f64, sr: f64) {
    let end = (start + len).min(buf.len());
    if start >= end || freq <= 0.0 || freq >= 0.45 * sr {
        return;
    }
    let w = 2.0 * std::f64::consts::PI * freq / sr;
    let r = (-1.0 / (decay_s * sr)).exp();
    let c1 = 2.0 * r * w.cos();
    let c2 = r * r;
    let mut y1 = 0.0f64; // y[n-1]
    let mut y0 = amp * r * w.sin(); // y[n] at n = 1 (y[0] = 0)
    for s in &mut buf[start + 1..end] {
        *s += y0 as f32;
        let y = c1 * y0 - c2 * y1;
        y1 = y0;
        y0 = y;
    }
}

fn midi_hz(m: f64) -> f64 {
    440.0 * 2f64.powf((m - 69.0) / 12.0)
}

/// The audio of one song: mono samples in [-1, 1].
pub fn render_audio(song: &SynthSong, seed: u64, index: usize, sample_rate: u32) -> Vec<f32> {
    let sr = sample_rate as f64;
    let mut rng = Rng::new(mix64(seed ^ 0xa0d1_0000) ^ mix64(index as u64 + 7));
    let n = (song.seconds * sr).round() as usize;
    let mut buf = vec![0f32; n];
    let (v, a) = (song.valence, song.arousal);

    let root = 45.0 + rng.below(12) as f64; // A2..G#3
    let major = v >= 0.5;
    let third = if major { 4.0 } else { 3.0 };
    // Added tones: dissonance grows as v falls below 0.4, consonant sixths above 0.65.
    let dissonance = ((0.45 - v) / 0.35).clamp(0.0, 1.0);
    let sweetness = ((v - 0.6) / 0.3).clamp(0.0, 1.0);
    let progression: [f64; 4] = if major { [0.0, 5.0, 7.0, 0.0] } else { [0.0, 8.0, 5.0, 7.0] };

    let harmonics = 3 + (9.0 * a).round() as usize;
    let tilt = 2.3 - 1.5 * a;
    let rate = (1.0 + 6.0 * a) * rng.uniform_range(0.9, 1.1);
    let note_decay = 0.12 + 0.6 * (1.0 - a);
    let chord_len = 2.0f64;

    let voice = |buf: &mut [f32], start: usize, len: usize, midi: f64, amp: f64, decay: f64, nh: usize| {
        let f0 = midi_hz(midi);
        for k in 1..=nh {
            add_partial(buf, start, len, f0 * k as f64, amp * (k as f64).powf(-tilt), decay, sr);
        }
    };

    // Chords: a pad of the triad (plus added tone) every chord_len seconds.
    let mut chord_tones = Vec::new();
    let mut t = 0.0;
    let mut ci = 0;
    while t < song.seconds {
        let base = root + progression[ci % 4];
        let mut tones = vec![0.0, third, 7.0];
        if rng.uniform() < dissonance {
            tones.push(if rng.uniform() < 0.5 { 1.0 } else { 6.0 });
        } else if rng.uniform() < sweetness {
            tones.push(9.0);
        }
        let start = (t * sr) as usize;
        let len = (chord_len * sr) as usize;
        for &iv in &tones {
            voice(&mut buf, start, len, base + iv, 0.25, 1.5, 4.min(harmonics));
        }
        chord_tones.push((t, base, tones));
        t += chord_len;
        ci += 1;
    }

    // Melody/arpeggio notes at the onset rate, from the current chord, an octave up.
    let mut t = rng.uniform_range(0.0, 0.2);
    while t < song.seconds {
        let ci = ((t / chord_len) as usize).min(chord_tones.len() - 1);
        let (_, base, ref tones) = chord_tones[ci];
        let iv = tones[rng.below(tones.len())] + 12.0 * (1 + rng.below(2)) as f64;
        let start = (t * sr) as usize;
        let len = ((note_decay * 4.0).min(1.5) * sr) as usize;
        voice(&mut buf, start, len, base + iv, 0.5, note_decay, harmonics);
        // Percussive noise burst, stronger with arousal.
        let hit = 0.6 * a * a;
        if hit > 0.01 {
            let hl = (0.04 * sr) as usize;
            for (j, s) in buf.iter_mut().skip(start).take(hl).enumerate() {
                *s += (hit * (rng.uniform() * 2.0 - 1.0) * (-(j as f64) / (0.008 * sr)).exp()) as f32;
            }
        }
        t += (1.0 / rate) * rng.uniform_range(0.85, 1.15);
    }

    // Loudness: peak-normalise to a level set by arousal, and a faint noise floor.
    let peak = buf.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-9);
    let level_db = -26.0 + 22.0 * a + rng.uniform_range(-1.5, 1.5);
    let g = (10f64.powf(level_db / 20.0) / peak as f64) as f32;
    for s in &mut buf {
        *s = *s * g + ((rng.uniform() - 0.5) * 2e-4) as f32;
    }
    buf
}

/// The lyrics of one song: 3-4 stanzas of 4 lines; word choice carries valence and arousal.
pub fn render_lyrics(song: &SynthSong, seed: u64, index: usize) -> String {
    let mut rng = Rng::new(mix64(seed ^ 0x1e1c_5000) ^ mix64(index as u64 + 3));
    let (v, a) = (song.valence, song.arousal);
    let mut out = String::new();
    let stanzas = 3 + rng.below(2);
    for s in 0..stanzas {
        for _ in 0..4 {
            let words = 5 + rng.below(4);
            let mut line: Vec<&str> = Vec::with_capacity(words);
            for _ in 0..words {
                let u = rng.uniform();
                let w = if u < 0.25 {
                    if rng.uniform() < v { pick(&mut rng, POSITIVE) } else { pick(&mut rng, NEGATIVE) }
                } else if u < 0.5 {
                    if rng.uniform() < a { pick(&mut rng, ENERGETIC) } else { pick(&mut rng, CALM) }
                } else {
                    pick(&mut rng, FILLER)
                };
                line.push(w);
            }
            let mut text = line.join(" ");
            if let Some(c) = text.get(..1) {
                text = c.to_uppercase() + &text[1..];
            }
            out.push_str(&text);
            out.push('\n');
        }
        if s + 1 < stanzas {
            out.push('\n');
        }
    }
    out
}

/// Assigns train/validate/test in the given proportions, spreading each split evenly over the
/// order given (songs sorted by quadrant, so the splits come out stratified).
fn assign_splits(order: &[usize], fractions: [f64; 3]) -> Vec<usize> {
    let mut counts = [0usize; 3];
    let mut out = vec![0; order.len()];
    for (i, &song) in order.iter().enumerate() {
        let want = |k: usize| fractions[k] * (i + 1) as f64 - counts[k] as f64;
        let k = (0..3).max_by(|&x, &y| want(x).total_cmp(&want(y)).then(y.cmp(&x))).unwrap_or(0);
        counts[k] += 1;
        out[song] = k;
    }
    out
}

fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("csv: {e}"));
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(r).map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Invalid(format!("csv: {e}")))
}

/// Writes the dataset under `out`; returns the songs in ID order.
pub fn generate(out: &Path, cfg: &SynthConfig) -> Result<Vec<SynthSong>> {
    if cfg.songs == 0 {
        return Err(Error::Invalid("--songs must be at least 1".into()));
    }
    if cfg.sample_rate != 22050 && cfg.sample_rate != 44100 {
        return Err(Error::Invalid(format!("--sample-rate {}: use 22050 or 44100", cfg.sample_rate)));
    }
    if !(cfg.max_seconds.is_finite() && cfg.max_seconds >= 1.0) {
        return Err(Error::Invalid(format!("--max-seconds {}: need at least 1", cfg.max_seconds)));
    }
    let width = cfg.songs.to_string().len().max(3);
    let mut songs: Vec<SynthSong> = (0..cfg.songs).map(|i| draw_song(cfg.seed, i, width, cfg.max_seconds)).collect();

    // Splits, stratified by quadrant: order by (quadrant, a seeded shuffle key).
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.sort_by_key(|&i| (songs[i].quadrant, mix64(cfg.seed ^ mix64(i as u64 + 11))));
    let tvt70 = assign_splits(&order, [0.70, 0.15, 0.15]);
    let tvt40 = assign_splits(&order, [0.40, 0.30, 0.30]);
    const SPLITS: [&str; 3] = ["train", "validate", "test"];
    for (s, &k) in songs.iter_mut().zip(&tvt70) {
        s.split = SPLITS[k];
    }

    for q in ["Q1", "Q2", "Q3", "Q4"] {
        create_dir(&out.join("audio").join(q))?;
        create_dir(&out.join("lyrics").join(q))?;
    }
    songs.par_iter().enumerate().try_for_each(|(i, s)| -> Result<()> {
        let audio = render_audio(s, cfg.seed, i, cfg.sample_rate);
        write_atomic(
            &out.join("audio").join(s.quadrant).join(format!("{}.wav", s.audio_id)),
            &wav::encode_pcm16(&audio, cfg.sample_rate),
        )?;
        let text = render_lyrics(s, cfg.seed, i);
        write_atomic(&out.join("lyrics").join(s.quadrant).join(format!("{}.txt", s.lyric_id)), text.as_bytes())
    })?;

    // merge_bimodal_complete_metadata.csv: the 27 columns, MERGE-like values (some fields hold
    // commas and quotes, so they are quoted as in the real file).
    let mut meta = Vec::with_capacity(songs.len());
    for (i, s) in songs.iter().enumerate() {
        let mut rng = Rng::new(mix64(cfg.seed ^ 0x3e7a) ^ mix64(i as u64 + 5));
        let q = s.quadrant[1..].parse::<usize>().unwrap_or(1) - 1;
        let moods: Vec<&str> = MOODS[q].to_vec();
        let genre = pick(&mut rng, GENRES);
        let title = format!(
            "{} {}",
            capitalise(pick(&mut rng, if s.valence >= 0.5 { POSITIVE } else { NEGATIVE })),
            capitalise(pick(&mut rng, if s.arousal >= 0.5 { ENERGETIC } else { CALM }))
        );
        let year = 1960 + rng.below(56);
        let artist = format!("Synth Artist {}", 1 + rng.below(cfg.songs.div_ceil(3).max(1)));
        let row = vec![
            s.audio_id.clone(),
            s.lyric_id.clone(),
            s.quadrant.to_string(),
            format!("mt{:010}", mix64(cfg.seed ^ mix64(i as u64 + 0x41)) % 10_000_000_000),
            "2016-05-12".to_string(),
            artist,
            title,
            format!("{}", 1 + rng.below(9)),
            year.to_string(),
            year.to_string(),
            format!("{:.2}", s.seconds),
            format!("{}, {}", moods[0], moods[1]),
            moods.join(", "),
            "1, 0.8, 0.6, 0.4".to_string(),
            genre.to_string(),
            "1".to_string(),
            "\"Synthetic\" Feelings".to_string(),
            "1".to_string(),
            format!("{genre} Synth"),
            "1".to_string(),
            format!("mt{:010}", rng.below(1_000_000_000)),
            format!("mw{:010}", rng.below(1_000_000_000)),
            "1".to_string(),
            format!("https://example.invalid/samples/{}.mp3", s.audio_id),
            year.to_string(),
            "1".to_string(),
            moods.len().to_string(),
        ];
        meta.push(row);
    }
    write_atomic(&out.join("merge_bimodal_complete_metadata.csv"), &csv_bytes(&METADATA_COLUMNS, &meta)?)?;

    let av: Vec<Vec<String>> = songs
        .iter()
        .map(|s| vec![s.audio_id.clone(), s.lyric_id.clone(), s.arousal.to_string(), s.valence.to_string()])
        .collect();
    write_atomic(
        &out.join("merge_bimodal_complete_av_values.csv"),
        &csv_bytes(&["Audio_Song", "Lyric_Song", "Arousal", "Valence"], &av)?,
    )?;

    for (name, assign) in [("tvt_70_15_15", &tvt70), ("tvt_40_30_30", &tvt40)] {
        let dir = out.join("tvt_dataframes").join(name);
        create_dir(&dir)?;
        for (k, split) in SPLITS.iter().enumerate() {
            let rows: Vec<Vec<String>> = songs
                .iter()
                .zip(assign.iter())
                .filter(|&(_, &a)| a == k)
                .map(|(s, _)| vec![s.audio_id.clone(), s.quadrant.to_string()])
                .collect();
            write_atomic(
                &dir.join(format!("{name}_{split}_bimodal_complete.csv")),
                &csv_bytes(&["Song", "Quadrant"], &rows)?,
            )?;
        }
    }
    Ok(songs)
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
