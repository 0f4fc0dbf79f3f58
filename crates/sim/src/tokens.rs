//! Access tokens: issuing Graph-shaped JWTs (RS256, `iss` sts.windows.net/{tid}/, `aud`, `tid`,
//! `appid`, `roles` or `scp`, `exp` 60–90 minutes) and validating them on Graph requests; the
//! simulator's signing key (one RSA-2048 key per simulator, published in the JWKS); the token
//! state (authorization codes, refresh tokens, per-user consents, per-app counters).
//! OWNER: identity.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha1::Digest as _;
use uuid::Uuid;

use crate::error::{GraphError, GraphResult};
use crate::graph::Principal;
use crate::model::{App, Tenant, User};
use crate::state::{SimState, lock};

/// Microsoft Graph's resource URI and application id.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Exchange Online (EWS) resource.
pub const OUTLOOK_RESOURCE: &str = "https://outlook.office365.com";
pub const OUTLOOK_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// Authorization codes live about 10 minutes.
pub const AUTH_CODE_LIFETIME_S: i64 = 600;
/// Refresh tokens: 90 days.
pub const REFRESH_TOKEN_LIFETIME_S: i64 = 90 * 24 * 3600;
/// `iat`/`nbf` are back-dated 5 minutes, as Entra does.
const BACKDATE_S: i64 = 300;

const MSG_EMPTY: &str = "Access token is empty.";
const MSG_MALFORMED: &str = "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.";
const MSG_EXPIRED: &str = "Access token has expired or is not yet valid.";
const MSG_AUDIENCE: &str = "Access token validation failure. Invalid audience.";
const MSG_SIGNATURE: &str = "Signature is invalid.";
const MSG_FAILURE: &str = "Access token validation failure.";

/// The simulator's token-signing key and its self-signed certificate (published in the JWKS).
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `kid` = `x5t` = base64url(SHA-1(cert DER)), as Entra's v1-era keys.
    pub kid: String,
    pub x5t: String,
    /// base64url modulus and exponent.
    pub n: String,
    pub e: String,
    /// Standard base64 of the certificate DER (`x5c`).
    pub cert_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    fn generate() -> Result<Self, String> {
        let g = generate_rsa_cert("accounts.calgate-sim.local", 1, 10 * 365)?;
        let encoding =
            EncodingKey::from_rsa_pem(g.private_key_pem.as_bytes()).map_err(|e| e.to_string())?;
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|e| e.to_string())?;
        let (n, e) = match jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => (p.n, p.e),
            _ => return Err("signing key is not RSA".into()),
        };
        let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
        let x5t = URL_SAFE_NO_PAD.encode(&g.sha1);
        Ok(SigningKey {
            encoding,
            decoding,
            kid: x5t.clone(),
            x5t,
            n,
            e,
            cert_b64: STANDARD.encode(&g.cert_der),
        })
    }

    /// Signs `claims` with RS256 and the `typ`/`x5t`/`kid` header Entra uses.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": self.x5t, "kid": self.kid});
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let msg = format!("{h}.{p}");
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &self.encoding, Algorithm::RS256)
            .map_err(|e| e.to_string())?;
        Ok(format!("{msg}.{sig}"))
    }

    /// The JWKS entry.
    pub fn jwk(&self, issuer: &str) -> Value {
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.x5t, "n": self.n,
               "e": self.e, "x5c": [self.cert_b64], "cloud_instance_name": "microsoftonline.com",
               "issuer": issuer})
    }
}

/// A generated RSA-2048 key pair and self-signed certificate.
#[derive(Clone)]
pub struct GeneratedCert {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub private_key_pem: String,
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("sha1", &hex(&self.sha1))
            .finish()
    }
}

/// Generates an RSA-2048 key and a self-signed certificate valid from `days_before` days ago
/// for `days_valid` days (real clock; certificate validity is informative only).
pub fn generate_rsa_cert(
    cn: &str,
    days_before: i64,
    days_valid: i64,
) -> Result<GeneratedCert, String> {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    let ymd = |ts: Timestamp| {
        let d = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    let now = Timestamp::now();
    params.not_before = ymd(now - SignedDuration::from_hours(24 * days_before));
    params.not_after = ymd(now + SignedDuration::from_hours(24 * days_valid));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = cert.der().to_vec();
    Ok(GeneratedCert {
        sha1: sha1::Sha1::digest(&der).to_vec(),
        sha256: sha2::Sha256::digest(&der).to_vec(),
        cert_pem: cert.pem(),
        private_key_pem: key.serialize_pem(),
        cert_der: der,
    })
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// An authorization code issued by `/authorize`.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub tenant_id: Uuid,
    pub client_id: Uuid,
    pub user_id: Uuid,
    pub redirect_uri: String,
    /// Requested scopes as sent (`openid offline_access https://graph.microsoft.com/Calendars.Read`).
    pub scopes: Vec<String>,
    /// (challenge, method) — method `S256` or `plain`.
    pub challenge: Option<(String, String)>,
    pub nonce: Option<String>,
    pub expires: Timestamp,
    pub redeemed: bool,
}

/// A refresh token's grant.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub tenant_id: Uuid,
    pub client_id: Uuid,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub issued: Timestamp,
    pub expires: Timestamp,
    pub revoked: bool,
}

/// Per-app counters (exposed by the control API).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppCounters {
    /// Requests to the token endpoints naming this client_id.
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Token requests that failed.
    pub token_errors: u64,
}

#[derive(Debug, Default)]
pub struct TokenInner {
    pub codes: HashMap<String, AuthCode>,
    pub refresh: HashMap<String, RefreshGrant>,
    /// Per-user delegated consent recorded by the /authorize page: (client_id, user_id) → scopes.
    pub user_consent: HashMap<(Uuid, Uuid), BTreeSet<String>>,
    pub counters: HashMap<Uuid, AppCounters>,
}

#[derive(Debug)]
pub struct TokenState {
    key: OnceLock<Result<SigningKey, String>>,
    pub inner: Mutex<TokenInner>,
    /// Claims of bearer tokens whose header and signature were verified (the key never
    /// changes within a run): token string → claims. Lifetime, audience, tenant and app are
    /// still checked on every request. Cleared when it reaches [`VERIFIED_TOKENS_MAX`].
    verified: Mutex<HashMap<String, Arc<Value>>>,
}

/// Verified tokens remembered (see [`TokenState::verified_claims`]).
const VERIFIED_TOKENS_MAX: usize = 4096;

impl TokenState {
    pub fn new() -> Self {
        TokenState {
            key: OnceLock::new(),
            inner: Mutex::new(TokenInner::default()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of `token` if its signature was verified before.
    pub fn verified_claims(&self, token: &str) -> Option<Arc<Value>> {
        lock(&self.verified).get(token).cloned()
    }

    /// Remembers that `token`'s signature verified; returns its claims.
    pub fn remember_verified(&self, token: &str, claims: Value) -> Arc<Value> {
        let claims = Arc::new(claims);
        let mut g = lock(&self.verified);
        if g.len() >= VERIFIED_TOKENS_MAX {
            g.clear();
        }
        g.insert(token.to_owned(), Arc::clone(&claims));
        claims
    }

    /// The signing key (generated on first use).
    pub fn key(&self) -> Result<&SigningKey, String> {
        self.key
            .get_or_init(SigningKey::generate)
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn inner(&self) -> std::sync::MutexGuard<'_, TokenInner> {
        lock(&self.inner)
    }

    pub fn count(&self, client_id: Uuid, f: impl FnOnce(&mut AppCounters)) {
        f(self.inner().counters.entry(client_id).or_default());
    }

    pub fn counters(&self, client_id: Uuid) -> AppCounters {
        self.inner()
            .counters
            .get(&client_id)
            .cloned()
            .unwrap_or_default()
    }
}

impl Default for TokenState {
    fn default() -> Self {
        Self::new()
    }
}

/// A random opaque token string (codes, refresh tokens).
pub fn opaque(prefix: &str, bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(v))
}

/// A random access-token lifetime: 60–90 minutes.
pub fn random_lifetime_s() -> i64 {
    rand::random_range(3600..=5400)
}

/// How the client authenticated (`appidacr`): 0 public, 1 secret, 2 certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Public,
    Secret,
    Certificate,
}

impl ClientAuth {
    fn acr(self) -> &'static str {
        match self {
            ClientAuth::Public => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        }
    }
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: i64,
    pub expires_on: i64,
    pub not_before: i64,
}

fn base_claims(
    tenant: &Tenant,
    app: &App,
    aud: &str,
    auth: ClientAuth,
    now: Timestamp,
) -> (Value, i64, i64, i64) {
    let lifetime = random_lifetime_s();
    let now_s = now.as_second();
    let nbf = now_s - BACKDATE_S;
    let exp = now_s + lifetime;
    let iss = format!("https://sts.windows.net/{}/", tenant.id);
    let claims = json!({
        "aud": aud,
        "iss": iss,
        "iat": nbf,
        "nbf": nbf,
        "exp": exp,
        "aio": opaque("E2Rg", 40),
        "app_displayname": app.display_name,
        "appid": app.client_id.to_string(),
        "appidacr": auth.acr(),
        "idp": iss,
        "rh": format!("1.{}", opaque("AQ", 30)),
        "tenant_region_scope": "WW",
        "tid": tenant.id.to_string(),
        "uti": opaque("", 16),
        "ver": "1.0",
        "xms_tcdt": 1_600_000_000,
    });
    (claims, lifetime, exp, nbf)
}

/// An app-only Graph token (v1 format): `roles` are the app's consented application permissions.
pub fn issue_app_token(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    aud: &str,
    auth: ClientAuth,
) -> Result<Issued, String> {
    let now = st.now();
    let (mut c, lifetime, exp, nbf) = base_claims(tenant, app, aud, auth, now);
    c["idtyp"] = json!("app");
    c["oid"] = json!(app.sp_object_id.to_string());
    c["sub"] = json!(app.sp_object_id.to_string());
    if !app.app_roles.is_empty() {
        c["roles"] = json!(app.app_roles.iter().collect::<Vec<_>>());
    }
    c["wids"] = json!(["0997a1d0-0d1d-4acb-b408-d5ca73121e90"]);
    let token = st.tokens.key()?.sign(&c)?;
    st.tokens.count(app.client_id, |c| c.tokens_issued += 1);
    Ok(Issued {
        token,
        expires_in: lifetime,
        expires_on: exp,
        not_before: nbf,
    })
}

/// A delegated Graph token (v1 format) for `user`, with `scp` = the granted scopes.
pub fn issue_delegated_token(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    user: &User,
    aud: &str,
    scp: &[String],
    auth: ClientAuth,
) -> Result<Issued, String> {
    let now = st.now();
    let (mut c, lifetime, exp, nbf) = base_claims(tenant, app, aud, auth, now);
    c["idtyp"] = json!("user");
    c["acr"] = json!("1");
    c["amr"] = json!(["pwd"]);
    c["oid"] = json!(user.id.to_string());
    c["sub"] = json!(pairwise_sub(app.client_id, user.id));
    c["name"] = json!(user.display_name);
    if let Some(g) = &user.given_name {
        c["given_name"] = json!(g);
    }
    if let Some(s) = &user.surname {
        c["family_name"] = json!(s);
    }
    c["upn"] = json!(user.upn);
    c["unique_name"] = json!(user.upn);
    c["scp"] = json!(scp.join(" "));
    c["platf"] = json!("3");
    c["ipaddr"] = json!("127.0.0.1");
    let token = st.tokens.key()?.sign(&c)?;
    st.tokens.count(app.client_id, |c| c.tokens_issued += 1);
    Ok(Issued {
        token,
        expires_in: lifetime,
        expires_on: exp,
        not_before: nbf,
    })
}

/// An OIDC id_token (v2 format) for `user`.
pub fn issue_id_token(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    user: &User,
    nonce: Option<&str>,
) -> Result<String, String> {
    let now = st.now().as_second();
    let mut c = json!({
        "aud": app.client_id.to_string(),
        "iss": format!("{}/{}/v2.0", st.base_url(), tenant.id),
        "iat": now - BACKDATE_S,
        "nbf": now - BACKDATE_S,
        "exp": now + 3600,
        "name": user.display_name,
        "oid": user.id.to_string(),
        "preferred_username": user.upn,
        "rh": format!("1.{}", opaque("AQ", 30)),
        "sub": pairwise_sub(app.client_id, user.id),
        "tid": tenant.id.to_string(),
        "uti": opaque("", 16),
        "ver": "2.0",
    });
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    st.tokens.key()?.sign(&c)
}

/// Entra's `sub` is pairwise: stable per (app, user), different across apps.
fn pairwise_sub(app: Uuid, user: Uuid) -> String {
    let mut h = sha2::Sha256::new();
    h.update(app.as_bytes());
    h.update(user.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..32])
}

/// Splits a compact JWS into (header JSON, claims JSON, signing input, signature b64).
pub fn split_jws(token: &str) -> Option<(Value, Value, String, String)> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok()?).ok()?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?).ok()?;
    if !header.is_object() || !claims.is_object() {
        return None;
    }
    Some((header, claims, format!("{h}.{p}"), s.to_owned()))
}

/// Verifies an RS256/PS256 signature with `key`.
pub fn verify_sig(alg: &str, input: &str, sig: &str, key: &DecodingKey) -> bool {
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        _ => return false,
    };
    jsonwebtoken::crypto::verify(sig, input.as_bytes(), key, alg).unwrap_or(false)
}

/// Validates a bearer token presented to Graph. 401 `InvalidAuthenticationToken` when missing,
/// expired, forged, or for another audience.
#[allow(clippy::result_large_err)] // signature fixed by the Principal extractor
pub fn validate_graph_token(st: &Arc<SimState>, token: &str) -> GraphResult<Principal> {
    let token = token.trim();
    if token.is_empty() {
        return Err(GraphError::invalid_token(MSG_EMPTY));
    }
    let claims = match st.tokens.verified_claims(token) {
        Some(claims) => claims,
        None => {
            let Some((header, claims, input, sig)) = split_jws(token) else {
                return Err(GraphError::invalid_token(MSG_MALFORMED));
            };
            let key = st
                .tokens
                .key()
                .map_err(|_| GraphError::invalid_token(MSG_FAILURE))?;
            let alg = header["alg"].as_str().unwrap_or("");
            if alg != "RS256" || header["kid"].as_str() != Some(key.kid.as_str()) {
                return Err(GraphError::invalid_token(MSG_SIGNATURE));
            }
            if !verify_sig(alg, &input, &sig, &key.decoding) {
                return Err(GraphError::invalid_token(MSG_SIGNATURE));
            }
            st.tokens.remember_verified(token, claims)
        }
    };
    let aud = claims["aud"].as_str().unwrap_or("");
    let aud_ok = [GRAPH_RESOURCE, "https://graph.microsoft.com/", GRAPH_APP_ID]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(aud));
    if !aud_ok {
        return Err(GraphError::invalid_token(MSG_AUDIENCE));
    }
    let now = st.now().as_second();
    let (Some(exp), Some(nbf)) = (claims["exp"].as_i64(), claims["nbf"].as_i64()) else {
        return Err(GraphError::invalid_token(MSG_FAILURE));
    };
    if now >= exp || now < nbf {
        return Err(GraphError::invalid_token(MSG_EXPIRED));
    }
    let tid = claims["tid"].as_str().and_then(|t| Uuid::parse_str(t).ok());
    let appid = claims["appid"]
        .as_str()
        .and_then(|t| Uuid::parse_str(t).ok());
    let (Some(tid), Some(appid)) = (tid, appid) else {
        return Err(GraphError::invalid_token(MSG_FAILURE));
    };
    if claims["iss"].as_str() != Some(format!("https://sts.windows.net/{tid}/").as_str()) {
        return Err(GraphError::invalid_token(MSG_FAILURE));
    }
    {
        let dir = st.dir();
        let Some(t) = dir.tenant_by_id(tid) else {
            return Err(GraphError::invalid_token(MSG_FAILURE));
        };
        if !t.apps.iter().any(|a| a.client_id == appid) {
            return Err(GraphError::invalid_token(MSG_FAILURE));
        }
    }
    let roles: BTreeSet<String> = claims["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let delegated = match claims["scp"].as_str() {
        Some(scp) if claims["idtyp"].as_str() != Some("app") => {
            let oid = claims["oid"]
                .as_str()
                .and_then(|t| Uuid::parse_str(t).ok())
                .ok_or_else(|| GraphError::invalid_token(MSG_FAILURE))?;
            Some((oid, scp.split_whitespace().map(str::to_owned).collect()))
        }
        _ => None,
    };
    Ok(Principal {
        tenant_id: tid,
        app_id: appid,
        roles,
        delegated,
    })
}
