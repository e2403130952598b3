//! `moodgrad encode`: one vector per lyric file from a Hugging Face encoder, written as one
//! safetensors file keyed by file stem.
//!
//! `--model` is a folder, or a hub name (`org/name[@revision]`) from the Hugging Face cache, downloaded
//! into it first when missing (src/text/hf/resolve.rs).
//! `--lyrics` is a file or a folder (searched recursively for `*.txt`, e.g. MERGE's `lyrics/Q1..Q4`).
//! Lyrics that cannot be decoded (binary, not UTF-8, too large) are skipped and listed with the
//! reason; an empty lyric (an instrumental song) is encoded as transformers encodes "", with a
//! warning; the rest are encoded `--batch` at a time in eval mode, lyrics of similar
//! length batched together.

use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::io::{self, HostTensor, TensorFile};
use crate::nn::text::{LyricsTower, Pooling};
use crate::params::ParamStore;
use crate::text::lyrics::read_lyric;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The `format` metadata of the output file.
pub const FORMAT: &str = "moodgrad-lyrics-vectors-v1";

#[derive(clap::Args, Clone, Debug)]
pub struct EncodeArgs {
    /// A Hugging Face model folder (config.json, model.safetensors, tokenizer files), or a hub name
    /// such as bert-base-uncased, taken from the Hugging Face cache or downloaded into it as
    /// from_pretrained does (HF_HOME, HF_ENDPOINT, HF_TOKEN; HF_HUB_OFFLINE=1 never downloads).
    /// NAME@REVISION pins a branch, tag or commit.
    #[arg(long)]
    pub model: String,
    /// A lyric file, or a folder searched recursively for *.txt.
    #[arg(long)]
    pub lyrics: PathBuf,
    /// cls (the [CLS] hidden state, the seed's choice), pooler (tanh(dense([CLS]))) or mean
    /// (masked mean, sentence-transformers').
    #[arg(long, default_value = "cls")]
    pub pool: String,
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
    /// Lyrics per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Output safetensors: one F32 [hidden] tensor per lyric, named by its file stem.
    #[arg(long)]
    pub out: PathBuf,
    /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments resolved.
pub struct EncodeOptions<'a> {
    pub model: &'a str,
    pub lyrics: &'a Path,
    pub pooling: Pooling,
    pub max_len: usize,
    pub batch: usize,
    pub out: &'a Path,
    pub device: DeviceChoice,
}

/// What a run did (also returned to tests).
#[derive(Debug, Default)]
pub struct Outcome {
    pub encoded: usize,
    pub dim: usize,
    /// (file, reason).
    pub skipped: Vec<(PathBuf, String)>,
    pub warnings: Vec<String>,
    pub load_report: String,
    pub device: String,
    pub seconds: f64,
}

pub fn run(a: &EncodeArgs) -> Result<()> {
    let args = &EncodeOptions {
        model: &a.model,
        lyrics: &a.lyrics,
        pooling: a.pool.parse()?,
        max_len: a.max_len,
        batch: a.batch,
        out: &a.out,
        device: a.device.parse()?,
    };
    let o = encode(args)?;
    let mut t = format!(
        "encode: {} lyrics → {} ({} floats each, pooling {}, max_len {}) on {} in {:.1} s\n  model: {}\n",
        o.encoded,
        args.out.display(),
        o.dim,
        args.pooling.name(),
        args.max_len,
        o.device,
        o.seconds,
        o.load_report
    );
    if !o.skipped.is_empty() {
        t += &format!("  skipped {}:\n", o.skipped.len());
        for (f, why) in &o.skipped {
            t += &format!("    {}: {why}\n", f.display());
        }
    }
    for w in &o.warnings {
        t += &format!("  warning: {w}\n");
    }
    let _ = std::io::stdout().write_all(t.as_bytes());
    Ok(())
}

/// The lyric files under `path` (itself if a file), sorted.
pub fn lyric_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(Error::file(
            path,
            "no such file or folder (--lyrics takes a lyric file or a folder of *.txt files)",
        ));
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| Error::file(&d, format!("cannot list: {e}")))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("txt")) {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::file(path, "holds no *.txt lyric files (searched its subfolders too)"));
    }
    Ok(out)
}

/// Reads the lyrics: (stem, text) of the usable ones, and the skipped ones with reasons.
fn read_all(files: &[PathBuf], o: &mut Outcome) -> Result<Vec<(String, String)>> {
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for f in files {
        let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(prev) = by_stem.insert(stem.clone(), f.clone()) {
            return Err(Error::file(
                f,
                format!("has the same name as {} (the output is keyed by file name): rename one", prev.display()),
            ));
        }
        match read_lyric(f) {
            Err(Error::File { message, .. }) => o.skipped.push((f.clone(), message)),
            Err(e) => o.skipped.push((f.clone(), e.to_string())),
            Ok(l) => {
                o.warnings.extend(l.warnings);
                out.push((stem, l.text));
            }
        }
    }
    Ok(out)
}

pub fn encode(args: &EncodeOptions) -> Result<Outcome> {
    let t0 = std::time::Instant::now();
    if args.batch == 0 {
        return Err(Error::Invalid("--batch must be at least 1".into()));
    }
    let mut o = Outcome::default();
    let files = lyric_files(args.lyrics)?;
    let lyrics = read_all(&files, &mut o)?;
    if lyrics.is_empty() {
        let first = o.skipped.first().map(|(f, why)| format!(" (first: {}: {why})", f.display())).unwrap_or_default();
        return Err(Error::Invalid(format!("no lyric could be encoded: all {} were skipped{first}", o.skipped.len())));
    }
    let dev = Device::open(args.device)?;
    o.device = dev.name();
    let (vectors, dim, report) = crate::on_device!(dev, |b| encode_on(b, args, &lyrics))?;
    o.encoded = vectors.len();
    o.dim = dim;
    o.load_report = report;
    let mut file = TensorFile::default();
    for ((stem, _), v) in lyrics.iter().zip(vectors) {
        file.tensors.insert(stem.clone(), HostTensor::f32(&[dim], v));
    }
    let skipped: Vec<_> =
        o.skipped.iter().map(|(f, why)| json!({"file": f.display().to_string(), "reason": why})).collect();
    for (k, v) in [
        ("format", FORMAT.to_string()),
        ("model", args.model.to_string()),
        ("pooling", args.pooling.name().to_string()),
        ("max_len", args.max_len.to_string()),
        ("dim", dim.to_string()),
        ("skipped", serde_json::Value::Array(skipped).to_string()),
    ] {
        file.metadata.insert(k.into(), v);
    }
    io::write(args.out, &file)?;
    o.seconds = t0.elapsed().as_secs_f64();
    Ok(o)
}

fn encode_on<B: crate::backend::Backend>(
    be: B,
    args: &EncodeOptions,
    lyrics: &[(String, String)],
) -> Result<(Vec<Vec<f32>>, usize, String)> {
    let mut store = ParamStore::new(be);
    let (tower, summary) = LyricsTower::from_hf(&mut store, "", args.model, args.pooling, args.max_len)?;
    let report = format!(
        "{} ({}; {})",
        tower.model_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        tower.encoder.config.family.model_type(),
        summary.describe()
    );
    let texts: Vec<&str> = lyrics.iter().map(|(_, t)| t.as_str()).collect();
    let bar = progress_bar(texts.len() as u64);
    let vectors = tower.encode(&store, &texts, args.batch, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok((vectors, tower.hidden_size(), report))
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} lyrics, {per_sec}, ETA {eta}") {
        bar.set_style(style);
    }
    bar
}
