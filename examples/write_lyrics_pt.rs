//! Writes the `.pt` fixtures of tests/fixtures/text/torch_pt/ from its inputs.json with moodgrad's
//! torch.save writer (then `tools/check_torch_pt.py` checks them with PyTorch):
//!
//!     cargo run --release --example write_lyrics_pt [-- tests/fixtures/text]

use moodgrad::text::tokenize::LyricsTokenizer;
use moodgrad::text::torch_pt::write_tokenized_pt;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures/text".into()));
    let inputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("torch_pt/inputs.json"))?)?;
    let tok_path = root.join(inputs["tokenizer"].as_str().ok_or("inputs.json: no tokenizer")?);
    let tok = LyricsTokenizer::from_tokenizer_json(&tok_path)?;
    for song in inputs["songs"].as_array().ok_or("inputs.json: no songs")? {
        let file = root.join("torch_pt").join(song["file"].as_str().ok_or("song without file")?);
        let max_len = song["max_len"].as_u64().ok_or("song without max_len")? as usize;
        let enc = tok.encode(song["text"].as_str().ok_or("song without text")?, max_len)?;
        write_tokenized_pt(&file, &enc)?;
        println!("{} ({} tokens of {max_len})", file.display(), enc.n_tokens());
    }
    Ok(())
}
