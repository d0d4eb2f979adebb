//! Image embeddings kept on disk, so the encoder (seconds per image on a CPU, the dominant cost
//! of prompted segmentation) is paid once per image and model: the convention micro-sam's
//! `precompute_embeddings` made familiar. `mica segment --embeddings DIR` (and `mica annotate`)
//! read and fill a folder of them.
//!
//! One file per (model weights, prepared image): `<key>.safetensors` holding the encoder output
//! `features` (`1 × 4096 × 256`, f32) and `image_size` (`[width, height]`, u32). The key is the
//! sha256 of a format tag, the weights file's sha256, and the prepared 8-bit RGB image (size and
//! pixels), so another model, other weights, another image preparation or a changed pixel all
//! miss. Files are written to a temporary name and renamed, so a crash leaves no half file under
//! a key; a file that cannot be read back as expected is reported and recomputed (it is derived
//! data: recomputing gives the same value).

use crate::error::{Result, SamError};
use candle_core::{DType, Device, Tensor};
use mica_core::Image;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Bumped whenever what is stored or how the key is made changes.
const FORMAT: &str = "mica-sam-embedding v1";

/// A folder of image embeddings for one model's weights.
#[derive(Debug)]
pub struct EmbeddingCache {
    dir: PathBuf,
    weights: PathBuf,
    weights_sha256: OnceLock<std::result::Result<String, String>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl EmbeddingCache {
    /// A cache in `dir` (created if missing) for embeddings made with the weights file `weights`.
    ///
    /// # Errors
    /// [`SamError::Io`] when the folder cannot be created.
    pub fn new(dir: &Path, weights: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| SamError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(EmbeddingCache {
            dir: dir.to_path_buf(),
            weights: weights.to_path_buf(),
            weights_sha256: OnceLock::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeddings read from the folder and computed, so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn weights_sha256(&self) -> Result<&str> {
        self.weights_sha256
            .get_or_init(|| crate::weights::sha256_file(&self.weights).map_err(|e| e.to_string()))
            .as_deref()
            .map_err(|e| SamError::Invalid(format!("embedding cache: {e}")))
    }

    /// The file an image's embedding is kept in.
    ///
    /// # Errors
    /// The weights file cannot be read (its hash is part of the key).
    pub fn path_for(&self, rgb8: &Image) -> Result<PathBuf> {
        let mut h = Sha256::new();
        h.update(FORMAT.as_bytes());
        h.update([0]);
        h.update(self.weights_sha256()?.as_bytes());
        h.update([0]);
        h.update(rgb8.width().to_le_bytes());
        h.update(rgb8.height().to_le_bytes());
        h.update(format!("{:?}/{:?}", rgb8.channels(), rgb8.bit_depth()).as_bytes());
        match rgb8.pixels() {
            mica_core::Pixels::U8(v) => h.update(v),
            mica_core::Pixels::U16(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
            mica_core::Pixels::F32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        }
        Ok(self
            .dir
            .join(format!("{}.safetensors", hex::encode(h.finalize()))))
    }

    /// The stored features of `rgb8`, if there are any that read back as expected. A file that
    /// does not is reported (warning naming it) and treated as missing.
    pub fn load(&self, rgb8: &Image, expected_shape: &[usize], device: &Device) -> Option<Tensor> {
        let path = self.path_for(rgb8).ok()?;
        if !path.exists() {
            return None;
        }
        match read_entry(&path, rgb8, expected_shape, device) {
            Ok(t) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::info!(file = %path.display(), "SAM embedding read from the cache");
                Some(t)
            }
            Err(reason) => {
                tracing::warn!(
                    file = %path.display(),
                    "unusable cached SAM embedding ({reason}); computing it again"
                );
                None
            }
        }
    }

    /// Stores the features of `rgb8`.
    ///
    /// # Errors
    /// The file cannot be written (the embedding itself is fine: callers may go on without it).
    pub fn store(&self, rgb8: &Image, features: &Tensor) -> Result<()> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let path = self.path_for(rgb8)?;
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let size = Tensor::new(&[rgb8.width(), rgb8.height()], &Device::Cpu)?;
        let features = features.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let tensors: HashMap<String, Tensor> = [
            ("features".to_string(), features),
            ("image_size".to_string(), size),
        ]
        .into_iter()
        .collect();
        let io = |e: candle_core::Error| SamError::Invalid(format!("{}: {e}", tmp.display()));
        candle_core::safetensors::save(&tensors, &tmp).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SamError::Io {
                path: path.clone(),
                source,
            }
        })
    }
}

fn read_entry(
    path: &Path,
    rgb8: &Image,
    expected_shape: &[usize],
    device: &Device,
) -> std::result::Result<Tensor, String> {
    let mut t = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| e.to_string())?;
    let size = t
        .remove("image_size")
        .ok_or("no image_size")?
        .to_vec1::<u32>()
        .map_err(|e| e.to_string())?;
    if size != [rgb8.width(), rgb8.height()] {
        return Err(format!(
            "made for a {size:?} image, not {}x{}",
            rgb8.width(),
            rgb8.height()
        ));
    }
    let f = t.remove("features").ok_or("no features")?;
    if f.dims() != expected_shape || f.dtype() != DType::F32 {
        return Err(format!(
            "features are {:?} {:?}, expected {expected_shape:?} F32",
            f.dims(),
            f.dtype()
        ));
    }
    f.to_device(device).map_err(|e| e.to_string())
}
