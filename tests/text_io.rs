//! Lyric files, the seed's .pt cache file (byte for byte against the committed moodgrad-written
//! fixture that tools/check_torch_pt.py verified with PyTorch), and the vector cache.

mod text_common;

use moodgrad::text::lyrics::{InvalidUtf8, LARGE_LYRIC_BYTES, read_lyric, read_lyric_with};
use moodgrad::text::tokenize::{Encoding, LyricsTokenizer};
use moodgrad::text::torch_pt::{archive_name, crc32, tokenized_pt_bytes, write_tokenized_pt};
use moodgrad::text::vector_cache::{ModelKey, VectorCache, text_key};
use std::path::Path;
use text_common::*;

#[test]
fn lyric_files_good_and_bad() {
    let d = tmp_dir("lyrics");
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let ok = read_lyric(&write("ok.txt", "Café 😀\r\nline two\n".as_bytes())).unwrap();
    assert_eq!((ok.text.as_str(), ok.warnings.len()), ("Café 😀\r\nline two\n", 0), "text passes unchanged");
    let bom = read_lyric(&write("bom.txt", b"\xEF\xBB\xBFhello")).unwrap();
    assert_eq!((bom.text.as_str(), bom.warnings.len()), ("hello", 0));

    let empty = read_lyric(&write("empty.txt", b"")).unwrap();
    assert_eq!(empty.text, "");
    assert!(
        empty.warnings[0].contains("empty.txt") && empty.warnings[0].contains("no lyrics (the file holds no text"),
        "{:?}",
        empty.warnings
    );
    let blank = read_lyric(&write("blank.txt", b" \n\t\n")).unwrap();
    assert!(blank.warnings[0].contains("no lyrics (the file holds no text"));

    let latin1 = write("latin1.txt", b"caf\xe9 ol\xe9\nline");
    let e = read_lyric(&latin1).unwrap_err().to_string();
    assert!(
        e.contains("latin1.txt") && e.contains("not UTF-8") && e.contains("offset 3") && e.contains("iconv"),
        "{e}"
    );
    let lossy = read_lyric_with(&latin1, InvalidUtf8::Replace).unwrap();
    assert_eq!(lossy.text, "caf\u{FFFD} ol\u{FFFD}\nline");
    assert!(
        lossy.warnings[0].contains("latin1.txt") && lossy.warnings[0].contains("2 sequence(s)"),
        "{:?}",
        lossy.warnings
    );

    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain("Hé 😀".encode_utf16().flat_map(|u| u.to_le_bytes())).collect();
    let u = read_lyric(&write("utf16.txt", &utf16)).unwrap();
    assert_eq!(u.text, "Hé 😀");
    assert!(u.warnings[0].contains("UTF-16"));
    assert!(read_lyric(&write("odd16.txt", &utf16[..utf16.len() - 1])).unwrap_err().to_string().contains("odd number"));

    let e = read_lyric(&write("bin.txt", b"\x89PNG\r\n\x1a\n\0\0\0")).unwrap_err().to_string();
    assert!(e.contains("bin.txt") && e.contains("NUL"), "{e}");
    let e = read_lyric(&d.join("missing.txt")).unwrap_err().to_string();
    assert!(e.contains("missing.txt") && e.contains("cannot read"), "{e}");
    assert!(read_lyric(&d).unwrap_err().to_string().contains("folder"));

    // 1 MB: read (with a warning naming it), and tokenized quickly (see text_tokenize.rs).
    let verse = "So long, so long, the river runs\n";
    let huge = write("huge.txt", verse.repeat((1 << 20) / verse.len() + 1).as_bytes());
    let h = read_lyric(&huge).unwrap();
    assert!(h.text.len() as u64 > LARGE_LYRIC_BYTES);
    assert!(h.warnings[0].contains("huge.txt") && h.warnings[0].contains("unusually large"), "{:?}", h.warnings);
    let tok = LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap();
    assert_eq!(tok.encode(&h.text, 512).unwrap().n_tokens(), 512);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn crc32_is_zips() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"little"), 0x19e3_3d85, "torch's byteorder record");
}

#[test]
fn archive_name_follows_torch() {
    assert_eq!(archive_name(Path::new("processed_lyrics/MT0000001.pt")), "MT0000001");
    assert_eq!(archive_name(Path::new("Q1.MT0000002.pt")), "Q1.MT0000002");
    assert_eq!(archive_name(Path::new("dir.d/noext")), "noext");
    assert_eq!(archive_name(Path::new("sóng.pt")), "archive");
    assert_eq!(archive_name(Path::new(".pt")), "archive");
}

/// The committed .pt files were written by moodgrad and checked with PyTorch (torch.load both
/// ways, equal to transformers' tokenizer output, equal to torch.save's bytes but the random
/// serialization id): writing the same input again must give the same bytes.
#[test]
fn tokenized_pt_matches_the_committed_fixture_bytes() {
    let root = fixtures();
    let inputs = read_json(&root.join("torch_pt/inputs.json"));
    let tok = LyricsTokenizer::from_tokenizer_json(&root.join(inputs["tokenizer"].as_str().unwrap())).unwrap();
    let d = tmp_dir("pt");
    let songs = inputs["songs"].as_array().unwrap();
    assert_eq!(songs.len(), 3);
    for song in songs {
        let file = song["file"].as_str().unwrap();
        let max_len = song["max_len"].as_u64().unwrap() as usize;
        let enc = tok.encode(song["text"].as_str().unwrap(), max_len).unwrap();
        let out = d.join(file);
        write_tokenized_pt(&out, &enc).unwrap();
        let ours = std::fs::read(&out).unwrap();
        let committed = std::fs::read(root.join("torch_pt").join(file)).unwrap();
        assert_eq!(ours.len(), committed.len(), "{file}: size");
        if let Some(i) = (0..ours.len()).find(|&i| ours[i] != committed[i]) {
            panic!("{file}: first differing byte at {i}");
        }
        // Layout facts torch relies on: every record's data 64-byte aligned, ids where expected.
        check_alignment(&ours, file);
    }
    let _ = std::fs::remove_dir_all(d);
}

/// Walks the local headers: each record's data starts at a multiple of 64.
fn check_alignment(bytes: &[u8], file: &str) {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    let mut pos = 0;
    let mut n = 0;
    while u32_at(pos) == 0x0403_4b50 {
        let (name_len, extra_len) = (u16_at(pos + 26), u16_at(pos + 28));
        let data = pos + 30 + name_len + extra_len;
        assert_eq!(data % 64, 0, "{file}: record {n} data at {data}");
        assert_eq!(&bytes[pos + 30 + name_len..pos + 32 + name_len], b"FB");
        // The size is in the 16-byte data descriptor after the data.
        let size = bytes[data..].windows(4).position(|w| w == [0x50, 0x4b, 0x07, 0x08]).unwrap();
        assert_eq!(u32_at(data + size + 8), size, "{file}: record {n} descriptor size");
        pos = data + size + 16;
        n += 1;
    }
    assert_eq!(n, 9, "{file}: records");
}

#[test]
fn pt_pickle_refers_to_the_three_tensors() {
    let enc =
        Encoding { input_ids: vec![101, 7592, 102, 0], token_type_ids: vec![0; 4], attention_mask: vec![1, 1, 1, 0] };
    let bytes = tokenized_pt_bytes("song1", &enc);
    let s = String::from_utf8_lossy(&bytes);
    for needle in [
        "song1/data.pkl",
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "_rebuild_tensor_v2",
        "LongStorage",
        "song1/data/2",
    ] {
        assert!(s.contains(needle), "{needle}");
    }
    assert!(!s.contains("BatchEncoding"), "a plain dict, loadable with weights_only=True");
    let d = tmp_dir("pt-bad");
    let bad = Encoding { input_ids: vec![1, 2], token_type_ids: vec![0], attention_mask: vec![1, 1] };
    let e = write_tokenized_pt(&d.join("x.pt"), &bad).unwrap_err().to_string();
    assert!(e.contains("x.pt") && e.contains("lengths 2, 1, 2"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

fn key(pooling: &str, max_len: usize) -> ModelKey {
    ModelKey { fingerprint: "f".repeat(64), tokenizer: "t".repeat(64), pooling: pooling.into(), max_len }
}

#[test]
fn vector_cache_put_flush_reopen() {
    let root = tmp_dir("vcache");
    let k = key("cls", 512);
    let mut c = VectorCache::open(&root, &k, 4).unwrap();
    assert!(c.is_empty() && !c.path().exists());
    c.put_text("first lyric", vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    c.put(&text_key("second"), vec![0.5; 4]).unwrap();
    assert_eq!(c.get_text("first lyric"), Some(&[1.0, 2.0, 3.0, 4.0][..]));
    assert!(c.is_dirty());
    c.flush().unwrap();
    assert!(!c.is_dirty() && c.path().is_file());
    let bytes = std::fs::read(c.path()).unwrap();
    drop(c);

    let mut c = VectorCache::open(&root, &k, 4).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.get_text("second"), Some(&[0.5; 4][..]));
    assert_eq!(c.get_text("unknown"), None);
    // Same content, same bytes (entries sorted by key): flushing is reproducible.
    c.put_text("second", vec![0.5; 4]).unwrap();
    c.flush().unwrap();
    assert_eq!(std::fs::read(c.path()).unwrap(), bytes);
    // No temporary files are left beside the cache.
    let names: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, [format!("{}.safetensors", k.key())]);

    // Wrong input is refused with a reason.
    assert!(c.put_text("x", vec![1.0; 3]).unwrap_err().to_string().contains("dim 4"));
    assert!(c.put_text("x", vec![f32::NAN; 4]).unwrap_err().to_string().contains("NaN"));
    assert!(c.put("not-a-key", vec![0.0; 4]).is_err());
    // Opening the file with another dim is an error naming it.
    let e = VectorCache::open(&root, &k, 8).unwrap_err().to_string();
    assert!(e.contains(&k.key()) && e.contains("dim 4"), "{e}");
    // A corrupt cache file says how to recover.
    std::fs::write(root.join(format!("{}.safetensors", k.key())), b"garbage").unwrap();
    let e = VectorCache::open(&root, &k, 4).unwrap_err().to_string();
    assert!(e.contains("delete it"), "{e}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn model_key_depends_on_every_part() {
    let base = key("cls", 512);
    let variants = [
        ModelKey { fingerprint: "g".repeat(64), ..base.clone() },
        ModelKey { tokenizer: "u".repeat(64), ..base.clone() },
        key("masked_mean", 512),
        key("cls", 128),
    ];
    assert_eq!(base.key(), key("cls", 512).key());
    assert_eq!(base.key().len(), 32);
    for v in &variants {
        assert_ne!(v.key(), base.key(), "{v:?}");
    }
    assert_ne!(text_key("a"), text_key("a "));
    assert_eq!(text_key(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
