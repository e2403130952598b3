//! The dataset layer: MERGE readers on hand-written folders, the .npy format, the master list,
//! `synth`, and `preprocess` end to end (resume, invalidation, skip report).

use moodgrad::data::cache::{self, CacheFormat, MasterRow, python_float};
use moodgrad::data::merge::{Dataset, Modality, SkipKind, Split, check_id, read_lyrics};
use moodgrad::data::npy;
use moodgrad::data::synth::{self, SynthConfig, quadrant_of};
use moodgrad::data::wav;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(p: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn moodgrad(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moodgrad")).args(args).output().expect("run moodgrad");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn numpy_python() -> Option<&'static str> {
    let py = "/work/torchenv/bin/python";
    let ok = Command::new(py).args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false);
    ok.then_some(py)
}

/// A MERGE-like Bimodal folder with one good song and one of each problem.
fn bimodal_fixture(root: &Path) {
    // BOM, CRLF, quoted fields with commas and quotes.
    let meta = "\u{feff}Audio_Song,Lyric_Song,Quadrant,Artist,Title,Moods\r\n\
        A001,L001,Q1,\"Smith, John\",\"Say \"\"Hi\"\"\",\"Happy, Cheerful\"\r\n\
        A002,L002,Q5,Band,Title,Sad\r\n\
        A003,L003,Q2,Smith, John,Title,Sad\r\n\
        ../A004,L004,Q2,Band,Title,Sad\r\n\
        A005,L005,Q3,Band,Title,Sad\r\n\
        A006,L006,Q4,Band,Title,Calm\r\n\
        A007,L007,Q4,Band,Title,Calm\r\n\
        A001,L001,Q1,Band,Again,Happy\r\n\
        A009,L009,Q1,\"multi\r\nline\",Title,Happy\r\n";
    write(&root.join("merge_bimodal_complete_metadata.csv"), meta);
    let av = "\u{feff}Audio_Song,Lyric_Song,Arousal,Valence\r\n\
        A001,L001,0.8,0.7\r\nA002,L002,0.8,0.7\r\nA003,L003,0.8,0.2\r\nA005,L005,0.2,0.2\r\n\
        A006,L006,0.3,0.8\r\nA009,L009,0.9,nope\r\n";
    write(&root.join("merge_bimodal_complete_av_values.csv"), av);
    for (q, id, lyr) in [("Q1", "A001", true), ("Q3", "A005", false), ("Q4", "A006", true), ("Q4", "A007", true)] {
        if id != "A006" {
            write(&root.join(format!("audio/{q}/{id}.mp3")), b"not really mp3");
        }
        if lyr {
            write(&root.join(format!("lyrics/{q}/L{}.txt", &id[1..])), b"la la \xe9t\xe9 love\n");
        }
    }
    write(&root.join("lyrics/Q2/.keep"), "");
    let tvt = root.join("tvt_dataframes/tvt_70_15_15");
    write(&tvt.join("tvt_70_15_15_train_bimodal_complete.csv"), "Song,Quadrant\nA001,Q1\n");
    write(&tvt.join("tvt_70_15_15_validate_bimodal_complete.csv"), "Song,Quadrant\n");
    write(&tvt.join("tvt_70_15_15_test_bimodal_complete.csv"), "Song,Quadrant\nA005,Q3\n");
}

#[test]
fn bimodal_reader_keeps_good_rows_and_names_every_bad_one() {
    let root = tmp("bimodal");
    bimodal_fixture(&root);
    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.layout.modality, Modality::Bimodal);
    let ids: Vec<&str> = ds.songs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["A001"], "skipped: {:#?}", ds.skipped);
    let s = &ds.songs[0];
    assert_eq!((s.quadrant, s.valence, s.arousal, s.split), ("Q1", 0.7, 0.8, Some(Split::Train)));
    assert_eq!(s.audio.as_deref(), Some(root.join("audio/Q1/A001.mp3").as_path()));
    assert_eq!(s.lyric_id.as_deref(), Some("L001"));

    let find =
        |song: &str| ds.skipped.iter().find(|k| k.song == song).unwrap_or_else(|| panic!("{song}: {:#?}", ds.skipped));
    let meta = root.join("merge_bimodal_complete_metadata.csv");
    // Wrong quadrant: line 3 (line 1 is the header).
    let q5 = find("A002");
    assert_eq!((q5.kind, q5.line, &q5.file), (SkipKind::BadCsvRow, Some(3), &meta));
    assert!(q5.detail.contains("Q5"), "{}", q5.detail);
    // Unquoted comma: field count.
    let comma = find("A003");
    assert_eq!((comma.kind, comma.line), (SkipKind::BadCsvRow, Some(4)));
    assert!(comma.detail.contains("7 fields") && comma.detail.contains("double quotes"), "{}", comma.detail);
    assert_eq!(find("../A004").kind, SkipKind::UnsafeId);
    assert_eq!(find("A005").kind, SkipKind::MissingLyric);
    assert_eq!(find("A006").kind, SkipKind::MissingAudio);
    assert_eq!(find("A007").kind, SkipKind::NoValues);
    let dup = ds.skipped.iter().find(|k| k.kind == SkipKind::DuplicateId).unwrap();
    assert_eq!((dup.song.as_str(), dup.line), ("A001", Some(9)));
    // A quoted newline inside a field is fine for the metadata, but A009's valence is not a number.
    let bad_av = ds.skipped.iter().find(|k| k.song == "A009" && k.kind == SkipKind::BadCsvRow).unwrap();
    assert_eq!(bad_av.file, root.join("merge_bimodal_complete_av_values.csv"));
    assert_eq!(bad_av.line, Some(7));
    assert_eq!(ds.skipped.iter().filter(|k| k.song == "A009").count(), 1, "one skip per song");

    // Non-UTF-8 lyrics: kept, decoded lossily, flagged.
    let (text, lossy) = read_lyrics(&root.join("lyrics/Q1/L001.txt")).unwrap();
    assert!(lossy && text.contains('\u{fffd}') && text.contains("love"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ids_that_escape_the_folder_are_refused() {
    for bad in ["..", "../x", "a/b", "a\\b", "/etc/passwd", "C:x", ".hidden", "", "a\0b"] {
        assert!(check_id(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["A001", "L1234", "MT0001234567", "song name"] {
        assert!(check_id(good).is_ok(), "{good:?} refused");
    }
}

#[test]
fn single_modality_layouts_and_non_merge_folders() {
    let root = tmp("audio-only");
    write(&root.join("merge_audio_complete_metadata.csv"), "Song,Quadrant,Artist\nA1,Q2,x\nA2,Q3,y\nA3,Q9,z\n");
    write(&root.join("merge_audio_complete_av_values.csv"), "Song,Arousal,Valence\nA1,0.7,0.3\nA2,0.3,0.2\n");
    write(&root.join("Q2/A1.mp3"), b"x");
    write(&root.join("Q3/A2.wav"), b"x");
    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.layout.modality, Modality::AudioOnly);
    assert_eq!(ds.songs.len(), 2, "{:#?}", ds.skipped);
    assert_eq!((ds.skipped[0].song.as_str(), ds.skipped[0].line), ("A3", Some(4)), "LF line numbers");
    assert_eq!(ds.songs[1].audio.as_deref(), Some(root.join("Q3/A2.wav").as_path()));
    assert!(ds.songs[0].lyrics.is_none());
    assert!(ds.warnings.iter().any(|w| w.contains("no split files")), "{:?}", ds.warnings);

    let root2 = tmp("lyrics-only");
    write(&root2.join("merge_lyrics_balanced_metadata.csv"), "Song,Quadrant\nL1,Q1\n");
    write(&root2.join("merge_lyrics_balanced_av_values.csv"), "Song,Arousal,Valence\nL1,0.7,0.9\n");
    write(&root2.join("Q1/L1.txt"), "hello");
    let ds = Dataset::open(&root2).unwrap();
    assert_eq!((ds.layout.modality, ds.songs.len()), (Modality::LyricsOnly, 1));
    assert_eq!(ds.songs[0].lyrics.as_deref(), Some(root2.join("Q1/L1.txt").as_path()));

    // Not MERGE: the error names the file expected; a missing av file is named too.
    let empty = tmp("not-merge");
    let err = Dataset::open(&empty).unwrap_err().to_string();
    assert!(err.contains("merge_bimodal_complete_metadata.csv"), "{err}");
    std::fs::remove_file(root.join("merge_audio_complete_av_values.csv")).unwrap();
    let err = Dataset::open(&root).unwrap_err().to_string();
    assert!(err.contains("merge_audio_complete_av_values.csv"), "{err}");
    // A header without the needed column: named with the columns that are there.
    write(&root.join("merge_audio_complete_av_values.csv"), "Song,Arousal\nA1,0.7\n");
    let err = Dataset::open(&root).unwrap_err().to_string();
    assert!(err.contains("no `Valence` column") && err.contains("Song, Arousal"), "{err}");
    for d in [root, root2, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn npy_header_is_exactly_numpys() {
    let data: Vec<f32> = (0..128 * 1292).map(|i| (i as f32) * 0.25 - 80.0).collect();
    let bytes = npy::encode_f32(&[128, 1292], &data).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    assert_eq!(&bytes[6..8], &[1, 0]);
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    assert_eq!(hlen, 118); // what numpy 1.x/2.x writes for this shape
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (128, 1292), }";
    assert!(header.starts_with(dict), "{header:?}");
    assert!(header.ends_with('\n') && header[dict.len()..header.len() - 1].bytes().all(|b| b == b' '));
    assert_eq!(bytes.len(), 10 + hlen + 4 * data.len());
    let (shape, back) = npy::decode_f32(&bytes, Path::new("x.npy")).unwrap();
    assert_eq!((shape, back), (vec![128, 1292], data.clone()));
    assert_eq!(npy::header_dict(&[3]), "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    assert!(npy::encode_f32(&[2, 2], &[1.0]).is_err());
    assert!(npy::decode_f32(&bytes[..100], Path::new("t.npy")).unwrap_err().to_string().contains("t.npy"));

    // numpy itself reads it, and writes the same bytes for the same array.
    if let Some(py) = numpy_python() {
        let dir = tmp("npy");
        let ours = dir.join("ours.npy");
        std::fs::write(&ours, &bytes).unwrap();
        let theirs = dir.join("theirs.npy");
        let script = format!(
            "import numpy as np\na = np.load('{}')\nassert a.shape == (128, 1292) and a.dtype == np.float32, (a.shape, a.dtype)\n\
             assert a.flags['C_CONTIGUOUS']\nassert a[0, 0] == -80.0 and a[127, 1291] == (128*1292-1)*0.25-80.0\n\
             np.save('{}', a)\n",
            ours.display(),
            theirs.display()
        );
        let out = Command::new(py).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&theirs).unwrap(), bytes, "np.save writes different bytes");
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("note: /work/torchenv numpy not found; checked the header format byte by byte only");
    }
}

#[test]
fn master_list_is_written_as_pandas_writes_it() {
    for (x, s) in [
        (0.5, "0.5"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
    ] {
        assert_eq!(python_float(x), s);
    }
    let rows = [
        MasterRow {
            song_id: "A001".into(),
            spectrogram_path: "/c/A001.npy".into(),
            lyrics_path: "/d/lyrics/Q1/L001.txt".into(),
            valence: 0.7,
            arousal: 1.0,
            quadrant: "Q1".into(),
        },
        MasterRow {
            song_id: "A002".into(),
            spectrogram_path: "/c,d/A002.npy".into(),
            lyrics_path: "/d/L2.txt".into(),
            valence: 0.125,
            arousal: 0.25,
            quadrant: "Q4".into(),
        },
    ];
    let text = String::from_utf8(cache::master_list_bytes(&rows).unwrap()).unwrap();
    assert_eq!(
        text,
        "song_id,spectrogram_path,lyrics_path,valence,arousal,quadrant\n\
         A001,/c/A001.npy,/d/lyrics/Q1/L001.txt,0.7,1.0,Q1\n\
         A002,\"/c,d/A002.npy\",/d/L2.txt,0.125,0.25,Q4\n"
    );
}

fn small_synth(dir: &Path, songs: usize, seed: u64, max_seconds: f64) -> Vec<synth::SynthSong> {
    synth::generate(dir, &SynthConfig { songs, seed, sample_rate: 22050, max_seconds }).unwrap()
}

#[test]
fn synth_is_deterministic_merge_shaped_and_learnable() {
    let (a, b) = (tmp("synth-a"), tmp("synth-b"));
    let songs = small_synth(&a, 24, 7, 3.0);
    assert_eq!(small_synth(&b, 24, 7, 3.0), songs);
    let mut files = Vec::new();
    for q in ["Q1", "Q2", "Q3", "Q4"] {
        for kind in ["audio", "lyrics"] {
            for e in std::fs::read_dir(a.join(kind).join(q)).unwrap() {
                files.push(e.unwrap().path().strip_prefix(&a).unwrap().to_path_buf());
            }
        }
    }
    files.push("merge_bimodal_complete_metadata.csv".into());
    files.push("merge_bimodal_complete_av_values.csv".into());
    files.push("tvt_dataframes/tvt_70_15_15/tvt_70_15_15_train_bimodal_complete.csv".into());
    assert_eq!(files.len(), 2 * 24 + 3);
    for f in &files {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{} differs", f.display());
    }
    assert_ne!(small_synth(&b, 24, 8, 3.0), songs, "another seed gives other songs");

    // The reader takes it whole.
    let ds = Dataset::open(&a).unwrap();
    assert_eq!((ds.songs.len(), ds.skipped.len()), (24, 0), "{:#?}", ds.skipped);
    let (mut tr, mut va, mut te) = (0, 0, 0);
    for s in &ds.songs {
        match s.split {
            Some(Split::Train) => tr += 1,
            Some(Split::Validate) => va += 1,
            Some(Split::Test) => te += 1,
            None => panic!("{} has no split", s.id),
        }
    }
    assert_eq!((tr, va, te), (17, 4, 3));
    let header = std::fs::read_to_string(a.join("merge_bimodal_complete_metadata.csv")).unwrap();
    let header = header.lines().next().unwrap();
    assert_eq!(header.split(',').count(), 27);
    for col in ["Audio_Song", "Lyric_Song", "Quadrant", "Artist", "Title"] {
        assert!(header.split(',').any(|c| c == col), "{col}");
    }

    // Values off the centre, quadrant consistent; lengths scaled from MERGE's spread.
    let mut rms_a = Vec::new();
    let mut lyr_v = Vec::new();
    for (s, song) in ds.songs.iter().zip(&songs) {
        assert_eq!(quadrant_of(s.valence, s.arousal), s.quadrant);
        assert!((s.valence - 0.5).abs() >= 0.09 && (s.arousal - 0.5).abs() >= 0.09, "{s:?}");
        let bytes = std::fs::read(s.audio.as_ref().unwrap()).unwrap();
        let (sr, x) = wav::decode_pcm16(&bytes, Path::new("x.wav")).unwrap();
        assert_eq!(sr, 22050);
        assert!((x.len() as f64 / 22050.0 - song.seconds).abs() < 1e-3);
        assert!(song.seconds <= 3.0 && song.seconds >= 0.4);
        let rms = (x.iter().map(|v| (v * v) as f64).sum::<f64>() / x.len() as f64).sqrt();
        rms_a.push((20.0 * rms.log10(), s.arousal));
        let (text, _) = read_lyrics(s.lyrics.as_ref().unwrap()).unwrap();
        let pos = [
            "love",
            "smile",
            "happy",
            "joy",
            "shine",
            "warm",
            "hope",
            "sweet",
            "bright",
            "dream",
            "together",
            "laugh",
            "golden",
            "kiss",
            "beautiful",
            "heaven",
            "glad",
            "sunshine",
        ];
        let words: Vec<&str> = text.split_whitespace().collect();
        let p = words.iter().filter(|w| pos.contains(&w.to_lowercase().as_str())).count();
        lyr_v.push((p as f64 / words.len() as f64, s.valence));
    }
    // Loudness follows arousal, positive words follow valence: rank correlations.
    assert!(spearman(&rms_a) > 0.8, "loudness vs arousal {}", spearman(&rms_a));
    assert!(spearman(&lyr_v) > 0.6, "positive words vs valence {}", spearman(&lyr_v));
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

fn spearman(pairs: &[(f64, f64)]) -> f64 {
    let rank = |k: usize| {
        let mut idx: Vec<usize> = (0..pairs.len()).collect();
        idx.sort_by(|&i, &j| {
            let (x, y) = if k == 0 { (pairs[i].0, pairs[j].0) } else { (pairs[i].1, pairs[j].1) };
            x.total_cmp(&y)
        });
        let mut r = vec![0.0; pairs.len()];
        for (pos, &i) in idx.iter().enumerate() {
            r[i] = pos as f64;
        }
        r
    };
    let (rx, ry) = (rank(0), rank(1));
    let n = pairs.len() as f64;
    let d2: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - b) * (a - b)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// The signal path must be there for the end-to-end tests: fail loudly, never pass silently.
fn require_signal_path(wav: &Path) {
    if let Err(e) = moodgrad::audio::mel_db_from_file(wav, &Default::default()) {
        panic!(
            "the audio signal path cannot turn a synthetic WAV into a spectrogram ({e}): \
             src/audio's mel_db_from_file is still the placeholder or broken, so preprocess cannot be tested end to end"
        );
    }
}

fn run_pre(data: &Path, out: &Path, legacy: bool, format: CacheFormat) -> moodgrad::data::preprocess::Outcome {
    moodgrad::data::preprocess::preprocess(&moodgrad::data::preprocess::PreprocessOptions {
        data,
        out: Some(out),
        jobs: Some(2),
        legacy,
        format,
        tokenizer: None,
        max_len: 512,
    })
    .unwrap()
}

#[test]
fn synth_then_preprocess_end_to_end_resume_and_report() {
    let data = tmp("e2e");
    let songs = small_synth(&data, 6, 3, 2.5);
    let wav_of = |s: &synth::SynthSong| data.join(format!("audio/{}/{}.wav", s.quadrant, s.audio_id));
    require_signal_path(&wav_of(&songs[0]));
    let out = data.join("cache");

    let o = run_pre(&data, &out, false, CacheFormat::Npy);
    assert_eq!((o.new, o.unchanged, o.skipped.len()), (6, 0, 0), "{:#?}", o.skipped);
    let master = std::fs::read_to_string(out.join(cache::MASTER_LIST)).unwrap();
    let lines: Vec<&str> = master.lines().collect();
    assert_eq!(lines[0], "song_id,spectrogram_path,lyrics_path,valence,arousal,quadrant");
    assert_eq!(lines.len(), 7);
    for (line, s) in lines[1..].iter().zip(&songs) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], s.audio_id);
        let (shape, x) = npy::read_f32(Path::new(f[1])).unwrap();
        assert_eq!(shape, [128, 1292]);
        // Short clips are padded with -80 dB at the end (fixed pipeline).
        assert_eq!(x[1291], -80.0);
        assert!(f[2].ends_with(&format!("lyrics/{}/{}.txt", s.quadrant, s.lyric_id)) && Path::new(f[2]).is_file());
        assert_eq!(
            (f[3].parse::<f64>().unwrap(), f[4].parse::<f64>().unwrap(), f[5]),
            (s.valence, s.arousal, s.quadrant)
        );
    }
    let first_npy = out.join(format!("{}.npy", songs[0].audio_id));
    let stamp = std::fs::metadata(&first_npy).unwrap().modified().unwrap();

    // Second run: nothing redone, the files untouched.
    let o = run_pre(&data, &out, false, CacheFormat::Npy);
    assert_eq!((o.new, o.unchanged), (0, 6));
    assert_eq!(std::fs::metadata(&first_npy).unwrap().modified().unwrap(), stamp);

    // Touching one source redoes just that one.
    let f = std::fs::File::options().append(true).open(wav_of(&songs[2])).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    drop(f);
    let o = run_pre(&data, &out, false, CacheFormat::Npy);
    assert_eq!((o.new, o.unchanged), (1, 5));

    // An interrupted run: a torn manifest line and a leftover temporary file.
    let mut m = std::fs::read(out.join(cache::MANIFEST)).unwrap();
    m.extend_from_slice(b"{\"song_id\":\"A00");
    std::fs::write(out.join(cache::MANIFEST), m).unwrap();
    let stale = out.join(".A001.npy.tmp-4000000000-3");
    std::fs::write(&stale, b"partial").unwrap();
    let o = run_pre(&data, &out, false, CacheFormat::Npy);
    assert_eq!((o.new, o.unchanged), (0, 6));
    assert!(o.warnings.iter().any(|w| w.contains("torn line")), "{:?}", o.warnings);
    assert!(!stale.exists(), "stale temporary file left behind");
    let manifest = std::fs::read_to_string(out.join(cache::MANIFEST)).unwrap();
    assert_eq!(manifest.lines().count(), 6, "the manifest is compacted to one line per clip");
    assert!(manifest.contains("\"centre_crop\":true") && manifest.contains("\"duration_s\""));

    // Other parameters invalidate everything, once.
    assert_eq!(run_pre(&data, &out, true, CacheFormat::Npy).new, 6);
    assert_eq!(run_pre(&data, &out, true, CacheFormat::Npy).new, 0);
    let (_, x) = npy::read_f32(&first_npy).unwrap();
    assert_eq!(x[1291], 0.0, "legacy pads with 0");
    assert_eq!(run_pre(&data, &out, false, CacheFormat::Npy).new, 6);

    // safetensors shards keyed by Audio_Song.
    let st = data.join("cache-st");
    assert_eq!(run_pre(&data, &st, false, CacheFormat::Safetensors).new, 6);
    assert_eq!(run_pre(&data, &st, false, CacheFormat::Safetensors).new, 0);
    let shard = moodgrad::io::read(&st.join("spectrograms-00000.safetensors")).unwrap();
    let keys: Vec<&String> = shard.tensors.keys().collect();
    assert_eq!(keys, songs.iter().map(|s| &s.audio_id).collect::<Vec<_>>());
    assert_eq!(shard.tensors[&songs[0].audio_id].shape, [128, 1292]);

    // numpy reads the cache.
    if let Some(py) = numpy_python() {
        let script = format!(
            "import numpy as np, csv\nrows = list(csv.DictReader(open('{}')))\nassert len(rows) == 6\n\
             for r in rows:\n    a = np.load(r['spectrogram_path'])\n    assert a.shape == (128, 1292) and a.dtype == np.float32\n",
            out.join(cache::MASTER_LIST).display()
        );
        let o = Command::new(py).args(["-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    // The skip report: a missing lyric, random bytes, a zero-length file, a folder named like a song.
    std::fs::remove_file(data.join(format!("lyrics/{}/{}.txt", songs[0].quadrant, songs[0].lyric_id))).unwrap();
    std::fs::write(wav_of(&songs[1]), b"\x00\x01 this is not audio at all").unwrap();
    std::fs::write(wav_of(&songs[2]), b"").unwrap();
    std::fs::remove_file(wav_of(&songs[3])).unwrap();
    std::fs::create_dir(wav_of(&songs[3])).unwrap();
    let out_s = out.to_string_lossy().into_owned();
    let (ok, text) = moodgrad(&["preprocess", "--data", data.to_str().unwrap(), "--out", &out_s, "--jobs", "2"]);
    assert!(ok, "{text}");
    assert!(text.contains("2 processed (0 new, 2 unchanged); 4 skipped"), "{text}");
    assert!(text.contains("missing lyric") && text.contains(&songs[0].audio_id), "{text}");
    assert!(text.contains("undecodable audio"), "{text}");
    let skipped = std::fs::read_to_string(out.join(cache::SKIPPED)).unwrap();
    assert!(skipped.starts_with("song_id,reason,file,line,detail,fix\n"), "{skipped}");
    assert_eq!(skipped.lines().count(), 5, "{skipped}");
    let master = std::fs::read_to_string(out.join(cache::MASTER_LIST)).unwrap();
    assert_eq!(master.lines().count(), 3, "{master}");

    // Nothing processable: non-zero exit with a clear message.
    for s in &songs[4..] {
        std::fs::write(wav_of(s), b"garbage").unwrap();
    }
    let (ok, text) = moodgrad(&["preprocess", "--data", data.to_str().unwrap(), "--out", &out_s]);
    assert!(!ok && text.contains("nothing could be processed"), "{text}");
    let (ok, text) = moodgrad(&["preprocess", "--data", out.to_str().unwrap()]);
    assert!(!ok && text.contains("merge_bimodal_complete_metadata.csv"), "{text}");
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn synth_command_line() {
    let dir = tmp("synth-cli");
    let d = dir.join("set");
    let (ok, text) =
        moodgrad(&["synth", "--out", d.to_str().unwrap(), "--songs", "4", "--seed", "2", "--max-seconds", "1.5"]);
    assert!(ok && text.contains("synth: 4 songs"), "{text}");
    assert!(d.join("merge_bimodal_complete_av_values.csv").is_file());
    let (ok, text) = moodgrad(&["synth", "--out", d.to_str().unwrap(), "--songs", "0"]);
    assert!(!ok && text.contains("--songs"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
