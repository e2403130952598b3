//! Hub names downloaded as `from_pretrained` does, through the binary: a server on 127.0.0.1 stands
//! in for the hub (`HF_ENDPOINT`), answering as huggingface.co does (`HEAD` with `X-Repo-Commit`,
//! `ETag`; large files redirected to a CDN path with `X-Linked-Etag` = their SHA-256 and
//! `X-Linked-Size`; `X-Error-Code` on errors). It serves the tiny fixture models as revisions of
//! `tiny-org/tiny-bert`: `main` is models/bert, the tag `v1` (also `refs/pr/1`) models/distilbert.
//! `moodgrad encode` runs with a fresh `HF_HOME`; its vectors must equal those of the fixture
//! folder given directly. The real network is never used: every proxy and token variable is
//! removed, and the endpoint is the local server.

mod text_common;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use text_common::{fixtures, read_st, tmp_dir};

const MAIN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const V1: &str = "0fedcba9876543210fedcba9876543210fedcba9";
const REPO: &str = "tiny-org/tiny-bert";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the CDN does with `.safetensors` bodies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Weights {
    Good,
    /// Announces the full length, sends half, closes.
    Truncated,
    /// The full length with one byte changed.
    Corrupted,
    /// No Content-Length: half, then close (only the size the HEAD announced can tell).
    CutUnannounced,
}

struct Revision {
    names: Vec<String>,
    commit: String,
    files: BTreeMap<String, Vec<u8>>,
}

struct Repo {
    id: String,
    /// The token a gated repository wants.
    token: Option<String>,
    revisions: Vec<Revision>,
}

fn folder_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn revision(names: &[&str], commit: &str, files: BTreeMap<String, Vec<u8>>) -> Revision {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.push(commit.to_string());
    Revision { names, commit: commit.to_string(), files }
}

fn repos() -> Vec<Repo> {
    let models = fixtures().join("models");
    let mut pt_only = folder_files(&models.join("bert"));
    pt_only.remove("model.safetensors");
    pt_only.insert("pytorch_model.bin".into(), b"PK\x03\x04 a pickle".to_vec());
    vec![
        Repo {
            id: REPO.into(),
            token: None,
            revisions: vec![
                revision(&["main"], MAIN, folder_files(&models.join("bert"))),
                revision(&["v1", "refs/pr/1"], V1, folder_files(&models.join("distilbert"))),
            ],
        },
        Repo {
            id: "tiny-org/gated-bert".into(),
            token: Some("sesame".into()),
            revisions: vec![revision(&["main"], MAIN, folder_files(&models.join("bert")))],
        },
        Repo { id: "tiny-org/pt-only".into(), token: None, revisions: vec![revision(&["main"], MAIN, pt_only)] },
    ]
}

/// The stand-in hub: one thread, one request per connection, every request logged.
struct Hub {
    endpoint: String,
    log: Arc<Mutex<Vec<String>>>,
    weights: Arc<Mutex<Weights>>,
    stop: Arc<AtomicBool>,
}

impl Hub {
    fn start() -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let hub = Hub {
            endpoint: endpoint.clone(),
            log: Arc::default(),
            weights: Arc::new(Mutex::new(Weights::Good)),
            stop: Arc::default(),
        };
        let (log, weights, stop) = (hub.log.clone(), hub.weights.clone(), hub.stop.clone());
        let repos = repos();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let mode = *weights.lock().unwrap();
                    serve(conn, &repos, &endpoint, mode, &log);
                }
            }
        });
        hub
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn set_weights(&self, w: Weights) {
        *self.weights.lock().unwrap() = w;
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// `refs%2Fpr%2F1` → `refs/pr/1` (the client encodes a revision as one path segment).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request: read its head, log it, answer, close.
fn serve(mut conn: TcpStream, repos: &[Repo], endpoint: &str, mode: Weights, log: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    log.lock()
        .unwrap()
        .push(format!("{method} {path}{}", auth.as_ref().map(|a| format!(" [{a}]")).unwrap_or_default()));
    let (status, headers, body) = route(&method, &path, auth.as_deref(), repos, endpoint, mode);
    let body = if method == "HEAD" { Vec::new() } else { body };
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in &headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "Connection: close\r\n\r\n";
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(&body);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// Status, every header (Content-Length included: HEAD announces the GET's), body.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn error(status: u16, code: &str) -> Response {
    let headers = [("X-Error-Code", code.to_string()), ("X-Error-Message", format!("{code} (test hub)"))];
    (status, headers.into_iter().map(|(k, v)| (k.into(), v)).chain([length(0)]).collect(), vec![])
}

fn length(n: usize) -> (String, String) {
    ("Content-Length".into(), n.to_string())
}

fn route(method: &str, path: &str, auth: Option<&str>, repos: &[Repo], endpoint: &str, mode: Weights) -> Response {
    if method != "HEAD" && method != "GET" {
        return (405, vec![length(0)], vec![]);
    }
    // The CDN: large files by SHA-256, GET only.
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let Some(bytes) =
            repos.iter().flat_map(|r| &r.revisions).flat_map(|v| v.files.values()).find(|b| sha256(b) == sha)
        else {
            return (404, vec![length(0)], vec![]);
        };
        let mut body = bytes.clone();
        let len = body.len();
        match mode {
            Weights::Good => {}
            Weights::Truncated | Weights::CutUnannounced => body.truncate(len / 2),
            Weights::Corrupted => body[len - 1] ^= 0xff,
        }
        let headers = if mode == Weights::CutUnannounced { vec![] } else { vec![length(len)] };
        return (200, headers, body);
    }
    // /{org}/{name}/resolve/{revision}/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", rev, file] = parts.as_slice() else {
        return (400, vec![length(0)], vec![]);
    };
    let (id, rev) = (format!("{org}/{name}"), percent_decode(rev));
    let Some(repo) = repos.iter().find(|r| r.id == id) else {
        return error(404, "RepoNotFound");
    };
    if let Some(t) = &repo.token
        && auth != Some(&format!("Bearer {t}"))
    {
        return error(401, "GatedRepo");
    }
    let Some(revision) = repo.revisions.iter().find(|v| v.names.contains(&rev)) else {
        return error(404, "RevisionNotFound");
    };
    let commit = ("X-Repo-Commit".to_string(), revision.commit.clone());
    let Some(bytes) = revision.files.get(*file) else {
        let (s, mut h, b) = error(404, "EntryNotFound");
        h.push(commit);
        return (s, h, b);
    };
    let sha = sha256(bytes);
    if file.ends_with(".safetensors") || file.ends_with(".bin") {
        let headers = vec![
            commit,
            ("Location".into(), format!("{endpoint}/cdn/{sha}")),
            ("X-Linked-Etag".into(), format!("\"{sha}\"")),
            ("X-Linked-Size".into(), bytes.len().to_string()),
            ("ETag".into(), format!("\"{}\"", &sha[..40])),
            length(0),
        ];
        return (302, headers, vec![]);
    }
    let headers = vec![commit, ("ETag".into(), format!("\"{}\"", &sha[..40])), length(bytes.len())];
    (200, headers, bytes.clone())
}

/// A test's folders: HF_HOME, lyrics, outputs.
struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(tag: &str) -> Case {
        let dir = tmp_dir(&format!("hub-{tag}"));
        for (name, text) in
            [("a", "dream me are fire rain again river tender falling."), ("b", "baby burning heart dance.")]
        {
            std::fs::create_dir_all(dir.join("lyrics")).unwrap();
            std::fs::write(dir.join("lyrics").join(format!("{name}.txt")), text).unwrap();
        }
        Case { dir }
    }

    fn hf_home(&self) -> PathBuf {
        self.dir.join("hf-home")
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hf_home().join("hub").join(format!("models--{}", repo.replace('/', "--")))
    }

    /// `moodgrad encode --model model` against `endpoint`: (success, its vectors' file, stderr).
    fn encode(&self, endpoint: &str, model: &str, env: &[(&str, &str)]) -> (bool, PathBuf, String) {
        let out = self.dir.join(format!("out-{}.safetensors", sha256(format!("{model}{env:?}").as_bytes())));
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new(env!("CARGO_BIN_EXE_moodgrad"));
        c.args(["encode", "--model", model, "--lyrics"])
            .arg(self.dir.join("lyrics"))
            .args(["--max-len", "24", "--device", "cpu", "--out"])
            .arg(&out);
        for k in [
            "HF_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "XDG_CACHE_HOME",
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(k);
        }
        c.env("HOME", self.dir.join("home")).env("HF_HOME", self.hf_home()).env("HF_ENDPOINT", endpoint);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (o.status.success(), out, stderr)
    }
}

impl Drop for Case {
    /// Kept after a failure, to look at.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The progress lines: one per file received.
fn downloads(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| l.starts_with("downloading ")).map(str::to_string).collect()
}

/// The vectors of the fixture folder itself, with no hub involved.
fn reference(case: &Case, family: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = fixtures().join("models").join(family);
    let (ok, out, err) = case.encode("http://127.0.0.1:9", dir.to_str().unwrap(), &[("HF_HUB_OFFLINE", "1")]);
    assert!(ok, "{err}");
    vectors(&out)
}

fn vectors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    read_st(path).0.into_iter().map(|(k, t)| (k, t.bytes)).collect()
}

/// Every file under `dir`, relative, sorted (for "nothing left behind" checks).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_hub_name_is_downloaded_into_the_hub_cache_then_used_offline() {
    let (hub, case) = (Hub::start(), Case::new("download"));
    let want = reference(&case, "bert");
    let (ok, out, err) = case.encode(&hub.endpoint, REPO, &[]);
    assert!(ok, "{err}");
    assert_eq!(vectors(&out), want, "the downloaded model must encode as the fixture folder does");
    // One line per file received; vocab.txt is not fetched (tokenizer.json is there).
    let lines = downloads(&err);
    assert_eq!(lines.len(), 4, "{err}");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(lines.iter().any(|l| l.contains(&format!(": {f} ("))), "no progress line for {f}: {err}");
    }
    // The standard layout: refs/main → the commit, snapshot symlinks into blobs/ named by ETag.
    let repo = case.repo_dir(REPO);
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), MAIN);
    let snap = repo.join("snapshots").join(MAIN);
    for (f, bytes) in folder_files(&fixtures().join("models/bert")) {
        if f == "vocab.txt" {
            assert!(!snap.join(&f).exists());
            continue;
        }
        let target = std::fs::read_link(snap.join(&f)).unwrap();
        let etag = if f.ends_with(".safetensors") { sha256(&bytes) } else { sha256(&bytes)[..40].to_string() };
        assert_eq!(target, Path::new("../../blobs").join(&etag), "{f}");
        assert_eq!(std::fs::read(snap.join(&f)).unwrap(), bytes, "{f}");
    }
    assert!(tree(&repo.join("blobs")).iter().all(|f| !f.contains("incomplete")));
    // The first request asks for main; the rest are pinned to the commit it named.
    let requests = hub.requests();
    assert_eq!(requests[0], format!("HEAD /{REPO}/resolve/main/config.json"));
    let heads: Vec<&String> = requests.iter().filter(|r| r.starts_with("HEAD")).skip(1).collect();
    assert!(heads.iter().all(|r| r.contains(&format!("/resolve/{MAIN}/"))), "{requests:#?}");
    assert!(requests.iter().all(|r| !r.contains('[')), "no token was set, none may be sent: {requests:#?}");

    // Cached: no request at all, online or offline.
    let n = requests.len();
    for env in [&[][..], &[("HF_HUB_OFFLINE", "1")][..]] {
        let (ok, out, err) = case.encode(&hub.endpoint, REPO, env);
        assert!(ok, "{err}");
        assert!(downloads(&err).is_empty(), "{err}");
        assert_eq!(vectors(&out), want);
    }
    assert_eq!(hub.requests().len(), n, "a cached model must not reach the hub: {:#?}", &hub.requests()[n..]);
}

#[test]
fn a_revision_after_the_at_sign_pins_what_is_fetched() {
    let (hub, case) = (Hub::start(), Case::new("revision"));
    let (bert, distilbert) = (reference(&case, "bert"), reference(&case, "distilbert"));
    let repo = case.repo_dir(REPO);
    // A tag: its commit's snapshot, refs/v1; main is not touched.
    let (ok, out, err) = case.encode(&hub.endpoint, &format!("{REPO}@v1"), &[]);
    assert!(ok, "{err}");
    assert_eq!(vectors(&out), distilbert);
    assert_eq!(std::fs::read_to_string(repo.join("refs/v1")).unwrap(), V1);
    assert!(repo.join("snapshots").join(V1).join("model.safetensors").is_file());
    assert!(!repo.join("refs/main").exists());
    assert!(hub.requests().iter().any(|r| r == &format!("HEAD /{REPO}/resolve/v1/config.json")));
    // A branch holding `/` goes percent-encoded and is kept as refs/refs/pr/1; same commit, so
    // nothing is received again.
    let (ok, out, err) = case.encode(&hub.endpoint, &format!("{REPO}@refs/pr/1"), &[]);
    assert!(ok, "{err}");
    assert_eq!(vectors(&out), distilbert);
    assert!(downloads(&err).is_empty(), "{err}");
    assert!(hub.requests().iter().any(|r| r.contains("/resolve/refs%2Fpr%2F1/config.json")), "{:#?}", hub.requests());
    assert_eq!(std::fs::read_to_string(repo.join("refs/refs/pr/1")).unwrap(), V1);
    // A commit: that snapshot, and no refs file for it (as huggingface_hub).
    let (ok, out, err) = case.encode(&hub.endpoint, &format!("{REPO}@{MAIN}"), &[]);
    assert!(ok, "{err}");
    assert_eq!(vectors(&out), bert);
    assert!(repo.join("snapshots").join(MAIN).join("model.safetensors").is_file());
    assert!(!repo.join("refs").join(MAIN).exists() && !repo.join("refs/main").exists());
    // All three now cached: no request; a revision the hub lacks is named.
    let n = hub.requests().len();
    for spec in [format!("{REPO}@v1"), format!("{REPO}@{MAIN}"), format!("{REPO}@refs/pr/1")] {
        let (ok, _, err) = case.encode(&hub.endpoint, &spec, &[]);
        assert!(ok, "{spec}: {err}");
    }
    assert_eq!(hub.requests().len(), n, "{:#?}", &hub.requests()[n..]);
    let (ok, _, err) = case.encode(&hub.endpoint, &format!("{REPO}@v9"), &[]);
    assert!(!ok && err.contains("has no revision `v9`") && err.contains("RevisionNotFound"), "{err}");
    assert!(err.contains("huggingface-cli download tiny-org/tiny-bert --revision v9"), "{err}");
}

#[test]
fn offline_with_an_empty_cache_says_where_it_looked_and_asks_nothing() {
    let (hub, case) = (Hub::start(), Case::new("offline"));
    for var in ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"] {
        let (ok, _, err) = case.encode(&hub.endpoint, REPO, &[(var, "1")]);
        assert!(!ok);
        for needle in [
            "lyrics model `tiny-org/tiny-bert` not found. Looked in:",
            &case.repo_dir(REPO).display().to_string(),
            &format!("{var}=1 is set"),
            "huggingface-cli download tiny-org/tiny-bert",
            "--lyrics-model builtin",
        ] {
            assert!(err.contains(needle), "missing `{needle}` in: {err}");
        }
    }
    assert_eq!(hub.requests(), Vec::<String>::new());
    assert!(!case.hf_home().join("hub").exists(), "offline must not even create the cache");
}

#[test]
fn a_truncated_or_corrupted_download_is_never_used() {
    let (hub, case) = (Hub::start(), Case::new("truncated"));
    let want = reference(&case, "bert");
    let repo = case.repo_dir(REPO);
    let weights_sha = sha256(&std::fs::read(fixtures().join("models/bert/model.safetensors")).unwrap());
    for (mode, needle) in [
        (Weights::Truncated, "the transfer broke"),
        (Weights::CutUnannounced, "the connection closed after 54804 of 109608 bytes"),
        (Weights::Corrupted, "SHA-256"),
    ] {
        hub.set_weights(mode);
        let (ok, _, err) = case.encode(&hub.endpoint, REPO, &[]);
        assert!(!ok, "{mode:?} accepted");
        for n in [needle, "model.safetensors", "run again", "Looked in:"] {
            assert!(err.contains(n), "{mode:?}: missing `{n}` in: {err}");
        }
        let files = tree(&repo);
        assert!(
            files
                .iter()
                .all(|f| !f.ends_with("model.safetensors") && !f.contains(&weights_sha) && !f.contains("incomplete")),
            "{mode:?} left the weights behind: {files:#?}"
        );
        assert!(!repo.join("refs/main").exists(), "refs/main is written once everything is in place");
        // What is left is not usable: an offline run says the snapshot is incomplete.
        let (ok, _, err) = case.encode(&hub.endpoint, REPO, &[("HF_HUB_OFFLINE", "1")]);
        assert!(!ok && err.contains("incomplete: no complete model.safetensors"), "{err}");
    }
    hub.set_weights(Weights::Good);
    let (ok, out, err) = case.encode(&hub.endpoint, REPO, &[]);
    assert!(ok, "{err}");
    assert_eq!(vectors(&out), want);
    // config.json, received before the weights, is reused; the weights come again.
    let lines = downloads(&err);
    assert!(lines.iter().any(|l| l.contains(": model.safetensors (")), "{err}");
    assert!(!lines.iter().any(|l| l.contains(": config.json (")), "{err}");
}

#[test]
fn hub_errors_are_clear() {
    let (hub, case) = (Hub::start(), Case::new("errors"));
    // No such repository.
    let (ok, _, err) = case.encode(&hub.endpoint, "tiny-org/no-such-model", &[]);
    assert!(!ok);
    for needle in [
        "lyrics model `tiny-org/no-such-model` not found. Looked in:",
        &case.repo_dir("tiny-org/no-such-model").display().to_string(),
        "there is no model repository `tiny-org/no-such-model`",
        "HTTP 404 RepoNotFound",
        "--lyrics-model builtin",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in: {err}");
    }
    // Gated: HF_TOKEN is named, then sent, and a wrong one is said to be refused.
    let (ok, _, err) = case.encode(&hub.endpoint, "tiny-org/gated-bert", &[]);
    assert!(!ok && err.contains("gated or private") && err.contains("set HF_TOKEN"), "{err}");
    let (ok, _, err) = case.encode(&hub.endpoint, "tiny-org/gated-bert", &[("HF_TOKEN", "wrong")]);
    assert!(!ok && err.contains("HF_TOKEN was refused"), "{err}");
    let (ok, _, err) = case.encode(&hub.endpoint, "tiny-org/gated-bert", &[("HF_TOKEN", "sesame")]);
    assert!(ok, "{err}");
    assert!(hub.requests().iter().any(|r| r.ends_with("[Bearer sesame]")));
    // PyTorch-only weights: refused with the conversion, nothing downloaded past config.json.
    let (ok, _, err) = case.encode(&hub.endpoint, "tiny-org/pt-only", &[]);
    assert!(!ok && err.contains("only PyTorch pickle weights (pytorch_model.bin)"), "{err}");
    assert!(err.contains("save_pretrained('DIR', safe_serialization=True)"), "{err}");
    assert!(!hub.requests().iter().any(|r| r.starts_with("GET") && r.contains("pytorch_model.bin")));
    // No hub at all (a closed port): the network reason, the offline switch, the places looked.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ok, _, err) = case.encode(&format!("http://{closed}"), REPO, &[]);
    assert!(!ok);
    for needle in ["not found. Looked in:", "failed: no answer", "HF_HUB_OFFLINE=1", "huggingface-cli download"] {
        assert!(err.contains(needle), "missing `{needle}` in: {err}");
    }
}
