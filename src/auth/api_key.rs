//! The shared key that the API gateway forwards in the `Api-Key` header.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured gateway API key. `Debug` never shows it.
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps the configured key.
    ///
    /// An empty key matches nothing, so a blank setting locks the API rather than
    /// opening it; configuration should refuse it at start-up anyway.
    pub fn new(key: String) -> Self {
        Self(SecretString::from(key))
    }

    /// Whether `presented` (the raw `Api-Key` header value) is the configured key.
    ///
    /// Both sides are hashed to SHA-256 first and the digests compared in constant
    /// time, so the time taken reveals neither a matching prefix nor the key's length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.expose_secret().as_bytes();
        if expected.is_empty() {
            return false;
        }

        let expected_digest = Sha256::digest(expected);
        let presented_digest = Sha256::digest(presented);
        expected_digest.ct_eq(&presented_digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_key_matches() {
        let key = ApiKey::new("s3cret-key".to_owned());

        assert!(key.matches(b"s3cret-key"));
    }

    #[test]
    fn other_keys_do_not_match() {
        let key = ApiKey::new("s3cret-key".to_owned());

        assert!(!key.matches(b"s3cret-kez"));
        assert!(!key.matches(b"s3cret-key "));
        assert!(!key.matches(b"s3cret"));
        assert!(!key.matches(b""));
    }

    #[test]
    fn an_empty_configured_key_matches_nothing() {
        let key = ApiKey::new(String::new());

        assert!(!key.matches(b""));
        assert!(!key.matches(b"anything"));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = ApiKey::new("s3cret-key".to_owned());

        let shown = format!("{key:?}");

        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
