//! Secrets in memory: client secrets, private keys, refresh and access tokens. One type for the
//! whole program, zeroed when dropped (the `secrecy` crate), never printed.

use std::fmt;

use secrecy::ExposeSecret as _;

/// A secret string. `Debug` and `Display` print `<redacted>`; there is no `Serialize`; the one
/// way to the value is [`SecretString::expose`], so every use is visible in review. Equality
/// compares in constant time.
#[derive(Clone)]
pub struct SecretString(secrecy::SecretString);

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(secrecy::SecretString::from(value.into()))
    }

    /// The secret itself: hand it to the token client or the cipher, never to a log.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString::new(s)
    }
}

/// Compares two byte strings in time that depends only on their lengths (for secrets, API key
/// hashes, `state` and `clientState` values).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_everywhere_and_compares() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s, SecretString::from("hunter2"));
        assert_ne!(s, SecretString::from("hunter3"));
        assert!(!ct_eq(b"a", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
