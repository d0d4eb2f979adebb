//! The VQA similarity scorer (all-MiniLM-L6-v2 from `mica-semantic`) as an answer scorer of the
//! measurement layer, for `mica eval vqa` and `mica report`.

use mica_metrics::vqa::AnswerScorer;
use std::path::{Path, PathBuf};

/// The model folder: the flag, else `MICA_MINILM_DIR`.
pub fn model_dir(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MICA_MINILM_DIR").map(PathBuf::from))
}

#[cfg(feature = "semantic")]
struct MiniLm(mica_semantic::SentenceEncoder);

#[cfg(feature = "semantic")]
impl AnswerScorer for MiniLm {
    fn name(&self) -> &str {
        mica_metrics::vqa::SCORER_SIMILARITY
    }

    fn describe(&self) -> String {
        format!(
            "similarity: cosine of all-MiniLM-L6-v2 sentence embeddings (model.safetensors sha256 {}, from {})",
            mica_semantic::MODEL_SHA256,
            self.0.dir.display()
        )
    }

    fn score(&self, pairs: &[(&str, &str)]) -> Result<Vec<f64>, String> {
        let texts: Vec<&str> = pairs.iter().flat_map(|(a, r)| [*a, *r]).collect();
        let e = self.0.embed(&texts).map_err(|e| e.to_string())?;
        Ok(e.chunks(2)
            .map(|p| mica_semantic::cosine(&p[0], &p[1]))
            .collect())
    }
}

/// Loads the similarity scorer from `dir`.
///
/// # Errors
/// The model cannot be loaded (named), or this build has no `semantic` feature.
pub fn load(dir: &Path) -> anyhow::Result<Box<dyn AnswerScorer>> {
    #[cfg(feature = "semantic")]
    {
        use anyhow::Context;
        let enc = mica_semantic::SentenceEncoder::load(dir)
            .context("cannot load the similarity model (--similarity-model or MICA_MINILM_DIR)")?;
        Ok(Box::new(MiniLm(enc)))
    }
    #[cfg(not(feature = "semantic"))]
    {
        let _ = dir;
        Err(super::NotInThisBuild(
            "similarity scoring needs mica built with the `semantic` feature".into(),
        )
        .into())
    }
}
