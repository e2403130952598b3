//! TOML text → `Config`: the preset first, then each section's keys applied one by one, so an
//! unknown key or a wrong type is reported with its full name (`train.epochs`).

use super::choices::*;
use super::{Config, DataSection, LyricsSection, ModelSection, PRESETS, TrainSection};
use toml::{Table, Value};

type Msg = String;

const TOP: [&str; 5] = ["preset", "model", "lyrics", "train", "data"];
pub const MODEL_KEYS: [&str; 9] = [
    "convs_per_block",
    "channels",
    "attention",
    "se_reduction",
    "audio_hidden",
    "audio_out",
    "head_hidden",
    "dropout",
    "modality",
];
pub const LYRICS_KEYS: [&str; 7] = ["model", "mode", "layers", "lr", "max_len", "pool", "vectors"];
pub const TRAIN_KEYS: [&str; 16] = [
    "epochs",
    "batch_size",
    "lr",
    "clip",
    "patience",
    "scheduler",
    "step_size",
    "gamma",
    "warmup_epochs",
    "seed",
    "loss",
    "quadrant_loss",
    "restore",
    "shuffle",
    "accumulate",
    "sync_batchnorm",
];
pub const DATA_KEYS: [&str; 2] = ["preprocessing", "split"];

/// What a value is, for "expected X, found Y".
fn kind(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string \"{s}\""),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
    }
}

fn wrong(key: &str, expected: &str, v: &Value) -> Msg {
    format!("`{key}`: expected {expected}, found {}", kind(v))
}

fn uint(key: &str, v: &Value) -> Result<u64, Msg> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        _ => Err(wrong(key, "a non-negative integer", v)),
    }
}

fn usize_(key: &str, v: &Value) -> Result<usize, Msg> {
    uint(key, v)?.try_into().map_err(|_| format!("`{key}`: {v} is too large"))
}

/// A float; integers are accepted (`lr = 1` is 1.0).
fn float(key: &str, v: &Value) -> Result<f64, Msg> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Integer(i) => Ok(*i as f64),
        _ => Err(wrong(key, "a number", v)),
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool, Msg> {
    v.as_bool().ok_or_else(|| wrong(key, "true or false", v))
}

fn string(key: &str, v: &Value) -> Result<String, Msg> {
    v.as_str().map(str::to_string).ok_or_else(|| wrong(key, "a string", v))
}

fn choice<T>(key: &str, v: &Value, parse: fn(&str) -> Option<T>, names: &[&str]) -> Result<T, Msg> {
    let list = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    let s = v.as_str().ok_or_else(|| wrong(key, &format!("one of {list}"), v))?;
    parse(s).ok_or_else(|| format!("`{key}`: unknown value \"{s}\"; use one of {list}"))
}

fn usize_list(key: &str, v: &Value) -> Result<Vec<usize>, Msg> {
    let a = v.as_array().ok_or_else(|| wrong(key, "an array of integers like [64, 128, 256, 512]", v))?;
    a.iter().enumerate().map(|(i, x)| usize_(&format!("{key}[{i}]"), x)).collect()
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let here = (prev + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = here;
        }
    }
    row[b.len()]
}

fn unknown(section: &str, key: &str, known: &[&str]) -> Msg {
    let near = known.iter().min_by_key(|k| distance(key, k)).filter(|k| distance(key, k) <= 2);
    let hint = near.map_or(String::new(), |k| format!(" (did you mean `{k}`?)"));
    format!("`{section}.{key}`: unknown key{hint}; [{section}] takes {}", known.join(", "))
}

fn section<'a>(root: &'a Table, name: &str) -> Result<Option<&'a Table>, Msg> {
    match root.get(name) {
        None => Ok(None),
        Some(Value::Table(t)) => Ok(Some(t)),
        Some(v) => Err(wrong(name, &format!("a table ([{name}])"), v)),
    }
}

impl ModelSection {
    fn set(&mut self, key: &str, v: &Value) -> Result<(), Msg> {
        let k = format!("model.{key}");
        match key {
            "convs_per_block" => self.convs_per_block = usize_(&k, v)?,
            "channels" => self.channels = usize_list(&k, v)?,
            "attention" => self.attention = choice(&k, v, Attention::parse, Attention::NAMES)?,
            "se_reduction" => self.se_reduction = usize_(&k, v)?,
            "audio_hidden" => self.audio_hidden = usize_(&k, v)?,
            "audio_out" => self.audio_out = usize_(&k, v)?,
            "head_hidden" => self.head_hidden = usize_(&k, v)?,
            "dropout" => self.dropout = float(&k, v)?,
            "modality" => self.modality = choice(&k, v, Modality::parse, Modality::NAMES)?,
            _ => return Err(unknown("model", key, &MODEL_KEYS)),
        }
        Ok(())
    }
}

impl LyricsSection {
    fn set(&mut self, key: &str, v: &Value) -> Result<(), Msg> {
        let k = format!("lyrics.{key}");
        match key {
            "model" => self.model = string(&k, v)?,
            "mode" => self.mode = choice(&k, v, LyricsMode::parse, LyricsMode::NAMES)?,
            "layers" => self.layers = usize_(&k, v)?,
            "lr" => self.lr = float(&k, v)?,
            "max_len" => self.max_len = usize_(&k, v)?,
            "pool" => self.pool = choice(&k, v, Pool::parse, Pool::NAMES)?,
            "vectors" => self.vectors = string(&k, v)?,
            _ => return Err(unknown("lyrics", key, &LYRICS_KEYS)),
        }
        Ok(())
    }
}

impl TrainSection {
    fn set(&mut self, key: &str, v: &Value) -> Result<(), Msg> {
        let k = format!("train.{key}");
        match key {
            "epochs" => self.epochs = usize_(&k, v)?,
            "batch_size" => self.batch_size = usize_(&k, v)?,
            "lr" => self.lr = float(&k, v)?,
            "clip" => self.clip = float(&k, v)?,
            "patience" => self.patience = usize_(&k, v)?,
            "scheduler" => self.scheduler = choice(&k, v, Scheduler::parse, Scheduler::NAMES)?,
            "step_size" => self.step_size = usize_(&k, v)?,
            "gamma" => self.gamma = float(&k, v)?,
            "warmup_epochs" => self.warmup_epochs = usize_(&k, v)?,
            "seed" => self.seed = uint(&k, v)?,
            "loss" => self.loss = choice(&k, v, Loss::parse, Loss::NAMES)?,
            "quadrant_loss" => self.quadrant_loss = float(&k, v)?,
            "restore" => self.restore = choice(&k, v, Restore::parse, Restore::NAMES)?,
            "shuffle" => self.shuffle = boolean(&k, v)?,
            "accumulate" => self.accumulate = usize_(&k, v)?,
            "sync_batchnorm" => self.sync_batchnorm = boolean(&k, v)?,
            _ => return Err(unknown("train", key, &TRAIN_KEYS)),
        }
        Ok(())
    }
}

impl DataSection {
    fn set(&mut self, key: &str, v: &Value) -> Result<(), Msg> {
        let k = format!("data.{key}");
        match key {
            "preprocessing" => self.preprocessing = choice(&k, v, Preprocessing::parse, Preprocessing::NAMES)?,
            "split" => self.split = choice(&k, v, SplitName::parse, SplitName::NAMES)?,
            _ => return Err(unknown("data", key, &DATA_KEYS)),
        }
        Ok(())
    }
}

/// Parses and applies; values are range-checked afterwards by `validate`.
pub fn parse(text: &str) -> Result<Config, Msg> {
    let root: Table = text.parse().map_err(|e: toml::de::Error| format!("not valid TOML: {e}"))?;
    if let Some(k) = root.keys().find(|k| !TOP.contains(&k.as_str())) {
        return Err(format!("`{k}`: unknown key; the top level takes preset, [model], [lyrics], [train], [data]"));
    }
    let preset = match root.get("preset") {
        None => "model3".to_string(),
        Some(v) => string("preset", v)?,
    };
    if !PRESETS.contains(&preset.as_str()) {
        return Err(format!("`preset`: unknown preset \"{preset}\"; use one of {}", PRESETS.join(", ")));
    }
    let mut c = Config::preset(&preset).map_err(|e| e.to_string())?;
    if let Some(t) = section(&root, "model")? {
        t.iter().try_for_each(|(k, v)| c.model.set(k, v))?;
    }
    if let Some(t) = section(&root, "lyrics")? {
        t.iter().try_for_each(|(k, v)| c.lyrics.set(k, v))?;
    }
    if let Some(t) = section(&root, "train")? {
        t.iter().try_for_each(|(k, v)| c.train.set(k, v))?;
    }
    if let Some(t) = section(&root, "data")? {
        t.iter().try_for_each(|(k, v)| c.data.set(k, v))?;
    }
    Ok(c)
}
