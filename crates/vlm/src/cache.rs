//! [`ResponseCache`]: answers already paid for, in SQLite, keyed by (provider, model, prompt, image
//! hashes, settings).
//!
//! Each answer is committed on its own as soon as it arrives (WAL journal), so a run killed with
//! `kill -9` keeps every answer it had received. Only answers are stored: no request headers, no
//! API key, no image bytes.

use crate::error::VlmError;
use crate::request::{VlmRequest, VlmResponse};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Version of the key derivation; bump when the request fingerprint changes meaning.
const KEY_VERSION: u32 = 1;

/// The cache key of `req` sent to `model` (`provider:model`) at `endpoint` (a base URL): SHA-256
/// of a canonical JSON of the model name, the endpoint, the prompt turns with image SHA-256s, the
/// schema and the sampling settings. The provider's public default endpoint is left out of the
/// material, so caches written before endpoints were part of the key stay valid for it; any
/// other server (a local one, a proxy) gets its own answers.
pub fn cache_key(model: &str, endpoint: &str, req: &VlmRequest) -> String {
    let default = crate::ModelSpec::parse(model)
        .ok()
        .and_then(|m| m.provider.default_base_url());
    let endpoint = endpoint.trim_end_matches('/');
    let mut material = serde_json::json!({
        "v": KEY_VERSION,
        "model": model,
        "request": req.fingerprint(),
    });
    if default != Some(endpoint) {
        material["endpoint"] = serde_json::Value::from(endpoint);
    }
    hex::encode(Sha256::digest(material.to_string().as_bytes()))
}

/// A SQLite response cache, safe to share between threads.
#[derive(Debug)]
pub struct ResponseCache {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl ResponseCache {
    /// Opens (creating if needed) the cache at `path`, creating its folder.
    ///
    /// # Errors
    /// [`VlmError::Cache`] naming the path when it cannot be created or is not a mica cache.
    pub fn open(path: &Path) -> Result<Self, VlmError> {
        let err = |reason: String| VlmError::Cache {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| err(e.to_string()))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS responses (
                key TEXT PRIMARY KEY,
                model TEXT NOT NULL,
                created_unix_s INTEGER NOT NULL,
                response_json TEXT NOT NULL
            );",
        )
        .map_err(|e| err(e.to_string()))?;
        Ok(ResponseCache {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The default location: `$MICA_CACHE_DIR`, else `$XDG_CACHE_HOME/mica`, else
    /// `~/.cache/mica`; file `vlm-responses.sqlite`.
    pub fn default_path() -> Option<PathBuf> {
        let env = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
        let dir = env("MICA_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("mica")))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache").join("mica")))?;
        Some(dir.join("vlm-responses.sqlite"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> VlmError {
        VlmError::Cache {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The stored answer for `key`, if any.
    ///
    /// # Errors
    /// [`VlmError::Cache`] on a database error or an unreadable stored answer.
    pub fn get(&self, key: &str) -> Result<Option<VlmResponse>, VlmError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let json: Option<String> = conn
            .query_row(
                "SELECT response_json FROM responses WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| self.err(format!("entry {key}: {e}"))))
            .transpose()
    }

    /// Stores (or replaces) the answer for `key`, committed before returning.
    ///
    /// # Errors
    /// [`VlmError::Cache`] on a database error.
    pub fn put(&self, key: &str, model: &str, resp: &VlmResponse) -> Result<(), VlmError> {
        let json = serde_json::to_string(resp).map_err(|e| self.err(e))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO responses (key, model, created_unix_s, response_json)
             VALUES (?1, ?2, ?3, ?4)",
            params![key, model, now, json],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Number of stored answers.
    ///
    /// # Errors
    /// [`VlmError::Cache`] on a database error.
    pub fn len(&self) -> Result<u64, VlmError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("SELECT COUNT(*) FROM responses", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// True when nothing is stored.
    ///
    /// # Errors
    /// As [`ResponseCache::len`].
    pub fn is_empty(&self) -> Result<bool, VlmError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{FinishReason, Usage};

    fn resp(text: &str) -> VlmResponse {
        VlmResponse {
            text: text.into(),
            finish: FinishReason::Stop,
            usage: Usage {
                input_tokens: Some(10),
                output_tokens: Some(2),
            },
            latency_ms: 5,
            attempts: 1,
            model_version: None,
        }
    }

    #[test]
    fn stores_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/c.sqlite");
        let req = VlmRequest::single("count", vec![]);
        let k = cache_key("openai:gpt-4o", "https://api.openai.com/v1", &req);
        {
            let c = ResponseCache::open(&p).unwrap();
            assert!(c.get(&k).unwrap().is_none());
            c.put(&k, "openai:gpt-4o", &resp("Count: 3")).unwrap();
        }
        let c = ResponseCache::open(&p).unwrap();
        assert_eq!(c.get(&k).unwrap().unwrap().text, "Count: 3");
        assert_eq!(c.len().unwrap(), 1);
    }

    #[test]
    fn key_depends_on_model_prompt_and_settings() {
        let a = VlmRequest::single("count", vec![]);
        let mut b = a.clone();
        b.sampling.temperature = Some(0.2);
        let c = VlmRequest::single("count the cells", vec![]);
        let k = |m, r| cache_key(m, "https://api.openai.com/v1", r);
        assert_ne!(k("openai:gpt-4o", &a), k("openai:gpt-4o", &b));
        assert_ne!(k("openai:gpt-4o", &a), k("openai:gpt-4o", &c));
        assert_ne!(k("openai:gpt-4o", &a), k("gemini:gpt-4o", &a));
        assert_eq!(k("openai:gpt-4o", &a), k("openai:gpt-4o", &a.clone()));
    }

    /// Two servers with the same model name shared answers: the key omitted the endpoint.
    #[test]
    fn two_servers_with_one_model_name_do_not_share_answers() {
        let a = VlmRequest::single("count", vec![]);
        let m = "openai-compatible:llava";
        let one = cache_key(m, "http://127.0.0.1:8080/v1", &a);
        let two = cache_key(m, "http://10.0.0.7:8080/v1", &a);
        assert_ne!(one, two);
        assert_eq!(one, cache_key(m, "http://127.0.0.1:8080/v1/", &a));
        // The public default endpoint keeps the key it had before endpoints were in it.
        let legacy = hex::encode(Sha256::digest(
            serde_json::json!({"v": KEY_VERSION, "model": "openai:gpt-4o", "request": a.fingerprint()})
                .to_string()
                .as_bytes(),
        ));
        assert_eq!(
            cache_key("openai:gpt-4o", "https://api.openai.com/v1", &a),
            legacy
        );
    }
}
