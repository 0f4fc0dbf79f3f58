//! App-only token acquisition (OAuth 2.0 client credentials) with a client secret or a
//! certificate assertion; caching with early refresh; one refresh in flight per credential.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::{AssertionAlg, CertificateInfo, Credential, TokenEndpoint};
use crate::error::{self, Error, ErrorKind, TokenContext};
use crate::limiter::Metrics;
use crate::secret::SecretString;
use crate::wire::{EntraErrorBody, TokenResponse};

/// Refresh a cached token when less than this is left.
pub const EARLY_REFRESH: Duration = Duration::from_secs(5 * 60);

/// An access token. `Debug` redacts it.
#[derive(Clone, Debug)]
pub struct AccessToken {
    secret: SecretString,
    expires_at: Timestamp,
    roles: Option<Vec<String>>,
}

impl AccessToken {
    /// The bearer token itself. Never log it.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
    /// Application roles the token carries (`roles` claim), when it can be read. Access tokens
    /// are opaque by contract: use this for diagnostics only.
    pub fn roles(&self) -> Option<&[String]> {
        self.roles.as_deref()
    }
    /// Whether the token is still good for at least `margin`.
    pub fn fresh_for(&self, now: Timestamp, margin: Duration) -> bool {
        let margin = SignedDuration::try_from(margin).unwrap_or(SignedDuration::MAX);
        now.checked_add(margin).is_ok_and(|t| t < self.expires_at)
    }
}

/// The claims of a JWT, unverified and best effort: for diagnostics, and for tokens that came
/// straight from the token endpoint over TLS (OpenID Connect Core §3.1.3.7).
pub(crate) fn jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `roles` claim of a JWT access token, best effort.
fn roles_of(token: &str) -> Option<Vec<String>> {
    let v = jwt_claims(token)?;
    match v.get("roles") {
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => Some(Vec::new()),
    }
}

/// Parses a token endpoint success body (v2, or v1 with string numbers).
pub fn parse_token_response(body: &[u8], now: Timestamp) -> Result<AccessToken, Error> {
    let t: TokenResponse = serde_json::from_slice(body).map_err(|_| {
        Error::invalid_data(
            "Entra ID sent a token response that is not JSON: check the authority URL",
        )
    })?;
    let token = t
        .access_token
        .non_empty()
        .ok_or_else(|| {
            Error::invalid_data("Entra ID sent a token response without an access_token")
        })?
        .to_owned();
    let expires_at = t
        .expires_in
        .get()
        .and_then(|n| n.as_secs())
        .and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok())
        .or_else(|| {
            t.expires_on
                .get()
                .and_then(|n| n.as_secs())
                .and_then(|s| Timestamp::from_second(s).ok())
        })
        // Unknown lifetime: assume a short one rather than a long one.
        .or_else(|| now.checked_add(SignedDuration::from_mins(10)).ok())
        .unwrap_or(now);
    Ok(AccessToken {
        roles: roles_of(&token),
        secret: SecretString::new(token),
        expires_at,
    })
}

/// Cache state of one credential. One per (token endpoint, client id, credential) per
/// [`crate::Shared`], so every client of the same connection shares it.
pub(crate) struct CredSlot {
    pub(crate) cred: Credential,
    cert: Option<CertificateInfo>,
    /// Holding this lock *is* the single flight: callers queue on it and find the fresh token.
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    rejected: StdMutex<Option<(Instant, Error)>>,
}

/// How long a rejected credential is tried last.
const REJECTION_MEMORY: Duration = Duration::from_secs(15 * 60);

impl CredSlot {
    pub(crate) fn new(cred: Credential) -> Result<CredSlot, Error> {
        let cert = match &cred {
            Credential::Certificate {
                cert_pem,
                private_key_pem,
                ..
            } => {
                let info = CertificateInfo::from_pem(cert_pem)?;
                jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes()).map_err(|_| {
                    Error::config("the certificate's private key is not an RSA private key in PEM form (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
                })?;
                Some(info)
            }
            Credential::Secret { value, .. } => {
                if value.expose().trim().is_empty() {
                    return Err(Error::config(
                        "the client secret is empty: paste the secret's Value from Entra ID › App registrations › Certificates & secrets",
                    ));
                }
                None
            }
        };
        Ok(CredSlot {
            cred,
            cert,
            cache: tokio::sync::Mutex::new(None),
            rejected: StdMutex::new(None),
        })
    }

    pub(crate) fn rejection(&self) -> Option<Error> {
        let g = self.rejected.lock().ok()?;
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < REJECTION_MEMORY)
            .map(|(_, e)| e.clone())
    }

    fn reject(&self, e: Error) {
        if let Ok(mut g) = self.rejected.lock() {
            *g = Some((Instant::now(), e));
        }
    }

    fn clear_rejection(&self) {
        if let Ok(mut g) = self.rejected.lock() {
            *g = None;
        }
    }

    fn known_expired(&self, now: Timestamp) -> bool {
        self.cred.expires().is_some_and(|e| e <= now)
    }

    pub(crate) async fn invalidate(&self, token: &AccessToken) {
        let mut c = self.cache.lock().await;
        if c.as_ref().is_some_and(|t| t.secret == token.secret) {
            *c = None;
        }
    }
}

/// Where and what to ask for.
pub(crate) struct TokenRequest<'a> {
    pub http: &'a reqwest::Client,
    pub metrics: &'a Metrics,
    pub token_url: &'a Url,
    pub endpoint: TokenEndpoint,
    pub resource: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub authority: &'a str,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

pub(crate) fn assertion(
    req: &TokenRequest<'_>,
    key_pem: &SecretString,
    cert: &CertificateInfo,
    alg: AssertionAlg,
) -> Result<String, Error> {
    let (alg, thumb_s256, thumb_sha1) = match alg {
        AssertionAlg::Ps256 => (
            jsonwebtoken::Algorithm::PS256,
            Some(cert.x5t_s256.clone()),
            None,
        ),
        AssertionAlg::Rs256 => (jsonwebtoken::Algorithm::RS256, None, Some(cert.x5t.clone())),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.typ = Some("JWT".to_owned());
    header.x5t_s256 = thumb_s256;
    header.x5t = thumb_sha1;
    let now = Timestamp::now().as_second();
    let claims = AssertionClaims {
        aud: req.token_url.as_str(),
        iss: req.client_id,
        sub: req.client_id,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now,
        iat: now,
        exp: now + 600,
    };
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()).map_err(|_| {
            Error::config("the certificate's private key is not an RSA private key in PEM form")
        })?;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| Error::config(format!("could not sign the certificate assertion ({e})")))
}

/// One token request for one credential, with a few retries for transient failures.
async fn fetch(req: &TokenRequest<'_>, slot: &CredSlot) -> Result<AccessToken, Error> {
    let scope = format!("{}/.default", req.resource.trim_end_matches('/'));
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", req.client_id.to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ];
        match req.endpoint {
            TokenEndpoint::V2 => form.push(("scope", scope.clone())),
            TokenEndpoint::V1 => form.push(("resource", req.resource.to_owned())),
        }
        form.extend(slot.client_authentication(req)?);
        Metrics::inc(&req.metrics.token_requests);
        tracing::debug!(
            tenant = req.tenant,
            client_id = req.client_id,
            credential = slot.cred.kind_name(),
            "requesting an access token"
        );
        let sent = post_form(req, &form).await;
        drop(form);
        let (status, retry_after, body) = match sent {
            Ok(x) => x,
            Err(_) if attempt < 3 => {
                tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                continue;
            }
            Err(e) => return Err(unreachable_authority(req, &e)),
        };
        if (200..300).contains(&status) {
            return parse_token_response(&body, Timestamp::now());
        }
        let parsed: EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let ctx = TokenContext {
            tenant: req.tenant,
            client_id: req.client_id,
            authority: req.authority,
            credential: slot.cred.kind_name(),
        };
        let mut e = error::from_entra(status, &parsed, &ctx);
        e.retry_after = retry_after;
        if e.kind == ErrorKind::Retryable && attempt < 3 {
            let wait = retry_after
                .unwrap_or(Duration::from_millis(500 * u64::from(attempt)))
                .min(Duration::from_secs(30));
            tokio::time::sleep(wait).await;
            continue;
        }
        return Err(e);
    }
}

/// POSTs `form` to the token endpoint: (status, `Retry-After`, body), or the transport error
/// (the request not sent, or its answer cut short).
pub(crate) async fn post_form(
    req: &TokenRequest<'_>,
    form: &[(&str, String)],
) -> Result<(u16, Option<Duration>, Vec<u8>), reqwest::Error> {
    let resp = req
        .http
        .post(req.token_url.clone())
        .header("client-request-id", uuid::Uuid::new_v4().to_string())
        .form(form)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let retry_after = crate::client::retry_after(resp.headers());
    Ok((status, retry_after, resp.bytes().await?.to_vec()))
}

fn unreachable_authority(req: &TokenRequest<'_>, e: &reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Error::new(
        ErrorKind::Retryable,
        format!(
            "cannot reach Entra ID at {} ({why}): check the authority URL, DNS, proxy and firewall (outbound HTTPS to the login host)",
            req.authority
        ),
    )
}

/// A token from `slot`: the cached one if fresh, else a new one (single flight).
pub(crate) async fn token_from(
    req: &TokenRequest<'_>,
    slot: &CredSlot,
) -> Result<AccessToken, Error> {
    let mut cache = slot.cache.lock().await;
    let now = Timestamp::now();
    if let Some(t) = cache.as_ref()
        && t.fresh_for(now, EARLY_REFRESH)
    {
        return Ok(t.clone());
    }
    match fetch(req, slot).await {
        Ok(t) => {
            slot.clear_rejection();
            *cache = Some(t.clone());
            Ok(t)
        }
        Err(e) => {
            // A refresh that fails transiently leaves a still-valid token usable.
            if e.kind == ErrorKind::Retryable
                && let Some(t) = cache
                    .as_ref()
                    .filter(|t| t.fresh_for(now, Duration::from_secs(30)))
            {
                tracing::warn!(error = %e, "token refresh failed; using the cached token until it expires");
                return Ok(t.clone());
            }
            Err(e)
        }
    }
}

/// Tries the credentials in order — the last one that worked first, known-expired and
/// recently rejected ones last — and falls back on a credential-specific rejection.
pub(crate) async fn acquire(
    req: &TokenRequest<'_>,
    slots: &[std::sync::Arc<CredSlot>],
    active: &std::sync::atomic::AtomicUsize,
) -> Result<(usize, AccessToken), Error> {
    use std::sync::atomic::Ordering;
    if slots.is_empty() {
        return Err(Error::new(
            ErrorKind::Authentication,
            "the connection has no client secret or certificate: add one with `calgate connection secret add`",
        ));
    }
    let now = Timestamp::now();
    let preferred = active.load(Ordering::Relaxed);
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&i| {
        let s = &slots[i];
        (
            s.rejection().is_some() || s.known_expired(now),
            i != preferred,
            i,
        )
    });
    let mut first: Option<Error> = None;
    let mut rejected = 0usize;
    for i in order {
        let slot = &slots[i];
        match token_from(req, slot).await {
            Ok(t) => {
                if i != preferred {
                    active.store(i, Ordering::Relaxed);
                    if rejected > 0 {
                        tracing::warn!(
                            credential = i + 1,
                            "a newer credential was rejected; using an older one"
                        );
                    }
                }
                return Ok((i, t));
            }
            Err(e) if e.is_credential_specific() => {
                tracing::warn!(credential = i + 1, error = %e, "credential rejected; trying the next one");
                slot.reject(e.clone());
                rejected += 1;
                first.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    let mut e =
        first.unwrap_or_else(|| Error::new(ErrorKind::Authentication, "no credential worked"));
    if slots.len() > 1 {
        e.message = format!(
            "{} (all {} credentials of this connection were rejected)",
            e.message,
            slots.len()
        );
    }
    Err(e)
}

/// The claims of an access token that matter to an administrator (`connection test`). Access
/// tokens are opaque by contract: for diagnostics only, never for decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// `tid`: the tenant's GUID (also when the connection names the tenant by a domain).
    pub tenant_id: Option<String>,
    /// `appid` (v1 tokens) or `azp` (v2).
    pub app_id: Option<String>,
    /// `app_displayname`.
    pub app_display_name: Option<String>,
    /// `aud`.
    pub audience: Option<String>,
    /// `roles`: application permissions.
    pub roles: Vec<String>,
    /// `scp`, split: delegated permissions.
    pub scopes: Vec<String>,
    /// `idtyp`: `app` or `user`.
    pub id_type: Option<String>,
}

impl AccessToken {
    /// The token's claims, when it is a readable JWT.
    pub fn claims(&self) -> Option<TokenClaims> {
        let v = jwt_claims(self.secret.expose())?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        Some(TokenClaims {
            tenant_id: s("tid"),
            app_id: s("appid").or_else(|| s("azp")),
            app_display_name: s("app_displayname"),
            audience: s("aud"),
            roles: v
                .get("roles")
                .and_then(|r| r.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            scopes: s("scp")
                .map(|x| x.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            id_type: s("idtyp"),
        })
    }
}

// Additive, for delegated tokens (`delegated.rs`).
impl AccessToken {
    /// A delegated token carries `scp`, not `roles`: forget the (empty) roles so that Graph
    /// errors are not explained by missing application permissions.
    pub(crate) fn without_roles(mut self) -> AccessToken {
        self.roles = None;
        self
    }
}

impl CredSlot {
    /// The form fields that authenticate the app with this credential at `req`'s token
    /// endpoint: `client_secret`, or a freshly signed `client_assertion`.
    pub(crate) fn client_authentication(
        &self,
        req: &TokenRequest<'_>,
    ) -> Result<Vec<(&'static str, String)>, Error> {
        Ok(match &self.cred {
            Credential::Secret { value, .. } => {
                vec![("client_secret", value.expose().to_owned())]
            }
            Credential::Certificate {
                private_key_pem,
                alg,
                ..
            } => {
                let cert = self.cert.as_ref().ok_or_else(|| {
                    Error::config("the certificate credential has no certificate")
                })?;
                vec![
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                    ),
                    (
                        "client_assertion",
                        assertion(req, private_key_pem, cert, *alg)?,
                    ),
                ]
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_token_bodies() {
        let now = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t = parse_token_response(br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#, now)
            .expect("v2");
        assert_eq!(t.expires_at().as_second(), 1_700_003_599);
        let t = parse_token_response(br#"{"token_type":"Bearer","expires_in":"3599","expires_on":"1700003599","not_before":"1","resource":"https://graph.microsoft.com","access_token":"abc"}"#, now)
            .expect("v1");
        assert_eq!(t.expires_at().as_second(), 1_700_003_599);
        let t = parse_token_response(br#"{"access_token":"abc","expires_on":"1700000100"}"#, now)
            .expect("expires_on only");
        assert!(!t.fresh_for(now, EARLY_REFRESH));
        assert!(t.fresh_for(now, Duration::from_secs(60)));
        assert!(format!("{t:?}").contains("redacted") && !format!("{t:?}").contains("abc"));
        assert!(parse_token_response(b"{}", now).is_err());
        assert!(parse_token_response(b"<html>", now).is_err());
    }
}
