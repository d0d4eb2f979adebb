//! Which model, where its weights come from and how they are read.
//!
//! [`SamModel`] names the four models mica runs (MobileSAM, SAM ViT-B/L/H) with their official
//! checkpoints ([`SamModel::checkpoint`]: file name, URL, sha256, size).
//!
//! Resolution order (first hit wins): an explicit path (`--weights PATH`), the environment variable
//! [`WEIGHTS_ENV`], then the model's official file name in the cache directory
//! (`$XDG_CACHE_HOME/mica/` or `~/.cache/mica/`), which is verified against its sha256. Nothing is
//! ever read from the developers' `../shared` folder at run time. Which model a file holds is
//! read from its tensors when it is loaded ([`crate::Sam::load`]).
//!
//! An official checkpoint can be downloaded into the cache on request only ([`download`],
//! [`download_weights`]; `mica ... --download-weights`), never silently: it is streamed to a
//! temporary file next to its destination, checked against its size and sha256, then renamed into
//! place. [`WEIGHTS_URL_ENV`] overrides the URL (mirrors, tests).
//!
//! Two file formats are read: PyTorch checkpoints (zip, as published by MobileSAM and Meta) and
//! safetensors, told apart by their first bytes rather than by their names.

use crate::error::{Result, SamError};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The official download location of the MobileSAM checkpoint.
pub const MOBILE_SAM_URL: &str =
    "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt";
/// sha256 of the official MobileSAM checkpoint (`mobile_sam.pt`, 40.7 MB).
pub const MOBILE_SAM_SHA256: &str =
    "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f";
/// File name of the checkpoint in the cache directory.
pub const MOBILE_SAM_FILE: &str = "mobile_sam.pt";

/// A Segment Anything model: MobileSAM (TinyViT image encoder) or SAM with a ViT-B/L/H image
/// encoder; all share SAM's prompt encoder and mask decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamModel {
    /// MobileSAM (TinyViT-5M encoder), 40.7 MB: mica's default, fast on a CPU.
    MobileSam,
    /// SAM ViT-B, 375 MB.
    VitB,
    /// SAM ViT-L, 1.25 GB.
    VitL,
    /// SAM ViT-H, 2.56 GB: the model of the study.
    VitH,
}

/// An official checkpoint: where it is published and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialCheckpoint {
    /// File name (also its name in the cache directory).
    pub file: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
    pub size_bytes: u64,
}

impl SamModel {
    /// Every model.
    pub const ALL: [SamModel; 4] = [
        SamModel::MobileSam,
        SamModel::VitB,
        SamModel::VitL,
        SamModel::VitH,
    ];

    /// `mobile_sam`, `vit_b`, `vit_l` or `vit_h` (the upstream registry names, MobileSAM's
    /// `vit_t` spelled out).
    pub fn name(self) -> &'static str {
        match self {
            SamModel::MobileSam => "mobile_sam",
            SamModel::VitB => "vit_b",
            SamModel::VitL => "vit_l",
            SamModel::VitH => "vit_h",
        }
    }

    /// Parses [`SamModel::name`] (also `vit_t` and `mobilesam`, case-insensitive).
    ///
    /// # Errors
    /// [`SamError::Invalid`] listing the names.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "mobile_sam" | "mobilesam" | "vit_t" => Ok(SamModel::MobileSam),
            "vit_b" => Ok(SamModel::VitB),
            "vit_l" => Ok(SamModel::VitL),
            "vit_h" => Ok(SamModel::VitH),
            _ => Err(SamError::Invalid(format!(
                "unknown SAM model {name:?}; use mobile_sam, vit_b, vit_l or vit_h"
            ))),
        }
    }

    /// The official checkpoint (MobileSAM's GitHub repository; Meta's download server for SAM).
    pub fn checkpoint(self) -> OfficialCheckpoint {
        let (file, url, sha256, size_bytes) = match self {
            SamModel::MobileSam => (
                MOBILE_SAM_FILE,
                MOBILE_SAM_URL,
                MOBILE_SAM_SHA256,
                40_728_226,
            ),
            SamModel::VitB => (
                "sam_vit_b_01ec64.pth",
                "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                375_042_383,
            ),
            SamModel::VitL => (
                "sam_vit_l_0b3195.pth",
                "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
                "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                1_249_524_607,
            ),
            SamModel::VitH => (
                "sam_vit_h_4b8939.pth",
                "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                2_564_550_879,
            ),
        };
        OfficialCheckpoint {
            file,
            url,
            sha256,
            size_bytes,
        }
    }
}

impl std::fmt::Display for SamModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
/// Environment variable that names a weights file.
pub const WEIGHTS_ENV: &str = "MICA_SAM_WEIGHTS";

/// Environment variable that overrides the download URL of [`download_weights`].
pub const WEIGHTS_URL_ENV: &str = "MICA_SAM_WEIGHTS_URL";

/// Where a weights file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsOrigin {
    /// Given explicitly (`--weights`).
    Explicit,
    /// From the environment variable [`WEIGHTS_ENV`].
    Environment,
    /// From the cache directory, checksum verified.
    Cache,
}

/// A weights file and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedWeights {
    pub path: PathBuf,
    pub origin: WeightsOrigin,
}

pub use mica_core::download::{cache_dir, download, DownloadError};

/// The exact commands that fetch `model`'s official weights into `dir`.
pub fn how_to_get_weights(model: SamModel, dir: Option<&Path>) -> String {
    let dir = dir
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "~/.cache/mica".to_string());
    let c = model.checkpoint();
    let mb = c.size_bytes as f64 / 1e6;
    format!(
        "Get the official {model} weights ({mb:.1} MB, sha256 {}):\n  \
         mkdir -p {dir} && curl -L -o {dir}/{} {}\n\
         or run mica again with --download-weights (downloads into {dir}, sha256-checked),\n\
         or pass --weights PATH, or set {WEIGHTS_ENV}=PATH (a .pt, .pth or .safetensors file).",
        c.sha256, c.file, c.url
    )
}

/// Finds the weights file: `explicit`, else the environment variable, else `model`'s official
/// file in the cache directory. An explicit or environment path is returned whatever model it
/// holds (loading tells, [`crate::Sam::load`]).
///
/// # Errors
/// [`SamError::WeightsNotFound`] for a given path with no file, [`SamError::WeightsMissing`] when
/// nothing is found (the message says how to download them), [`SamError::Checksum`] for a cached
/// file with the wrong sha256.
pub fn resolve_weights(model: SamModel, explicit: Option<&Path>) -> Result<ResolvedWeights> {
    resolve_weights_from(model, explicit, std::env::var_os(WEIGHTS_ENV), cache_dir())
}

/// [`resolve_weights`] with the environment made explicit (for tests and embedding).
pub fn resolve_weights_from(
    model: SamModel,
    explicit: Option<&Path>,
    env_value: Option<OsString>,
    cache: Option<PathBuf>,
) -> Result<ResolvedWeights> {
    let how = how_to_get_weights(model, cache.as_deref());
    if let Some(p) = explicit {
        if !p.is_file() {
            return Err(SamError::WeightsNotFound {
                path: p.to_path_buf(),
                origin: "--weights".into(),
                how,
            });
        }
        return Ok(ResolvedWeights {
            path: p.to_path_buf(),
            origin: WeightsOrigin::Explicit,
        });
    }
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if !p.is_file() {
            return Err(SamError::WeightsNotFound {
                path: p,
                origin: WEIGHTS_ENV.into(),
                how,
            });
        }
        return Ok(ResolvedWeights {
            path: p,
            origin: WeightsOrigin::Environment,
        });
    }
    let mut searched = Vec::new();
    if let Some(dir) = cache {
        let c = model.checkpoint();
        let p = dir.join(c.file);
        if p.is_file() {
            verify_sha256(&p, c.sha256)?;
            return Ok(ResolvedWeights {
                path: p,
                origin: WeightsOrigin::Cache,
            });
        }
        searched.push(p);
    }
    Err(SamError::WeightsMissing { searched, how })
}

/// Hex sha256 of a file.
///
/// # Errors
/// [`SamError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| SamError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks a file against a hex sha256.
///
/// # Errors
/// [`SamError::Checksum`] on a mismatch, [`SamError::Io`] when unreadable.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(SamError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The URL [`download_weights`] uses: [`WEIGHTS_URL_ENV`] when set and not empty, else
/// [`MOBILE_SAM_URL`].
pub fn weights_url(model: SamModel) -> String {
    std::env::var(WEIGHTS_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| model.checkpoint().url.to_string())
}

/// Downloads `model`'s official checkpoint into `cache` (default [`cache_dir`]) from `url`
/// (default [`weights_url`]), verified against its sha256. An existing cached file with the
/// wrong checksum is replaced only once the new download has been verified.
///
/// # Errors
/// [`DownloadError::NoCacheDir`] without a cache directory, else those of [`download`].
pub fn download_weights(
    model: SamModel,
    url: Option<&str>,
    cache: Option<PathBuf>,
) -> Result<ResolvedWeights, DownloadError> {
    let dir = cache.or_else(cache_dir).ok_or(DownloadError::NoCacheDir)?;
    let url = url
        .map(str::to_string)
        .unwrap_or_else(|| weights_url(model));
    let c = model.checkpoint();
    let dest = dir.join(c.file);
    tracing::info!(%url, dest = %dest.display(), "downloading SAM weights");
    let bytes = download(&url, &dest, c.sha256)?;
    tracing::info!(bytes, dest = %dest.display(), "SAM weights downloaded and verified");
    Ok(ResolvedWeights {
        path: dest,
        origin: WeightsOrigin::Cache,
    })
}

/// The file formats a checkpoint may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A PyTorch `torch.save` zip archive (the official `mobile_sam.pt`).
    PyTorchZip,
    /// A safetensors file.
    Safetensors,
}

/// Tells the format from the first bytes of the file.
///
/// # Errors
/// [`SamError::BadWeights`] when the file is neither format (too short, text, legacy pickle).
pub fn detect_format(path: &Path) -> Result<WeightsFormat> {
    let mut f = std::fs::File::open(path).map_err(|source| SamError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = [0u8; 10];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => {
                return Err(SamError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    if n >= 4 && head[..4] == *b"PK\x03\x04" {
        return Ok(WeightsFormat::PyTorchZip);
    }
    // safetensors: u64 little-endian header length, then a JSON object.
    if n >= 9 && head[8] == b'{' {
        return Ok(WeightsFormat::Safetensors);
    }
    Err(SamError::BadWeights {
        path: path.to_path_buf(),
        reason: format!(
            "{} bytes read; expected a PyTorch zip checkpoint or a safetensors file",
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(n as u64)
        ),
    })
}

/// Opens a checkpoint as a candle [`VarBuilder`] of f32 tensors on `device`.
///
/// # Errors
/// [`SamError::BadWeights`] when the file cannot be parsed.
pub fn open_checkpoint(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let bad = |e: candle_core::Error| SamError::BadWeights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match detect_format(path)? {
        WeightsFormat::PyTorchZip => VarBuilder::from_pth(path, DType::F32, device).map_err(bad),
        WeightsFormat::Safetensors => {
            let tensors = candle_core::safetensors::load(path, device).map_err(bad)?;
            Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_everywhere_says_how_to_download() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_weights_from(
            SamModel::MobileSam,
            None,
            None,
            Some(dir.path().to_path_buf()),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SamError::WeightsMissing { .. }), "{msg}");
        assert!(msg.contains(MOBILE_SAM_URL), "{msg}");
        assert!(msg.contains(WEIGHTS_ENV), "{msg}");
        assert!(msg.contains(&dir.path().join(MOBILE_SAM_FILE).display().to_string()));
    }

    #[test]
    fn explicit_and_env_paths_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let ghost = dir.path().join("nope.pt");
        let e = resolve_weights_from(SamModel::MobileSam, Some(&ghost), None, None).unwrap_err();
        assert!(e.to_string().contains("nope.pt") && e.to_string().contains("--weights"));
        let e = resolve_weights_from(SamModel::MobileSam, None, Some(ghost.clone().into()), None)
            .unwrap_err();
        assert!(e.to_string().contains(WEIGHTS_ENV));
        let real = dir.path().join("w.pt");
        std::fs::write(&real, b"x").unwrap();
        let r = resolve_weights_from(SamModel::MobileSam, None, Some(real.clone().into()), None)
            .unwrap();
        assert_eq!(r.origin, WeightsOrigin::Environment);
        // The explicit path wins over the environment.
        let r = resolve_weights_from(SamModel::MobileSam, Some(&real), Some(ghost.into()), None)
            .unwrap();
        assert_eq!(r.origin, WeightsOrigin::Explicit);
    }

    #[test]
    fn each_model_is_looked_up_under_its_official_name() {
        let dir = tempfile::tempdir().unwrap();
        for m in SamModel::ALL {
            let c = m.checkpoint();
            assert_eq!(SamModel::from_name(m.name()).unwrap(), m);
            assert_eq!((c.sha256.len(), c.url.ends_with(c.file)), (64, true));
            let e = resolve_weights_from(m, None, None, Some(dir.path().to_path_buf()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(c.url) && e.contains(c.sha256), "{e}");
            assert!(
                e.contains(&dir.path().join(c.file).display().to_string()),
                "{e}"
            );
        }
        assert_eq!(SamModel::from_name("vit_t").unwrap(), SamModel::MobileSam);
        assert!(SamModel::from_name("vit_x")
            .unwrap_err()
            .to_string()
            .contains("vit_h"));
        // A ViT-B file in the cache is checked against ViT-B's checksum.
        std::fs::write(dir.path().join("sam_vit_b_01ec64.pth"), b"not it").unwrap();
        let e = resolve_weights_from(SamModel::VitB, None, None, Some(dir.path().to_path_buf()))
            .unwrap_err();
        assert!(matches!(e, SamError::Checksum { .. }), "{e}");
    }

    #[test]
    fn cached_file_with_wrong_checksum_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MOBILE_SAM_FILE), b"partial download").unwrap();
        let e = resolve_weights_from(
            SamModel::MobileSam,
            None,
            None,
            Some(dir.path().to_path_buf()),
        )
        .unwrap_err();
        assert!(matches!(e, SamError::Checksum { .. }), "{e}");
    }

    #[test]
    fn garbage_files_are_bad_weights() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pt");
        std::fs::write(&p, b"this is not a checkpoint").unwrap();
        let e = open_checkpoint(&p, &Device::Cpu)
            .err()
            .expect("garbage must be rejected");
        assert!(matches!(e, SamError::BadWeights { .. }), "{e}");
        assert!(e.to_string().contains("bad.pt"));
        let empty = dir.path().join("empty.safetensors");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            open_checkpoint(&empty, &Device::Cpu),
            Err(SamError::BadWeights { .. })
        ));
        // A zip header followed by garbage: recognised as PyTorch, then rejected by the parser.
        let trunc = dir.path().join("trunc.pt");
        std::fs::write(&trunc, b"PK\x03\x04garbage").unwrap();
        assert!(matches!(
            open_checkpoint(&trunc, &Device::Cpu),
            Err(SamError::BadWeights { .. })
        ));
    }
}
