//! `moodgrad preprocess`: a MERGE folder into a spectrogram cache and the seed's master list (the
//! work is `data::preprocess`; this prints its report).

use crate::data::cache;
use crate::data::preprocess::{Outcome, PreprocessOptions, preprocess, report_text};
use crate::data::preprocess_lyrics;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug)]
pub struct PreprocessArgs {
    /// The MERGE folder (Bimodal, Audio-only or Lyrics-only; Complete or Balanced).
    #[arg(long)]
    pub data: PathBuf,
    /// Cache folder (default: DATA/moodgrad-cache/fixed, or …/legacy with --legacy).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Parallel clips (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The notebooks' preprocessing: ref = the clip's max, the first 1292 frames, pad with 0.
    #[arg(long)]
    pub legacy: bool,
    /// npy (one <Audio_Song>.npy per clip, the seed's format) or safetensors (shards keyed by Audio_Song).
    #[arg(long, default_value = "npy")]
    pub format: String,
    /// Also tokenize each lyric with this tokenizer (a Hugging Face folder, or a hub name
    /// NAME[@REVISION] whose tokenizer files are taken from the Hugging Face cache or downloaded
    /// into it) into processed_lyrics/<Audio_Song>.pt, as the seed's notebooks did, and point
    /// lyrics_path at it; without it lyrics_path names the .txt.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Tokens per lyric with --tokenizer (padded and truncated to exactly this many).
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
}

pub fn run(a: &PreprocessArgs) -> Result<()> {
    let args = PreprocessOptions {
        data: &a.data,
        out: a.out.as_deref(),
        jobs: a.jobs,
        legacy: a.legacy,
        format: a.format.parse()?,
        tokenizer: a.tokenizer.as_deref(),
        max_len: a.max_len,
    };
    let o = preprocess(&args)?;
    print_report(&o, &args);
    if o.new + o.unchanged == 0 {
        let first = o.skipped.first().map(|s| format!(" (first: {} — {}: {})", s.song, s.kind.label(), s.detail));
        return Err(Error::Invalid(format!(
            "nothing could be processed: all {} songs were skipped{}; see {}",
            o.skipped.len(),
            first.unwrap_or_default(),
            o.out.join(cache::SKIPPED).display()
        )));
    }
    Ok(())
}

fn print_report(o: &Outcome, args: &PreprocessOptions) {
    let mut t = format!(
        "preprocess: {} songs listed; {} processed ({} new, {} unchanged); {} skipped; {:.1} s, {:.1} new clips/s on {} jobs\n",
        o.listed,
        o.new + o.unchanged,
        o.new,
        o.unchanged,
        o.skipped.len(),
        o.seconds,
        o.new as f64 / o.seconds.max(1e-9),
        o.jobs
    );
    if let Some(l) = &o.lyrics {
        t += &format!(
            "  lyrics: {} tokenized ({} new, {} unchanged) with {} at max_len {} → {}/ (lyrics_path points there)\n",
            l.new + l.unchanged,
            l.new,
            l.unchanged,
            l.tokenizer,
            l.max_len,
            o.out.join(preprocess_lyrics::DIR).display()
        );
    }
    t += &report_text(o);
    t += &format!(
        "  cache: {} ({}, {} parameters): {}, {}, {}\n",
        o.out.display(),
        args.format.name(),
        if args.legacy { "legacy" } else { "fixed" },
        cache::MASTER_LIST,
        cache::MANIFEST,
        cache::SKIPPED
    );
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(t.as_bytes());
}
