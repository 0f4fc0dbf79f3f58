//! Control API for app registrations (the Entra admin centre and Exchange Online PowerShell of
//! the simulated tenant): apps, secrets, certificates, application-permission and delegated
//! consent, RBAC for Applications, Application Access Policies, refresh-token revocation and
//! token-endpoint counters. Documented in `docs/sim/identity.md`. OWNER: identity.
//!
//! - `GET|POST /_sim/apps`, `GET|PATCH|DELETE /_sim/apps/{client_id}`
//! - `POST /_sim/apps/{id}/secrets`, `PATCH|DELETE /_sim/apps/{id}/secrets/{key_id}`
//! - `POST /_sim/apps/{id}/certificates`, `PATCH|DELETE /_sim/apps/{id}/certificates/{key_id}`
//! - `PUT|POST /_sim/apps/{id}/roles`, `DELETE /_sim/apps/{id}/roles/{role}`
//! - `PUT|POST /_sim/apps/{id}/consent`, `DELETE /_sim/apps/{id}/consent/{scope}`
//! - `GET|POST|DELETE /_sim/apps/{id}/rbac`
//! - `PUT|DELETE /_sim/apps/{id}/access-policy`
//! - `GET /_sim/apps/{id}/counters`
//! - `POST /_sim/tokens/revoke`, `POST /_sim/tokens/expire`
//!
//! Secret values and private keys are only ever returned by the call that creates them.

#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Digest as _;
use uuid::Uuid;

use crate::control::EmptyBody;
use crate::error::GraphError;
use crate::model::{AccessPolicy, AccessRight, App, Certificate, RbacAssignment, Secret, Tenant};
use crate::state::SimState;

type St = Arc<SimState>;
type Res = Result<Response, GraphError>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/apps", get(list_apps).post(create_app))
        .route(
            "/apps/{id}",
            get(get_app).patch(patch_app).delete(delete_app),
        )
        .route("/apps/{id}/secrets", post(add_secret))
        .route(
            "/apps/{id}/secrets/{key}",
            patch(patch_secret).delete(delete_secret),
        )
        .route("/apps/{id}/certificates", post(add_cert))
        .route(
            "/apps/{id}/certificates/{key}",
            patch(patch_cert).delete(delete_cert),
        )
        .route("/apps/{id}/roles", post(grant_roles).put(set_roles))
        .route("/apps/{id}/roles/{role}", delete(revoke_role))
        .route("/apps/{id}/consent", post(grant_consent).put(set_consent))
        .route("/apps/{id}/consent/{scope}", delete(revoke_consent))
        .route(
            "/apps/{id}/rbac",
            get(list_rbac).post(add_rbac).delete(remove_rbac),
        )
        .route(
            "/apps/{id}/access-policy",
            get(get_policy).put(set_policy).delete(clear_policy),
        )
        .route("/apps/{id}/counters", get(get_counters))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/tokens/expire", post(expire_tokens))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn not_found(what: &str, r: &str) -> GraphError {
    GraphError::not_found(
        "NotFound",
        format!("No {what} '{r}' in the simulated tenant."),
    )
}

/// A JSON object body; empty means `{}`.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GraphError> {
    crate::control::parse_object(body, EmptyBody::IsEmptyObject, "BadRequest")
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A permission name: `Calendars.Read`, `Place.Read.All`, `offline_access`, `openid`.
fn check_perm(p: &str) -> Result<String, GraphError> {
    let p = p.trim();
    let valid = !p.is_empty()
        && p.len() <= 120
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        && p.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if valid {
        Ok(p.to_owned())
    } else {
        Err(bad(format!("'{p}' is not a valid permission name.")))
    }
}

fn check_perms(ps: &[String]) -> Result<BTreeSet<String>, GraphError> {
    ps.iter().map(|p| check_perm(p)).collect()
}

/// Finds (tenant, app index) for a client id across tenants.
fn find_app<'a>(
    dir: &'a mut crate::model::Directory,
    client_id: &str,
) -> Result<(&'a mut Tenant, usize), GraphError> {
    let id = Uuid::parse_str(client_id).map_err(|_| not_found("app", client_id))?;
    for t in dir.tenants.iter_mut() {
        if let Some(i) = t.apps.iter().position(|a| a.client_id == id) {
            return Ok((t, i));
        }
    }
    Err(not_found("app", client_id))
}

/// Runs `f` on the app; `f` may look at the tenant (groups) too.
fn with_app<T>(
    st: &SimState,
    client_id: &str,
    f: impl FnOnce(&mut Tenant, usize) -> Result<T, GraphError>,
) -> Result<T, GraphError> {
    let mut dir = st.dir();
    let (t, i) = find_app(&mut dir, client_id)?;
    f(t, i)
}

fn app_mut(t: &mut Tenant, i: usize) -> Result<&mut App, GraphError> {
    t.apps.get_mut(i).ok_or_else(|| not_found("app", ""))
}

/// A new secret value in the portal's shape (40 characters, `8Q~` at 3..6).
fn secret_value() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~";
    let mut s = String::with_capacity(40);
    for i in 0..37 {
        if i == 3 {
            s.push_str("8Q~");
        }
        s.push(char::from(CHARS[rand::random_range(0..CHARS.len())]));
    }
    s
}

/// Expiry from an explicit RFC 3339 instant or seconds from (simulated) now; default `days`.
fn expiry(
    now: Timestamp,
    expires: Option<&str>,
    expires_in_seconds: Option<i64>,
    default_days: i64,
) -> Result<Timestamp, GraphError> {
    if let Some(e) = expires {
        return e
            .parse::<Timestamp>()
            .map_err(|_| bad(format!("'{e}' is not a valid RFC 3339 timestamp.")));
    }
    let secs = expires_in_seconds.unwrap_or(default_days * 86_400);
    if secs.unsigned_abs() > 200 * 365 * 86_400 {
        return Err(bad("expires_in_seconds is out of range."));
    }
    now.checked_add(SignedDuration::from_secs(secs))
        .map_err(|_| bad("expires_in_seconds is out of range."))
}

fn secret_json(s: &Secret) -> Value {
    // The portal shows the first three characters as a hint.
    json!({"key_id": s.key_id, "display_name": s.display_name, "hint": s.value.chars().take(3).collect::<String>(),
           "start": s.start.to_string(), "expires": s.expires.to_string()})
}

fn cert_json(c: &Certificate) -> Value {
    json!({"key_id": c.key_id, "display_name": c.display_name,
           "thumbprint_sha1_hex": crate::tokens::hex(&c.sha1),
           "thumbprint_sha256_b64url": URL_SAFE_NO_PAD.encode(&c.sha256),
           "start": c.start.to_string(), "expires": c.expires.to_string()})
}

fn group_ref(t: &Tenant, id: Uuid) -> Value {
    match t.groups.iter().find(|g| g.id == id) {
        Some(g) => json!({"id": g.id, "mail": g.mail, "display_name": g.display_name}),
        None => json!({"id": id}),
    }
}

fn app_json(st: &SimState, t: &Tenant, a: &App) -> Value {
    json!({
        "client_id": a.client_id,
        "tenant_id": t.id,
        "sp_object_id": a.sp_object_id,
        "name": a.display_name,
        "roles": a.app_roles,
        "delegated_consent": a.delegated_consent,
        "redirect_uris": a.redirect_uris,
        "public_client": a.public_client,
        "secrets": a.secrets.iter().map(secret_json).collect::<Vec<_>>(),
        "certificates": a.certificates.iter().map(cert_json).collect::<Vec<_>>(),
        "rbac": a.rbac.iter().map(|r| json!({"permission": r.permission,
            "scope_group": r.scope_group.map(|g| group_ref(t, g))})).collect::<Vec<_>>(),
        "access_policy": a.access_policy.as_ref().map(|p| json!({"access_right": p.access_right,
            "group": group_ref(t, p.group)})),
        "counters": st.tokens.counters(a.client_id),
    })
}

fn check_redirects(uris: &[String]) -> Result<Vec<String>, GraphError> {
    uris.iter()
        .map(|u| {
            let u = u.trim();
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() <= 512
                && !u.contains('#')
                && !u.chars().any(char::is_whitespace);
            if ok {
                Ok(u.to_owned())
            } else {
                Err(bad(format!(
                    "'{u}' is not a valid redirect URI (absolute http(s) URL without fragment)."
                )))
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Apps
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    name: String,
    tenant: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    delegated_consent: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    public_client: bool,
    /// Lifetime of the first secret (default 365 days; negative = already expired).
    secret_expires_in_seconds: Option<i64>,
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn list_apps(State(st): State<St>, Query(q): Query<TenantQuery>) -> Res {
    let dir = st.dir();
    let mut out = Vec::new();
    for t in &dir.tenants {
        if q.tenant.as_deref().is_some_and(|s| !t.matches(s)) {
            continue;
        }
        out.extend(t.apps.iter().map(|a| app_json(&st, t, a)));
    }
    Ok(ok(json!({"value": out})))
}

async fn create_app(State(st): State<St>, body: Bytes) -> Res {
    let b: CreateApp = parse(&body)?;
    let name = b.name.trim();
    if name.is_empty() || name.len() > 120 {
        return Err(bad("name must be 1 to 120 characters."));
    }
    let roles = check_perms(&b.roles)?;
    let consent = check_perms(&b.delegated_consent)?;
    let redirects = check_redirects(&b.redirect_uris)?;
    let now = st.now();
    let expires = expiry(now, None, b.secret_expires_in_seconds, 365)?;
    let mut app = App::new(name);
    app.app_roles = roles;
    app.delegated_consent = consent;
    app.redirect_uris = redirects;
    app.public_client = b.public_client;
    let value = secret_value();
    let secret = Secret {
        key_id: Uuid::new_v4(),
        display_name: format!("{name} secret"),
        value: value.clone(),
        start: now.min(expires),
        expires,
    };
    let key_id = secret.key_id;
    app.secrets.push(secret);
    let mut dir = st.dir();
    let t = match b.tenant.as_deref() {
        Some(s) => dir.tenant_mut(s).ok_or_else(|| not_found("tenant", s))?,
        None => dir
            .tenants
            .first_mut()
            .ok_or_else(|| not_found("tenant", "(default)"))?,
    };
    let mut v = app_json(&st, t, &app);
    v["client_secret"] = json!(value);
    v["secret"] = json!({"key_id": key_id, "value": value, "expires": expires.to_string()});
    t.apps.push(app);
    Ok(created(v))
}

async fn get_app(State(st): State<St>, Path(id): Path<String>) -> Res {
    with_app(&st, &id, |t, i| {
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(app_json(&st, t, a)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchApp {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    public_client: Option<bool>,
}

async fn patch_app(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: PatchApp = parse(&body)?;
    let redirects = b
        .redirect_uris
        .as_deref()
        .map(check_redirects)
        .transpose()?;
    if let Some(n) = &b.name
        && (n.trim().is_empty() || n.len() > 120)
    {
        return Err(bad("name must be 1 to 120 characters."));
    }
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        if let Some(n) = b.name {
            a.display_name = n.trim().to_owned();
        }
        if let Some(r) = redirects {
            a.redirect_uris = r;
        }
        if let Some(p) = b.public_client {
            a.public_client = p;
        }
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(app_json(&st, t, a)))
    })
}

async fn delete_app(State(st): State<St>, Path(id): Path<String>) -> Res {
    with_app(&st, &id, |t, i| {
        t.apps.remove(i);
        Ok(no_content())
    })
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddSecret {
    display_name: Option<String>,
    /// Explicit value (at least 16 characters); generated when absent.
    value: Option<String>,
    expires: Option<String>,
    expires_in_seconds: Option<i64>,
}

async fn add_secret(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: AddSecret = parse(&body)?;
    let now = st.now();
    let expires = expiry(now, b.expires.as_deref(), b.expires_in_seconds, 180)?;
    let value = match b.value {
        Some(v) => {
            if v.len() < 16 || v.len() > 256 || v.chars().any(|c| c.is_control()) {
                return Err(bad("value must be 16 to 256 printable characters."));
            }
            v
        }
        None => secret_value(),
    };
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        if a.secrets.iter().any(|s| s.value == value) {
            return Err(GraphError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "The app already has a secret with this value.",
            ));
        }
        let s = Secret {
            key_id: Uuid::new_v4(),
            display_name: b.display_name.unwrap_or_else(|| "secret".into()),
            value: value.clone(),
            start: now.min(expires),
            expires,
        };
        let out = json!({"key_id": s.key_id, "value": value, "expires": expires.to_string(),
                         "display_name": s.display_name});
        a.secrets.push(s);
        Ok(created(out))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetExpiry {
    expires: Option<String>,
    expires_in_seconds: Option<i64>,
}

/// The expiry a `PATCH` of a secret or certificate asks for (one of the two fields is required).
fn requested_expiry(st: &St, body: &Bytes) -> Result<Timestamp, GraphError> {
    let b: SetExpiry = parse(body)?;
    if b.expires.is_none() && b.expires_in_seconds.is_none() {
        return Err(bad("Give expires (RFC 3339) or expires_in_seconds."));
    }
    expiry(st.now(), b.expires.as_deref(), b.expires_in_seconds, 0)
}

fn key_uuid(key: &str) -> Result<Uuid, GraphError> {
    Uuid::parse_str(key).map_err(|_| not_found("key", key))
}

async fn patch_secret(
    State(st): State<St>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Res {
    let expires = requested_expiry(&st, &body)?;
    let k = key_uuid(&key)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let s = a
            .secrets
            .iter_mut()
            .find(|s| s.key_id == k)
            .ok_or_else(|| not_found("secret", &key))?;
        s.expires = expires;
        if s.start > expires {
            s.start = expires;
        }
        Ok(ok(secret_json(s)))
    })
}

async fn delete_secret(State(st): State<St>, Path((id, key)): Path<(String, String)>) -> Res {
    let k = key_uuid(&key)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let n = a.secrets.len();
        a.secrets.retain(|s| s.key_id != k);
        if a.secrets.len() == n {
            return Err(not_found("secret", &key));
        }
        Ok(no_content())
    })
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddCert {
    /// Upload: a PEM certificate (public part).
    cert_pem: Option<String>,
    /// Or ask the simulator to generate a key pair and self-signed certificate.
    #[serde(default)]
    generate: bool,
    display_name: Option<String>,
    expires: Option<String>,
    expires_in_seconds: Option<i64>,
}

fn der_from_pem(pem: &str) -> Result<Vec<u8>, GraphError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    if body.is_empty() {
        return Err(bad("cert_pem holds no 'BEGIN CERTIFICATE' block."));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad("cert_pem is not valid base64."))
}

async fn add_cert(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: AddCert = parse(&body)?;
    // Exists? (before the slow key generation)
    with_app(&st, &id, |_, _| Ok(()))?;
    let now = st.now();
    let (der, generated) = match (&b.cert_pem, b.generate) {
        (Some(_), true) | (None, false) => {
            return Err(bad("Give either cert_pem or \"generate\": true."));
        }
        (Some(pem), false) => (der_from_pem(pem)?, None),
        (None, true) => {
            let g =
                crate::tokens::generate_rsa_cert("calgate-sim client", 1, 730).map_err(|e| {
                    GraphError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e)
                })?;
            (g.cert_der.clone(), Some(g))
        }
    };
    if crate::identity::cert_public_key(&der).is_none() {
        return Err(bad(
            "The certificate is not a valid X.509 certificate with an RSA key.",
        ));
    }
    // Default expiry: the certificate's notAfter for uploads, one year for generated ones.
    let not_after = {
        use x509_parser::prelude::*;
        X509Certificate::from_der(&der)
            .ok()
            .and_then(|(_, c)| Timestamp::from_second(c.validity().not_after.timestamp()).ok())
    };
    let expires = match (
        b.expires.as_deref(),
        b.expires_in_seconds,
        generated.is_some(),
        not_after,
    ) {
        (None, None, false, Some(na)) => na,
        (e, s, _, _) => expiry(now, e, s, 365)?,
    };
    let cert = Certificate {
        key_id: Uuid::new_v4(),
        display_name: b.display_name.unwrap_or_else(|| "certificate".into()),
        sha1: sha1::Sha1::digest(&der).to_vec(),
        sha256: sha2::Sha256::digest(&der).to_vec(),
        der,
        start: now.min(expires),
        expires,
    };
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        if a.certificates.iter().any(|c| c.sha1 == cert.sha1) {
            return Err(GraphError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "The app already has this certificate.",
            ));
        }
        let mut out = cert_json(&cert);
        match &generated {
            Some(g) => {
                out["cert_pem"] = json!(g.cert_pem);
                out["private_key_pem"] = json!(g.private_key_pem);
            }
            None => out["cert_pem"] = json!(b.cert_pem),
        }
        a.certificates.push(cert);
        Ok(created(out))
    })
}

async fn patch_cert(
    State(st): State<St>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Res {
    let expires = requested_expiry(&st, &body)?;
    let k = key_uuid(&key)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let c = a
            .certificates
            .iter_mut()
            .find(|c| c.key_id == k)
            .ok_or_else(|| not_found("certificate", &key))?;
        c.expires = expires;
        if c.start > expires {
            c.start = expires;
        }
        Ok(ok(cert_json(c)))
    })
}

async fn delete_cert(State(st): State<St>, Path((id, key)): Path<(String, String)>) -> Res {
    let k = key_uuid(&key)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let n = a.certificates.len();
        a.certificates.retain(|c| c.key_id != k);
        if a.certificates.len() == n {
            return Err(not_found("certificate", &key));
        }
        Ok(no_content())
    })
}

// ---------------------------------------------------------------------------------------------
// Application roles and delegated consent
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scopes {
    scopes: Vec<String>,
}

async fn grant_roles(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Roles = parse(&body)?;
    let r = check_perms(&b.roles)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        a.app_roles.extend(r);
        Ok(ok(json!({"roles": a.app_roles})))
    })
}

async fn set_roles(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Roles = parse(&body)?;
    let r = check_perms(&b.roles)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        a.app_roles = r;
        Ok(ok(json!({"roles": a.app_roles})))
    })
}

async fn revoke_role(State(st): State<St>, Path((id, role)): Path<(String, String)>) -> Res {
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let before = a.app_roles.len();
        a.app_roles.retain(|r| !r.eq_ignore_ascii_case(&role));
        if a.app_roles.len() == before {
            return Err(not_found("role grant", &role));
        }
        Ok(ok(json!({"roles": a.app_roles})))
    })
}

async fn grant_consent(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Scopes = parse(&body)?;
    let s = check_perms(&b.scopes)?;
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        a.delegated_consent.extend(s);
        Ok(ok(json!({"delegated_consent": a.delegated_consent})))
    })
}

async fn set_consent(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Scopes = parse(&body)?;
    let s = check_perms(&b.scopes)?;
    let cid = with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        a.delegated_consent = s;
        Ok(a.client_id)
    })?;
    // Replacing the grant also drops per-user consents given on the authorize page.
    st.tokens.inner().user_consent.retain(|(c, _), _| *c != cid);
    let dc = with_app(&st, &id, |t, i| {
        Ok(app_mut(t, i)?.delegated_consent.clone())
    })?;
    Ok(ok(json!({"delegated_consent": dc})))
}

async fn revoke_consent(State(st): State<St>, Path((id, scope)): Path<(String, String)>) -> Res {
    let (cid, dc, removed) = with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        let before = a.delegated_consent.len();
        a.delegated_consent
            .retain(|r| !r.eq_ignore_ascii_case(&scope));
        Ok((
            a.client_id,
            a.delegated_consent.clone(),
            before != a.delegated_consent.len(),
        ))
    })?;
    let mut user_removed = false;
    for ((c, _), s) in st.tokens.inner().user_consent.iter_mut() {
        if *c == cid {
            let n = s.len();
            s.retain(|r| !r.eq_ignore_ascii_case(&scope));
            user_removed |= n != s.len();
        }
    }
    if !removed && !user_removed {
        return Err(not_found("consent", &scope));
    }
    Ok(ok(json!({"delegated_consent": dc})))
}

// ---------------------------------------------------------------------------------------------
// RBAC for Applications and Application Access Policies
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rbac {
    /// `Calendars.Read` or `Calendars.ReadWrite` (also accepts `Application Calendars.Read`).
    permission: String,
    /// Group id or mail; absent = the whole organisation.
    scope_group: Option<String>,
}

fn rbac_perm(p: &str) -> Result<String, GraphError> {
    let p = p.trim();
    let p = p.strip_prefix("Application ").unwrap_or(p);
    check_perm(p)
}

fn resolve_group(t: &Tenant, g: &str) -> Result<Uuid, GraphError> {
    t.group(g)
        .map(|g| g.id)
        .ok_or_else(|| not_found("group", g))
}

fn rbac_json(t: &Tenant, a: &App) -> Value {
    json!({"value": a.rbac.iter().map(|r| json!({"permission": r.permission,
        "scope_group": r.scope_group.map(|g| group_ref(t, g))})).collect::<Vec<_>>()})
}

async fn list_rbac(State(st): State<St>, Path(id): Path<String>) -> Res {
    with_app(&st, &id, |t, i| {
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(rbac_json(t, a)))
    })
}

async fn add_rbac(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Rbac = parse(&body)?;
    let perm = rbac_perm(&b.permission)?;
    with_app(&st, &id, |t, i| {
        let group = b
            .scope_group
            .as_deref()
            .map(|g| resolve_group(t, g))
            .transpose()?;
        let a = app_mut(t, i)?;
        if !a
            .rbac
            .iter()
            .any(|r| r.permission.eq_ignore_ascii_case(&perm) && r.scope_group == group)
        {
            a.rbac.push(RbacAssignment {
                permission: perm,
                scope_group: group,
            });
        }
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(created(rbac_json(t, a)))
    })
}

async fn remove_rbac(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Rbac = parse(&body)?;
    let perm = rbac_perm(&b.permission)?;
    with_app(&st, &id, |t, i| {
        let group = b
            .scope_group
            .as_deref()
            .map(|g| resolve_group(t, g))
            .transpose()?;
        let a = app_mut(t, i)?;
        let n = a.rbac.len();
        a.rbac
            .retain(|r| !(r.permission.eq_ignore_ascii_case(&perm) && r.scope_group == group));
        if a.rbac.len() == n {
            return Err(not_found("RBAC assignment", &perm));
        }
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(rbac_json(t, a)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    access_right: AccessRight,
    /// Group id or mail (`PolicyScopeGroupId`).
    group: String,
}

fn policy_json(t: &Tenant, a: &App) -> Value {
    match &a.access_policy {
        Some(p) => json!({"access_right": p.access_right, "group": group_ref(t, p.group)}),
        None => Value::Null,
    }
}

async fn get_policy(State(st): State<St>, Path(id): Path<String>) -> Res {
    with_app(&st, &id, |t, i| {
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(json!({"access_policy": policy_json(t, a)})))
    })
}

async fn set_policy(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Policy = parse(&body)?;
    with_app(&st, &id, |t, i| {
        let group = resolve_group(t, &b.group)?;
        let a = app_mut(t, i)?;
        a.access_policy = Some(AccessPolicy {
            access_right: b.access_right,
            group,
        });
        let a = t.apps.get(i).ok_or_else(|| not_found("app", &id))?;
        Ok(ok(json!({"access_policy": policy_json(t, a)})))
    })
}

async fn clear_policy(State(st): State<St>, Path(id): Path<String>) -> Res {
    with_app(&st, &id, |t, i| {
        let a = app_mut(t, i)?;
        if a.access_policy.take().is_none() {
            return Err(not_found("access policy for app", &id));
        }
        Ok(no_content())
    })
}

async fn get_counters(State(st): State<St>, Path(id): Path<String>) -> Res {
    let cid = with_app(&st, &id, |t, i| Ok(app_mut(t, i)?.client_id))?;
    Ok(ok(json!(st.tokens.counters(cid))))
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenSel {
    /// User id, UPN or mail.
    user: Option<String>,
    client_id: Option<String>,
}

/// Applies `f` to the refresh tokens matching the selector; returns how many matched.
fn select_tokens(st: &SimState, body: &Bytes, f: impl Fn(&mut crate::tokens::RefreshGrant)) -> Res {
    let b: TokenSel = parse(body)?;
    if b.user.is_none() && b.client_id.is_none() {
        return Err(bad("Give user and/or client_id."));
    }
    let user = match &b.user {
        Some(u) => {
            let dir = st.dir();
            Some(
                dir.tenants
                    .iter()
                    .find_map(|t| t.user_id(u))
                    .ok_or_else(|| not_found("user", u))?,
            )
        }
        None => None,
    };
    let client = match &b.client_id {
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| not_found("app", c))?),
        None => None,
    };
    let mut n = 0;
    for g in st.tokens.inner().refresh.values_mut() {
        if user.is_none_or(|u| g.user_id == u) && client.is_none_or(|c| g.client_id == c) {
            f(g);
            n += 1;
        }
    }
    Ok(ok(json!({"refresh_tokens": n})))
}

/// `POST /_sim/tokens/revoke {user?, client_id?}`: revokes refresh tokens (→ AADSTS50173).
async fn revoke_tokens(State(st): State<St>, body: Bytes) -> Res {
    select_tokens(&st, &body, |g| g.revoked = true)
}

/// `POST /_sim/tokens/expire {user?, client_id?}`: expires refresh tokens now (→ AADSTS70008).
async fn expire_tokens(State(st): State<St>, body: Bytes) -> Res {
    let now = st.now();
    select_tokens(&st, &body, move |g| g.expires = now)
}
