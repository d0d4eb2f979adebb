//! The VQA similarity scorer (all-MiniLM-L6-v2 from `mica-semantic`) as an answer scorer of the
//! measurement layer, for `mica eval vqa` and `mica report`.

use mica_metrics::vqa::AnswerScorer;
use std::path::{Path, PathBuf};

/// The model folder: the flag, else `MICA_MINILM_DIR`.
pub fn model_dir(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MICA_MINILM_DIR").map(PathBuf::from))
}

/// The similarity flags of `mica eval vqa` and `mica report`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SimilarityArgs {
    /// Score VQA answers by similarity to the expert's reference with all-MiniLM-L6-v2 in this
    /// folder (`config.json`, `tokenizer.json`, `model.safetensors`, sha256-checked): the cosine
    /// of the two texts' embeddings. Default: `MICA_MINILM_DIR` when set.
    #[arg(long, value_name = "DIR")]
    pub similarity_model: Option<PathBuf>,
    /// Score similarity with all-MiniLM-L6-v2 from mica's cache (`~/.cache/mica/all-MiniLM-L6-v2`),
    /// downloading its three files from Hugging Face first when they are missing or differ
    /// (pinned revision, each sha256-checked; 91 MB; `MICA_MINILM_URL` names a mirror). A
    /// folder given with --similarity-model or MICA_MINILM_DIR is used as it is, never replaced.
    #[arg(long)]
    pub download_similarity_model: bool,
}

impl SimilarityArgs {
    /// The similarity scorer the flags ask for, or `None`.
    ///
    /// # Errors
    /// The download failed (URL named), the model cannot be loaded, or this build has no
    /// `semantic` feature.
    pub fn load(&self, quiet: bool) -> anyhow::Result<Option<Box<dyn AnswerScorer>>> {
        if let Some(dir) = model_dir(self.similarity_model.as_deref()) {
            return load(&dir).map(Some);
        }
        if !self.download_similarity_model {
            return Ok(None);
        }
        #[cfg(feature = "semantic")]
        {
            use anyhow::Context;
            let (dir, bytes) =
                mica_semantic::fetch::ensure_model(None, None).with_context(|| {
                    format!(
                        "cannot get all-MiniLM-L6-v2 from {}",
                        mica_semantic::fetch::base_url()
                    )
                })?;
            if bytes > 0 && !quiet {
                eprintln!(
                    "all-MiniLM-L6-v2: {:.1} MB downloaded and verified into {}",
                    bytes as f64 / 1e6,
                    dir.display()
                );
            }
            load(&dir).map(Some)
        }
        #[cfg(not(feature = "semantic"))]
        {
            let _ = quiet;
            Err(super::NotInThisBuild(
                "similarity scoring needs mica built with the `semantic` feature".into(),
            )
            .into())
        }
    }
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

    fn score(&self, pairs: &[(&str, &str)]) -> Result<Vec<Result<f64, String>>, String> {
        let texts: Vec<&str> = pairs.iter().flat_map(|(a, r)| [*a, *r]).collect();
        let e = self.0.embed(&texts).map_err(|e| e.to_string())?;
        Ok(e.chunks(2)
            .map(|p| Ok(mica_semantic::cosine(&p[0], &p[1])))
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
