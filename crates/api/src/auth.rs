//! API keys: `cgk_<key id>_<secret>`. The key is shown once when it is made; the store keeps
//! its public id, a random salt and SHA-256(salt || key); a request's key is found by its id
//! and its hash compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calgate_core::{ApiScope, SecretString, ct_eq};
use calgate_store::{ApiKey, NewApiKey};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

const PREFIX: &str = "cgk_";

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b
}

fn hash(salt: &[u8], key: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    h.finalize().to_vec()
}

/// A new key for `name` with `scopes`: the key itself (to show once) and what to store.
pub fn generate_key(name: &str, scopes: &[ApiScope]) -> (SecretString, NewApiKey) {
    let key_id: String = random(8).iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{PREFIX}{key_id}_{}", URL_SAFE_NO_PAD.encode(random(32)));
    let salt = random(16);
    let new = NewApiKey {
        name: name.trim().to_owned(),
        key_id,
        hash: hash(&salt, &key),
        salt,
        scopes: scopes.to_vec(),
    };
    (SecretString::new(key), new)
}

/// The public id of a key (`None`: not one of calgate's keys).
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some(id)
}

/// Whether `key` is the stored one (constant-time).
pub fn matches(stored: &ApiKey, key: &str) -> bool {
    ct_eq(&hash(&stored.salt, key), &stored.hash)
}

/// A token for an ICS feed URL (256 random bits) and the hash the store keeps.
pub fn generate_feed_token() -> (String, Vec<u8>) {
    let token = URL_SAFE_NO_PAD.encode(random(32));
    let h = feed_token_hash(&token);
    (token, h)
}

/// The hash a feed is found by.
pub fn feed_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// An authenticated caller: the key it presented.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    /// Whether the key grants `scope` (`admin` grants everything).
    pub fn has(&self, scope: ApiScope) -> bool {
        self.key.scopes.contains(&scope) || self.key.scopes.contains(&ApiScope::Admin)
    }

    /// `403` unless the key grants `scope`.
    pub fn require(&self, scope: ApiScope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the API key '{}' has no '{scope}' scope: create one that has (`calgate apikey create NAME --scope {scope}`)",
                self.key.name
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::unauthorized(
                "an API key is needed: send `Authorization: Bearer KEY` (make one with `calgate apikey create NAME --scope read`)",
            )
        };
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| missing())?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(missing)?;
        let refused =
            || ApiError::unauthorized("the API key is not valid (unknown, mistyped or revoked)");
        let id = key_id(key).ok_or_else(refused)?;
        let stored = state.store.api_key(id).await?.ok_or_else(refused)?;
        if stored.revoked_at.is_some() || !matches(&stored, key) {
            return Err(refused());
        }
        Ok(Caller { key: stored })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_only_themselves() {
        let (key, new) = generate_key("lms", &[ApiScope::Read]);
        let stored = ApiKey {
            name: new.name.clone(),
            key_id: new.key_id.clone(),
            salt: new.salt.clone(),
            hash: new.hash.clone(),
            scopes: new.scopes.clone(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            revoked_at: None,
        };
        assert_eq!(key_id(key.expose()), Some(new.key_id.as_str()));
        assert!(matches(&stored, key.expose()));
        let mut other = key.expose().to_owned();
        other.push('x');
        assert!(!matches(&stored, &other));
        assert!(
            !new.hash
                .windows(8)
                .any(|w| key.expose().as_bytes().windows(8).any(|k| k == w))
        );
        assert_eq!(key_id("cgk_nothex!!!!!!!!!!_x"), None);
        assert_eq!(key_id("Bearer"), None);
    }
}
