//! Talking to the Hugging Face hub the way `huggingface_hub` (Python) does, for one file at a time.
//!
//! `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` answers, without the file, with the commit the
//! revision points at (`X-Repo-Commit`), the file's id (`X-Linked-Etag` for large files, whose value
//! is the SHA-256 of the content, else `ETag`) and size (`X-Linked-Size`, else `Content-Length`).
//! Relative redirects (a renamed repository) are followed; an absolute one (large files live on a
//! CDN) is where the `GET` goes. Errors carry the hub's `X-Error-Code` (`RepoNotFound`,
//! `RevisionNotFound`, `EntryNotFound`, `GatedRepo`) so that callers can tell a missing optional file
//! from a missing repository.
//!
//! Why not the `hf-hub` crate (0.5, the last with a blocking API; 1.0 is tokio + reqwest): its
//! download renames the received bytes into `blobs/` and links them into `snapshots/` without
//! comparing their length with the size it was told or their SHA-256 with the ETag, and it resumes
//! a leftover `.part` file without checking that the server honoured the range; a truncated or
//! corrupted download could then be used. It also writes `refs/<commit>` for commit revisions,
//! ignores `HF_HUB_CACHE` and `HF_TOKEN`, and panics on some malformed responses.

use std::time::Duration;
use ureq::Agent;

/// Where and how to reach the hub, from the environment.
#[derive(Clone, Debug)]
pub struct Hub {
    /// `https://huggingface.co`, or `HF_ENDPOINT` (a mirror, or a test server), without a final `/`.
    pub endpoint: String,
    token: Option<String>,
    /// The variable that forbids network access (`HF_HUB_OFFLINE=1`), if one does.
    pub offline: Option<String>,
    /// Kept for the whole download so that connections are reused: `HEAD`s follow no redirect
    /// (relative ones are followed by hand), `GET`s follow them.
    head_agent: Agent,
    get_agent: Agent,
}

/// What a `HEAD` tells about one file of a repository at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub commit: String,
    pub etag: String,
    pub size: u64,
    /// Where the `GET` goes: the resolve URL, or the CDN location it redirects to.
    pub url: String,
}

/// Why a request to the hub failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubError {
    /// No answer at all (no network, DNS, refused connection, timeout).
    Unreachable(String),
    /// An HTTP error status, with the hub's `X-Error-Code` and `X-Error-Message` when it sent them.
    Status { status: u16, code: Option<String>, message: Option<String> },
    /// An answer that is not what a hub sends (headers missing or unusable).
    Protocol(String),
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubError::Unreachable(e) => write!(f, "no answer ({e})"),
            HubError::Status { status, code, message } => {
                write!(f, "HTTP {status}")?;
                if let Some(c) = code {
                    write!(f, " {c}")?;
                }
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            HubError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl HubError {
    pub fn code(&self) -> Option<&str> {
        match self {
            HubError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl Hub {
    /// `HF_ENDPOINT`, `HF_TOKEN` (else the token file `huggingface-cli login` writes),
    /// `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`, as huggingface_hub reads them.
    pub fn from_env() -> Hub {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()).trim_end_matches('/').to_string();
        let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
            .into_iter()
            .find_map(|k| var(k).filter(|v| is_true(v)).map(|v| format!("{k}={v}")));
        let token = var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")).or_else(token_file);
        Hub::new(endpoint, token, offline)
    }

    /// A hub that is never asked (for lookups that must stay on this machine).
    pub fn offline(why: &str) -> Hub {
        Hub::new(DEFAULT_ENDPOINT.into(), None, Some(why.into()))
    }

    fn new(endpoint: String, token: Option<String>, offline: Option<String>) -> Hub {
        Hub { endpoint, token, offline, head_agent: agent(0), get_agent: agent(10) }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`, percent-encoded (a branch may hold `/`).
    pub fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> String {
        let file: Vec<String> = file.split('/').map(percent_encode).collect();
        format!("{}/{repo}/resolve/{}/{}", self.endpoint, percent_encode(revision), file.join("/"))
    }

    /// The metadata of `file` in `repo` at `revision` (one `HEAD`, plus relative redirects).
    pub fn head(&self, repo: &str, revision: &str, file: &str) -> Result<FileMeta, HubError> {
        let mut url = self.resolve_url(repo, revision, file);
        for _ in 0..10 {
            let mut req = self.head_agent.head(&url).header("Accept-Encoding", "identity");
            if let Some(auth) = self.auth_for(&url) {
                req = req.header("Authorization", auth);
            }
            let resp = req.call().map_err(unreachable)?;
            let status = resp.status().as_u16();
            let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
            if !(200..400).contains(&status) {
                return Err(HubError::Status {
                    status,
                    code: header("x-error-code"),
                    message: header("x-error-message"),
                });
            }
            let location = header("location");
            if (300..400).contains(&status)
                && let Some(loc) = location.as_deref().filter(|l| l.starts_with('/') && !l.starts_with("//"))
            {
                url = format!("{}{loc}", origin(&url));
                continue;
            }
            let commit = header("x-repo-commit").ok_or_else(|| {
                HubError::Protocol(format!(
                    "{url} answered HTTP {status} without an X-Repo-Commit header: {} is not a Hugging Face hub \
                     (check HF_ENDPOINT and any proxy)",
                    self.endpoint
                ))
            })?;
            let etag = header("x-linked-etag")
                .or_else(|| header("etag"))
                .map(|e| e.trim().trim_start_matches("W/").trim_matches('"').to_string())
                .ok_or_else(|| HubError::Protocol(format!("{url} sent no ETag")))?;
            let size = header("x-linked-size")
                .or_else(|| header("content-length"))
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    HubError::Protocol(format!("{url} sent no file size (X-Linked-Size / Content-Length)"))
                })?;
            let url = if (300..400).contains(&status) {
                location
                    .ok_or_else(|| HubError::Protocol(format!("{url} redirected (HTTP {status}) without a Location")))?
            } else {
                url
            };
            return Ok(FileMeta { commit, etag, size, url });
        }
        Err(HubError::Protocol(format!("{url}: more than 10 redirects")))
    }

    /// `GET url`, following redirects: the body and its announced length (`Content-Length`).
    pub fn get(&self, url: &str) -> Result<(Option<u64>, ureq::BodyReader<'static>), HubError> {
        let mut req = self.get_agent.get(url);
        if let Some(auth) = self.auth_for(url) {
            req = req.header("Authorization", auth);
        }
        let resp = req.call().map_err(unreachable)?;
        let status = resp.status().as_u16();
        let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        if status != 200 {
            return Err(HubError::Status { status, code: header("x-error-code"), message: header("x-error-message") });
        }
        let length = header("content-length").and_then(|s| s.trim().parse::<u64>().ok());
        Ok((length, resp.into_body().into_reader()))
    }

    /// The token goes to the hub's own host only, never to a CDN it redirects to.
    fn auth_for(&self, url: &str) -> Option<String> {
        let t = self.token.as_ref()?;
        (origin(url) == origin(&self.endpoint)).then(|| format!("Bearer {t}"))
    }
}

/// An agent that follows `redirects` redirects and hands every status back as a response (the
/// hub's error headers are needed). Timeouts as huggingface_hub's order of magnitude: a dead
/// connection fails instead of hanging, a slow download does not.
fn agent(redirects: u32) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(redirects)
        .max_redirects_will_error(true)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(format!("moodgrad/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn unreachable(e: ureq::Error) -> HubError {
    HubError::Unreachable(e.to_string())
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn is_true(v: &str) -> bool {
    ["1", "on", "yes", "true"].contains(&v.to_ascii_lowercase().as_str())
}

/// The token `huggingface-cli login` saved: `HF_TOKEN_PATH`, else `$HF_HOME/token`, else
/// `~/.cache/huggingface/token`.
fn token_file() -> Option<String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let path = var("HF_TOKEN_PATH").or_else(|| var("HF_HOME").map(|h| h.join("token"))).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(|x| x.join("huggingface"))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface")))
            .map(|h| h.join("token"))
    })?;
    std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Percent-encoding of everything but RFC 3986's unreserved characters (Python's
/// `quote(s, safe="")`).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let hub = Hub::new("http://127.0.0.1:9".into(), Some("t".into()), None);
        assert_eq!(
            hub.resolve_url("o/n", "refs/pr/1", "config.json"),
            "http://127.0.0.1:9/o/n/resolve/refs%2Fpr%2F1/config.json"
        );
        assert_eq!(origin("https://cdn.example/x/y?z"), "https://cdn.example");
        assert_eq!(hub.auth_for("http://127.0.0.1:9/o/n/resolve/main/a").as_deref(), Some("Bearer t"));
        assert_eq!(hub.auth_for("http://127.0.0.1:10/cdn/a"), None);
    }
}
