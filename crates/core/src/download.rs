//! Downloads of model files (SAM checkpoints, the sentence-embedding model) into mica's cache
//! directory, on request only: streamed to a temporary file beside the destination, checked
//! against the announced size and a sha256 fixed in the code, then renamed into place, so a file
//! in the cache is either absent or complete and verified.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The cache directory: `$XDG_CACHE_HOME/mica`, else `$HOME/.cache/mica`.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

pub(crate) fn cache_dir_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match xdg.filter(|v| !v.is_empty()) {
        Some(x) => Some(PathBuf::from(x).join("mica")),
        None => home
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".cache").join("mica")),
    }
}

/// What went wrong in a download. Every variant names the URL or the file.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The connection or the transfer failed (DNS, TLS, timeout, connection closed early).
    #[error("download of {url} failed: {reason}")]
    Transfer { url: String, reason: String },
    /// The server answered with a status other than 2xx.
    #[error("download of {url} failed: HTTP status {status}")]
    Status { url: String, status: u16 },
    /// The server announced one size and sent another.
    #[error("download of {url} is incomplete: {actual} bytes received, {expected} announced")]
    Size {
        url: String,
        expected: u64,
        actual: u64,
    },
    /// The downloaded bytes do not have the expected sha256; nothing was kept.
    #[error("download of {url} has sha256 {actual}, expected {expected}; the file was deleted (wrong URL, corrupt mirror or interrupted transfer)")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    /// The expected checksum is not a sha256 in hex.
    #[error("expected sha256 {0:?} is not 64 hex digits")]
    BadExpected(String),
    /// Neither `XDG_CACHE_HOME` nor `HOME` is set, so there is no cache directory.
    #[error(
        "no cache directory to download into: set XDG_CACHE_HOME or HOME, or give the file's path"
    )]
    NoCacheDir,
    /// Writing or renaming a local file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes a temporary file when dropped, unless it has been renamed into place.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// True for URLs to this machine (no proxy is used for them).
fn is_loopback_url(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_ascii_lowercase))
        .is_some_and(|h| {
            h == "localhost"
                || h == "[::1]"
                || h == "::1"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Downloads `url` to `dest`, checking the sha256 against `expected_sha256` (hex).
///
/// The body is streamed to a temporary file in the directory of `dest` (created when missing),
/// hashed on the way, checked against the announced size and the checksum, then renamed onto
/// `dest` (atomic on one file system), so `dest` is either absent, untouched, or complete and
/// verified. On any failure the temporary file is deleted. Returns the number of bytes written.
///
/// # Errors
/// [`DownloadError::Status`] for a non-2xx answer, [`DownloadError::Transfer`] when the
/// connection fails, [`DownloadError::Size`] for a short body, [`DownloadError::Checksum`] for a
/// wrong sha256 (both hashes and the URL in the message), [`DownloadError::Io`] for local files.
pub fn download(url: &str, dest: &Path, expected_sha256: &str) -> Result<u64, DownloadError> {
    use std::io::Write;
    use std::time::Duration;

    let expected = expected_sha256.to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DownloadError::BadExpected(expected_sha256.to_string()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    let tmp = dir.join(format!(".{name}.part-{}", std::process::id()));

    let transfer = |e: ureq::Error| DownloadError::Transfer {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("mica/", env!("CARGO_PKG_VERSION")));
    if is_loopback_url(url) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    let mut response = agent.get(url).call().map_err(transfer)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status,
        });
    }
    let announced = response.body().content_length();

    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    let mut out = std::io::BufWriter::new(file);
    let mut reader = response.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut written: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DownloadError::Transfer {
                    url: url.to_string(),
                    reason: format!("after {written} bytes: {e}"),
                })
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&tmp))?;
        written += n as u64;
    }
    let file = out.into_inner().map_err(|e| DownloadError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    if let Some(len) = announced {
        if len != written {
            return Err(DownloadError::Size {
                url: url.to_string(),
                expected: len,
                actual: written,
            });
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(DownloadError::Checksum {
            url: url.to_string(),
            expected,
            actual,
        });
    }
    std::fs::rename(&tmp, dest).map_err(io(dest))?;
    guard.armed = false;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_prefers_xdg() {
        assert_eq!(
            cache_dir_from(Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/mica"))
        );
        assert_eq!(
            cache_dir_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/mica"))
        );
        assert_eq!(cache_dir_from(None, None), None);
    }
}
