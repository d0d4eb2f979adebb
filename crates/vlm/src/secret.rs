//! [`ApiKey`]: an API key read from the environment that never prints itself.

use std::fmt;

/// An API key. `Debug` and `Display` print `***`; the only way to the value is
/// [`ApiKey::expose`], used when building a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` for an empty string.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let v = value.into();
        let v = v.trim().to_string();
        (!v.is_empty()).then_some(ApiKey(v))
    }

    /// Reads the key from environment variable `var`; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().and_then(ApiKey::new)
    }

    /// The key itself, for a request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `***` (servers sometimes echo
    /// credentials in error messages).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let k = ApiKey::new("sk-secret-123").unwrap();
        assert!(!format!("{k:?} {k}").contains("secret"));
        assert_eq!(k.redact("bad key sk-secret-123!"), "bad key ***!");
        assert!(ApiKey::new("  ").is_none());
    }
}
