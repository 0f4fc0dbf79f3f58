//! Entra ID (Microsoft identity platform): OIDC discovery, JWKS, instance discovery, the v2 and
//! v1 token endpoints, and a simple /authorize page. OWNER: identity.
//!
//! Errors use Entra's JSON shape: `{"error","error_description":"AADSTSnnn: …\r\nTrace ID: …\r\n
//! Correlation ID: …\r\nTimestamp: …","error_codes":[nnn],"timestamp","trace_id",
//! "correlation_id","error_uri"}`, HTTP 400 (401 for `invalid_client`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

use crate::model::{App, Tenant};
use crate::state::SimState;
use crate::tokens::{self, AuthCode, ClientAuth, RefreshGrant};

type St = Arc<SimState>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token_v2))
        .route("/{tenant}/oauth2/token", axum::routing::post(token_v1))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(oidc_v2),
        )
        .route("/{tenant}/.well-known/openid-configuration", get(oidc_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks_v2))
        .route("/{tenant}/discovery/keys", get(jwks_v1))
        .route("/{tenant}/discovery/instance", get(instance_discovery))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route(
            "/{tenant}/oauth2/authorize",
            get(authorize_v1_get).post(authorize_v1_post),
        )
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An Entra error (`AADSTSnnn`).
#[derive(Debug, Clone)]
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
}

impl AadError {
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        AadError {
            status,
            error,
            code,
            message: message.into(),
            suberror: None,
        }
    }

    fn with_suberror(mut self, s: &'static str) -> Self {
        self.suberror = Some(s);
        self
    }

    /// The JSON body at simulated time `now`.
    pub fn body(&self, now: Timestamp) -> Value {
        let (trace, correlation) = crate::error::request_ids();
        let ts = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let desc = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
            self.code, self.message
        );
        let mut v = json!({
            "error": self.error,
            "error_description": desc,
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        if let Some(s) = self.suberror {
            v["suberror"] = json!(s);
        }
        v
    }

    pub fn response(&self, now: Timestamp) -> Response {
        let mut r = (self.status, axum::Json(self.body(now))).into_response();
        no_store(r.headers_mut());
        r
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn missing(name: &str) -> AadError {
    AadError::new(
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

fn tenant_not_found(t: &str) -> AadError {
    AadError::new(
        "invalid_request",
        90002,
        format!(
            "Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn app_not_found(client_id: &str, tenant: &str) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Tenant resolution
// ---------------------------------------------------------------------------------------------

/// The `{tenant}` path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TenantRef {
    Id(Uuid),
    Common,
    Organizations,
    Consumers,
}

fn resolve_tenant(st: &SimState, seg: &str) -> Result<TenantRef, AadError> {
    match seg.to_ascii_lowercase().as_str() {
        "common" => return Ok(TenantRef::Common),
        "organizations" => return Ok(TenantRef::Organizations),
        "consumers" => return Ok(TenantRef::Consumers),
        _ => {}
    }
    st.dir()
        .tenant(seg)
        .map(|t| TenantRef::Id(t.id))
        .ok_or_else(|| tenant_not_found(seg))
}

/// The tenant an app lives in (for /common and /organizations).
fn tenant_of_app(st: &SimState, client_id: &str) -> Option<Uuid> {
    let id = Uuid::parse_str(client_id).ok()?;
    st.dir()
        .tenants
        .iter()
        .find(|t| t.apps.iter().any(|a| a.client_id == id))
        .map(|t| t.id)
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

fn discovery_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, private"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "x-ms-ests-server",
        HeaderValue::from_static("2.1.0 - calgate-sim"),
    );
    r
}

/// The tenant part of discovery URLs: the GUID for a real tenant, the literal segment otherwise;
/// and the issuer's tenant (`{tenantid}` template for the multi-tenant aliases).
fn discovery_tenant(st: &SimState, seg: &str) -> Result<(String, String), AadError> {
    Ok(match resolve_tenant(st, seg)? {
        TenantRef::Id(id) => (id.to_string(), id.to_string()),
        TenantRef::Common => ("common".into(), "{tenantid}".into()),
        TenantRef::Organizations => ("organizations".into(), "{tenantid}".into()),
        TenantRef::Consumers => (
            "consumers".into(),
            "9188040d-6c67-4c5b-b112-36a304b66dad".into(),
        ),
    })
}

async fn oidc_v2(State(st): State<St>, Path(seg): Path<String>) -> Response {
    let (t, iss_t) = match discovery_tenant(&st, &seg) {
        Ok(v) => v,
        Err(e) => return e.response(st.now()),
    };
    let b = st.base_url();
    let host = b.split("://").nth(1).unwrap_or(b);
    let doc = json!({
        "token_endpoint": format!("{b}/{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{t}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{b}/{iss_t}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{b}/oidc/userinfo"),
        "authorization_endpoint": format!("{b}/{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{t}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{t}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{b}/{t}/kerberos"),
        "tenant_region_scope": "WW",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    discovery_headers(axum::Json(doc).into_response())
}

async fn oidc_v1(State(st): State<St>, Path(seg): Path<String>) -> Response {
    let (t, iss_t) = match discovery_tenant(&st, &seg) {
        Ok(v) => v,
        Err(e) => return e.response(st.now()),
    };
    let b = st.base_url();
    let host = b.split("://").nth(1).unwrap_or(b);
    let doc = json!({
        "token_endpoint": format!("{b}/{t}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{t}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": format!("https://sts.windows.net/{iss_t}/"),
        "microsoft_multi_refresh_token": true,
        "authorization_endpoint": format!("{b}/{t}/oauth2/authorize"),
        "device_authorization_endpoint": format!("{b}/{t}/oauth2/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{t}/oauth2/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
        "check_session_iframe": format!("{b}/{t}/oauth2/checksession"),
        "userinfo_endpoint": format!("{b}/{t}/openid/userinfo"),
        "kerberos_endpoint": format!("{b}/{t}/kerberos"),
        "tenant_region_scope": "WW",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    discovery_headers(axum::Json(doc).into_response())
}

fn jwks(st: &SimState, seg: &str, v2: bool) -> Response {
    let (_, iss_t) = match discovery_tenant(st, seg) {
        Ok(v) => v,
        Err(e) => return e.response(st.now()),
    };
    let key = match st.tokens.key() {
        Ok(k) => k,
        Err(e) => {
            return AadError::new("temporarily_unavailable", 90033, e).response(st.now());
        }
    };
    let issuer = if v2 {
        format!("{}/{iss_t}/v2.0", st.base_url())
    } else {
        format!("https://sts.windows.net/{iss_t}/")
    };
    discovery_headers(axum::Json(json!({"keys": [key.jwk(&issuer)]})).into_response())
}

async fn jwks_v2(State(st): State<St>, Path(seg): Path<String>) -> Response {
    jwks(&st, &seg, true)
}

async fn jwks_v1(State(st): State<St>, Path(seg): Path<String>) -> Response {
    jwks(&st, &seg, false)
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: MSAL's instance
/// discovery. Answers for the simulator's own host.
async fn instance_discovery(
    State(st): State<St>,
    Path(_seg): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let b = st.base_url();
    let host = b.split("://").nth(1).unwrap_or(b).to_owned();
    let tenant = q
        .get("authorization_endpoint")
        .and_then(|u| u.split("://").nth(1))
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|t| !t.is_empty())
        .unwrap_or("common")
        .to_owned();
    let doc = json!({
        "tenant_discovery_endpoint": format!("{b}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    });
    discovery_headers(axum::Json(doc).into_response())
}

// ---------------------------------------------------------------------------------------------
// Token endpoints
// ---------------------------------------------------------------------------------------------

/// Form parameters (first value wins) plus HTTP Basic client credentials.
#[derive(Debug, Default)]
struct Params {
    form: HashMap<String, String>,
    basic: Option<(String, String)>,
}

impl Params {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        let mut form = HashMap::new();
        if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
            for (k, v) in pairs {
                form.entry(k).or_insert(v);
            }
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
            })
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (u, p) = s.split_once(':')?;
                let dec = |x: &str| {
                    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={x}"))
                        .ok()
                        .and_then(|v| v.into_iter().next())
                        .map(|(_, v)| v)
                        .unwrap_or_else(|| x.to_owned())
                };
                Some((dec(u), dec(p)))
            });
        Params { form, basic }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.form
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn client_id(&self) -> Option<&str> {
        self.get("client_id")
            .or_else(|| self.basic.as_ref().map(|(u, _)| u.as_str()))
    }

    fn client_secret(&self) -> Option<&str> {
        self.get("client_secret")
            .or_else(|| self.basic.as_ref().map(|(_, p)| p.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    V2,
    V1,
}

async fn token_v2(
    State(st): State<St>,
    Path(seg): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(st, seg, headers, body, Endpoint::V2)
}

async fn token_v1(
    State(st): State<St>,
    Path(seg): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(st, seg, headers, body, Endpoint::V1)
}

fn token(st: St, seg: String, headers: HeaderMap, body: Bytes, ep: Endpoint) -> Response {
    let p = Params::parse(&headers, &body);
    let client = p.client_id().and_then(|c| Uuid::parse_str(c).ok());
    if let Some(c) = client {
        st.tokens.count(c, |c| c.token_requests += 1);
    }
    match token_inner(&st, &seg, &p, ep) {
        Ok(v) => {
            let mut r = axum::Json(v).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => {
            if let Some(c) = client {
                st.tokens.count(c, |c| c.token_errors += 1);
            }
            e.response(st.now())
        }
    }
}

fn token_inner(st: &SimState, seg: &str, p: &Params, ep: Endpoint) -> Result<Value, AadError> {
    let tref = resolve_tenant(st, seg)?;
    let grant = p.get("grant_type").ok_or_else(|| missing("grant_type"))?;
    if ep == Endpoint::V2 && p.get("resource").is_some() {
        return Err(AadError::new(
            "invalid_request",
            901002,
            "The 'resource' request parameter is not supported.",
        ));
    }
    match grant {
        "client_credentials" => client_credentials(st, seg, &tref, p, ep),
        "authorization_code" => authorization_code(st, seg, &tref, p, ep),
        "refresh_token" => refresh_token(st, seg, &tref, p, ep),
        other => Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// The scope parameter of a v2 request: its resource and the permission names.
#[derive(Debug, Clone)]
struct ScopeReq {
    /// Canonical resource (`https://graph.microsoft.com`).
    resource: String,
    /// Permission names on the resource (`Calendars.Read`), without OIDC scopes. `.default` kept.
    perms: Vec<String>,
    /// OIDC scopes present (`openid`, `profile`, `email`, `offline_access`).
    oidc: BTreeSet<String>,
}

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

fn canonical_resource(r: &str) -> Option<&'static str> {
    let r = r.trim_end_matches('/').to_ascii_lowercase();
    match r.as_str() {
        "https://graph.microsoft.com" | tokens::GRAPH_APP_ID => Some(tokens::GRAPH_RESOURCE),
        "https://outlook.office365.com" | "https://outlook.office.com" | tokens::OUTLOOK_APP_ID => {
            Some(tokens::OUTLOOK_RESOURCE)
        }
        _ => None,
    }
}

fn resource_not_found(name: &str, tenant: &str) -> AadError {
    AadError::new(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {name} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    )
}

/// Parses a v2 `scope`: one resource (700022), known (500011). Bare names (`Calendars.Read`)
/// mean Graph, as Entra does. `require_default` → every resource scope must be `/.default` (1002012).
fn parse_scope(scope: &str, tenant: &str, require_default: bool) -> Result<ScopeReq, AadError> {
    let mut resource: Option<&'static str> = None;
    let mut perms = Vec::new();
    let mut oidc = BTreeSet::new();
    for s in scope.split_whitespace() {
        if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
            oidc.insert(s.to_ascii_lowercase());
            continue;
        }
        let (res, perm) = match s.rfind('/') {
            Some(i) if s.contains("://") || Uuid::parse_str(&s[..i]).is_ok() => {
                (&s[..i], &s[i + 1..])
            }
            _ => (tokens::GRAPH_RESOURCE, s),
        };
        if require_default && perm != ".default" {
            return Err(AadError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        let canon = canonical_resource(res).ok_or_else(|| resource_not_found(res, tenant))?;
        match resource {
            Some(r) if r != canon => {
                return Err(AadError::new(
                    "invalid_scope",
                    700022,
                    format!(
                        "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                    ),
                ));
            }
            _ => resource = Some(canon),
        }
        if !perm.is_empty() {
            perms.push(perm.to_owned());
        }
    }
    let Some(resource) = resource else {
        if require_default {
            return Err(AadError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        // Only OIDC scopes: the token is for Graph's user.read, as Entra does.
        return Ok(ScopeReq {
            resource: tokens::GRAPH_RESOURCE.into(),
            perms: vec!["User.Read".into()],
            oidc,
        });
    };
    Ok(ScopeReq {
        resource: resource.into(),
        perms,
        oidc,
    })
}

/// Finds the tenant for a request: the path tenant, or the app's tenant for /common and
/// /organizations (delegated flows only).
fn request_tenant(st: &SimState, tref: &TenantRef, client_id: &str) -> Option<Uuid> {
    match tref {
        TenantRef::Id(id) => Some(*id),
        _ => tenant_of_app(st, client_id),
    }
}

/// Checks the client's credential: a secret (form or Basic) or a certificate assertion.
fn authenticate_client(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    p: &Params,
    allow_public: bool,
) -> Result<ClientAuth, AadError> {
    let now = st.now();
    if let Some(assertion) = p.get("client_assertion") {
        let ty = p
            .get("client_assertion_type")
            .ok_or_else(|| missing("client_assertion_type"))?;
        if ty != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
            return Err(AadError::new(
                "invalid_request",
                50027,
                "JWT token is invalid or malformed. The client_assertion_type is not supported.",
            ));
        }
        verify_assertion(st, tenant, app, assertion, now)?;
        return Ok(ClientAuth::Certificate);
    }
    if let Some(secret) = p.client_secret() {
        let matching: Vec<_> = app.secrets.iter().filter(|s| s.value == secret).collect();
        if matching.is_empty() {
            return Err(AadError::new(
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        if matching.iter().all(|s| now >= s.expires || now < s.start) {
            return Err(AadError::new(
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        return Ok(ClientAuth::Secret);
    }
    if allow_public && app.public_client {
        return Ok(ClientAuth::Public);
    }
    Err(AadError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ))
}

fn fmt_7(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
        .to_string()
        .chars()
        .take(27)
        .collect::<String>()
        + "Z"
}

/// Verifies a `private_key_jwt` client assertion against the app's certificates.
fn verify_assertion(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    assertion: &str,
    now: Timestamp,
) -> Result<(), AadError> {
    let malformed = || {
        AadError::new(
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let (header, claims, input, sig) = tokens::split_jws(assertion).ok_or_else(malformed)?;
    let cid = app.client_id.to_string();
    // iss = sub = client_id
    if claims["iss"].as_str() != Some(cid.as_str()) || claims["sub"].as_str() != Some(cid.as_str())
    {
        return Err(AadError::new(
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    // aud = the token endpoint of this tenant (by GUID or domain).
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        let b = st.base_url();
        std::iter::once(tenant.id.to_string())
            .chain(tenant.domains.iter().cloned())
            .any(|t| {
                a.eq_ignore_ascii_case(&format!("{b}/{t}/oauth2/v2.0/token"))
                    || a.eq_ignore_ascii_case(&format!("{b}/{t}/oauth2/token"))
            })
    };
    let aud_match = match &claims["aud"] {
        Value::String(a) => aud_ok(a),
        Value::Array(v) => v.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_match {
        return Err(AadError::new(
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'. Client assertion audience claim does not match the token endpoint of tenant '{}'.",
                claims["aud"].as_str().unwrap_or(""),
                tenant.id
            ),
        ));
    }
    // Validity window with five minutes of skew.
    let skew = 300;
    let n = now.as_second();
    // MSAL Python sends float seconds.
    let num = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
    let exp = num(&claims["exp"]);
    let nbf = num(&claims["nbf"]).or(num(&claims["iat"]));
    let Some(exp) = exp else {
        return Err(malformed());
    };
    if n > exp + skew || nbf.is_some_and(|nbf| n + skew < nbf) {
        let t = |s: i64| Timestamp::from_second(s).map(fmt_7).unwrap_or_default();
        return Err(AadError::new(
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                fmt_7(now),
                t(nbf.unwrap_or(exp)),
                t(exp)
            ),
        ));
    }
    // Key lookup by x5t#S256 or x5t.
    // base64url per RFC 7515; MSAL Python sends standard base64 with padding: accept both.
    let thumb = |v: &Value| {
        v.as_str().and_then(|t| {
            let t: String = t
                .trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            URL_SAFE_NO_PAD.decode(t).ok()
        })
    };
    let s256 = thumb(&header["x5t#S256"]);
    let s1 = thumb(&header["x5t"]);
    let thumb_hex = s1
        .as_deref()
        .or(s256.as_deref())
        .map(tokens::hex)
        .unwrap_or_default();
    let cert = app.certificates.iter().find(|c| {
        s256.as_deref().is_some_and(|t| t == c.sha256.as_slice())
            || s1.as_deref().is_some_and(|t| t == c.sha1.as_slice())
    });
    let sig_fail = |reason: &str| {
        AadError::new(
            "invalid_client",
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used by client: '{thumb_hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global endpoint.]",
                app.client_id
            ),
        )
    };
    let Some(cert) = cert else {
        return Err(sig_fail("The key was not found."));
    };
    if now >= cert.expires || now < cert.start {
        return Err(sig_fail("The key used is expired."));
    }
    let alg = header["alg"].as_str().unwrap_or("");
    let Some(key) = cert_public_key(&cert.der) else {
        return Err(sig_fail("The key was not found."));
    };
    if !tokens::verify_sig(alg, &input, &sig, &key) {
        return Err(sig_fail(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    Ok(())
}

/// The RSA public key of a DER certificate.
pub fn cert_public_key(der: &[u8]) -> Option<jsonwebtoken::DecodingKey> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match cert.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| -> Vec<u8> {
                let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[i..].to_vec()
            };
            Some(jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &strip(rsa.modulus),
                &strip(rsa.exponent),
            ))
        }
        _ => None,
    }
}

fn internal(e: String) -> AadError {
    AadError::new("temporarily_unavailable", 90033, e)
}

fn app_token_response(issued: &tokens::Issued, ep: Endpoint, resource: &str) -> Value {
    match ep {
        Endpoint::V2 => json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.token,
        }),
        Endpoint::V1 => json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in.to_string(),
            "ext_expires_in": issued.expires_in.to_string(),
            "expires_on": issued.expires_on.to_string(),
            "not_before": issued.not_before.to_string(),
            "resource": resource,
            "access_token": issued.token,
        }),
    }
}

fn client_credentials(
    st: &SimState,
    seg: &str,
    tref: &TenantRef,
    p: &Params,
    ep: Endpoint,
) -> Result<Value, AadError> {
    let TenantRef::Id(tid) = tref else {
        return Err(AadError::new(
            "invalid_request",
            9001023,
            "The grant type 'client_credentials' is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    };
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let dir = st.dir();
    let tenant = dir
        .tenant_by_id(*tid)
        .ok_or_else(|| tenant_not_found(seg))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, seg))?;
    let resource = match ep {
        Endpoint::V2 => {
            let scope = p.get("scope").ok_or_else(|| missing("scope"))?;
            parse_scope(scope, seg, true)?.resource
        }
        Endpoint::V1 => {
            let r = p.get("resource").ok_or_else(|| missing("resource"))?;
            canonical_resource(r)
                .ok_or_else(|| resource_not_found(r, seg))?
                .to_owned()
        }
    };
    let auth = authenticate_client(st, tenant, app, p, false)?;
    let issued = tokens::issue_app_token(st, tenant, app, &resource, auth).map_err(internal)?;
    Ok(app_token_response(&issued, ep, &resource))
}

// ---------------------------------------------------------------------------------------------
// Delegated: authorization code + PKCE, refresh tokens
// ---------------------------------------------------------------------------------------------

fn invalid_grant(code: u32, msg: impl Into<String>) -> AadError {
    AadError::new("invalid_grant", code, msg)
}

/// Delegated permissions consented for (app, user): tenant-wide admin consent ∪ the user's own,
/// keyed by lowercase name (permission names are case-insensitive), valued as consented.
fn consented(st: &SimState, app: &App, user: Uuid) -> BTreeMap<String, String> {
    let mut s: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |x: &String| {
        s.entry(x.to_ascii_lowercase()).or_insert_with(|| x.clone());
    };
    app.delegated_consent.iter().for_each(&mut add);
    if let Some(u) = st.tokens.inner().user_consent.get(&(app.client_id, user)) {
        u.iter().for_each(&mut add);
    }
    s
}

/// The delegated permissions a request asks for (`.default` = everything consented).
fn wanted_perms(req: &ScopeReq, consent: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for p in &req.perms {
        if p == ".default" {
            out.extend(consent.values().cloned());
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn consent_error(app: &App) -> AadError {
    invalid_grant(
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
            app.client_id, app.display_name
        ),
    )
    .with_suberror("consent_required")
}

/// Issues the delegated token response for (tenant, app, user, scopes).
#[allow(clippy::too_many_arguments)]
fn delegated_response(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    user_id: Uuid,
    scopes: &[String],
    nonce: Option<&str>,
    auth: ClientAuth,
    ep: Endpoint,
) -> Result<Value, AadError> {
    let user = tenant.user_by_id(user_id).ok_or_else(|| {
        invalid_grant(
            50034,
            "The user account does not exist in the directory. To sign into this application, the account must be added to the directory.",
        )
    })?;
    if !user.account_enabled {
        return Err(invalid_grant(50057, "The user account is disabled."));
    }
    let req = parse_scope(&scopes.join(" "), &tenant.id.to_string(), false)?;
    let consent = consented(st, app, user_id);
    let mut granted: Vec<String> = Vec::new();
    for w in wanted_perms(&req, &consent) {
        if !consent.contains_key(&w.to_ascii_lowercase()) {
            return Err(consent_error(app));
        }
        if !granted.iter().any(|g| g.eq_ignore_ascii_case(&w)) {
            granted.push(w);
        }
    }
    // Canonical permission names as consented.
    let mut scp: Vec<String> = granted;
    scp.sort_by_key(|s| s.to_ascii_lowercase());
    let mut scp_all = scp.clone();
    for o in ["openid", "profile", "email"] {
        if req.oidc.contains(o) {
            scp_all.push(o.to_owned());
        }
    }
    let issued =
        tokens::issue_delegated_token(st, tenant, app, user, &req.resource, &scp_all, auth)
            .map_err(internal)?;
    let scope_str = {
        let mut v: Vec<String> = if req.resource == tokens::GRAPH_RESOURCE {
            scp.iter()
                .map(|s| format!("{}/{s}", tokens::GRAPH_RESOURCE))
                .collect()
        } else {
            scp.iter()
                .map(|s| format!("{}/{s}", req.resource))
                .collect()
        };
        v.extend(
            req.oidc
                .iter()
                .filter(|o| o.as_str() != "offline_access")
                .cloned(),
        );
        if req.oidc.contains("offline_access") {
            v.push("offline_access".into());
        }
        v.join(" ")
    };
    let mut out = match ep {
        Endpoint::V2 => json!({
            "token_type": "Bearer",
            "scope": scope_str,
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.token,
        }),
        Endpoint::V1 => json!({
            "token_type": "Bearer",
            "scope": scp.join(" "),
            "expires_in": issued.expires_in.to_string(),
            "ext_expires_in": issued.expires_in.to_string(),
            "expires_on": issued.expires_on.to_string(),
            "not_before": issued.not_before.to_string(),
            "resource": req.resource,
            "access_token": issued.token,
        }),
    };
    if req.oidc.contains("offline_access") {
        let rt = tokens::opaque("1.AQ", 180);
        let now = st.now();
        st.tokens.inner().refresh.insert(
            rt.clone(),
            RefreshGrant {
                tenant_id: tenant.id,
                client_id: app.client_id,
                user_id,
                scopes: scopes.to_vec(),
                issued: now,
                expires: now + SignedDuration::from_secs(tokens::REFRESH_TOKEN_LIFETIME_S),
                revoked: false,
            },
        );
        out["refresh_token"] = json!(rt);
    }
    if req.oidc.contains("openid") {
        let id = tokens::issue_id_token(st, tenant, app, user, nonce).map_err(internal)?;
        out["id_token"] = json!(id);
    }
    Ok(out)
}

/// The scopes a delegated grant is redeemed for. v2: the request's `scope`, else the grant's.
/// v1 (`scope` is not a v1 parameter): the grant's scopes, or — when `resource=` names another
/// resource than the grant's, or the authorize request had none — `{resource}/.default` (the
/// app's configured, consented permissions on it) with the grant's OIDC scopes. `resource` is
/// required in one of the authorize and token requests (900144). v1 always returns a refresh
/// token (`offline_access` implied).
fn grant_scopes(
    p: &Params,
    grant: &[String],
    seg: &str,
    ep: Endpoint,
) -> Result<Vec<String>, AadError> {
    if ep == Endpoint::V2 {
        return Ok(match p.get("scope") {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => grant.to_vec(),
        });
    }
    let is_oidc = |s: &str| OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s));
    let grant_resource = if grant.iter().any(|s| !is_oidc(s)) {
        Some(parse_scope(&grant.join(" "), seg, false)?.resource)
    } else {
        None
    };
    let mut out: Vec<String> = match (p.get("resource"), grant_resource) {
        (None, None) => return Err(missing("resource")),
        (None, Some(_)) => grant.to_vec(),
        (Some(r), g) => {
            let canon = canonical_resource(r).ok_or_else(|| resource_not_found(r, seg))?;
            if g.as_deref() == Some(canon) {
                grant.to_vec()
            } else {
                grant
                    .iter()
                    .filter(|s| is_oidc(s))
                    .cloned()
                    .chain([format!("{canon}/.default")])
                    .collect()
            }
        }
    };
    if !out.iter().any(|s| s.eq_ignore_ascii_case("offline_access")) {
        out.push("offline_access".into());
    }
    Ok(out)
}

fn pkce_ok(challenge: &(String, String), verifier: &str) -> bool {
    let (c, method) = challenge;
    if method.eq_ignore_ascii_case("S256") {
        let d = sha2::Sha256::digest(verifier.as_bytes());
        URL_SAFE_NO_PAD.encode(d) == *c
    } else {
        verifier == c
    }
}

fn authorization_code(
    st: &SimState,
    seg: &str,
    tref: &TenantRef,
    p: &Params,
    ep: Endpoint,
) -> Result<Value, AadError> {
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let code = p.get("code").ok_or_else(|| missing("code"))?;
    let tid = request_tenant(st, tref, client_id).ok_or_else(|| app_not_found(client_id, seg))?;
    let dir = st.dir();
    let tenant = dir.tenant_by_id(tid).ok_or_else(|| tenant_not_found(seg))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, seg))?;
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| missing("redirect_uri"))?;
    let auth = authenticate_client(st, tenant, app, p, true)?;
    let now = st.now();
    let (grant, scopes) = {
        let mut inner = st.tokens.inner();
        let Some(c) = inner.codes.get_mut(code) else {
            return Err(invalid_grant(
                9002313,
                "Invalid request. Request is malformed or invalid. The provided authorization code is invalid.",
            ));
        };
        if c.client_id != app.client_id || c.tenant_id != tenant.id {
            return Err(invalid_grant(
                700005,
                "Provided Authorization Code is intended to use against other tenant or application.",
            ));
        }
        if c.redeemed {
            return Err(invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        if now >= c.expires {
            return Err(invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ));
        }
        if c.redirect_uri != redirect_uri {
            return Err(invalid_grant(
                500112,
                format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                    c.redirect_uri
                ),
            ));
        }
        if let Some(ch) = &c.challenge {
            let Some(v) = p.get("code_verifier") else {
                return Err(invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            };
            if !pkce_ok(ch, v) {
                return Err(invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        }
        let scopes = grant_scopes(p, &c.scopes, seg, ep)?;
        c.redeemed = true;
        (c.clone(), scopes)
    };
    delegated_response(
        st,
        tenant,
        app,
        grant.user_id,
        &scopes,
        grant.nonce.as_deref(),
        auth,
        ep,
    )
}

fn refresh_token(
    st: &SimState,
    seg: &str,
    tref: &TenantRef,
    p: &Params,
    ep: Endpoint,
) -> Result<Value, AadError> {
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let rt = p
        .get("refresh_token")
        .ok_or_else(|| missing("refresh_token"))?;
    let tid = request_tenant(st, tref, client_id).ok_or_else(|| app_not_found(client_id, seg))?;
    let dir = st.dir();
    let tenant = dir.tenant_by_id(tid).ok_or_else(|| tenant_not_found(seg))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, seg))?;
    let auth = authenticate_client(st, tenant, app, p, true)?;
    let now = st.now();
    let grant = st.tokens.inner().refresh.get(rt).cloned();
    let Some(grant) = grant else {
        return Err(invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is malformed or not valid.",
        ));
    };
    if grant.client_id != app.client_id || grant.tenant_id != tenant.id {
        return Err(invalid_grant(
            700005,
            "Provided refresh token is intended to use against other tenant or application.",
        ));
    }
    if grant.revoked {
        return Err(invalid_grant(
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                fmt_7(grant.issued),
                fmt_7(now)
            ),
        ));
    }
    if now >= grant.expires {
        let days = (now - grant.issued).get_hours() / 24;
        return Err(invalid_grant(
            70008,
            format!(
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource. The refresh token was issued on {} and was inactive for {days}.00:00:00.",
                fmt_7(grant.issued)
            ),
        ));
    }
    let scopes = grant_scopes(p, &grant.scopes, seg, ep)?;
    delegated_response(st, tenant, app, grant.user_id, &scopes, None, auth, ep)
}

// ---------------------------------------------------------------------------------------------
// /authorize
// ---------------------------------------------------------------------------------------------

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The authorize request's parameters (query on GET, form on POST).
#[derive(Debug, Clone, Default)]
struct AuthzReq {
    q: HashMap<String, String>,
}

impl AuthzReq {
    fn get(&self, k: &str) -> Option<&str> {
        self.q.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The values carried through the page's hidden fields.
const AUTHZ_KEYS: [&str; 12] = [
    "client_id",
    "response_type",
    "redirect_uri",
    "response_mode",
    "scope",
    "resource",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "login_hint",
];

/// An error page (when the redirect URI can't be trusted) — Entra shows its own page.
fn error_page(st: &SimState, e: &AadError) -> Response {
    let body = e.body(st.now());
    let html = format!(
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body><h1>Sorry, but we’re having trouble signing you in.</h1><p id=\"error\">{}</p><pre>{}</pre></body></html>",
        esc(e.error),
        esc(body["error_description"].as_str().unwrap_or(""))
    );
    (StatusCode::BAD_REQUEST, Html(html)).into_response()
}

/// `302 Found` with `Location`, as Entra redirects.
fn found(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(v) => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect URI").into_response(),
    }
}

/// Sends the result to the client: query, fragment or form_post.
fn deliver(redirect_uri: &str, mode: &str, params: &[(&str, String)]) -> Response {
    let enc = serde_urlencoded::to_string(params).unwrap_or_default();
    match mode {
        "form_post" => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                        esc(k),
                        esc(v)
                    )
                })
                .collect();
            Html(format!(
                "<!DOCTYPE html><html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\"><form method=\"POST\" action=\"{}\">{inputs}<noscript><input type=\"submit\" value=\"Continue\"/></noscript></form></body></html>",
                esc(redirect_uri)
            ))
            .into_response()
        }
        "fragment" => found(&format!("{redirect_uri}#{enc}")),
        _ => {
            let sep = if redirect_uri.contains('?') { '&' } else { '?' };
            found(&format!("{redirect_uri}{sep}{enc}"))
        }
    }
}

fn redirect_error(req: &AuthzReq, redirect_uri: &str, error: &str, desc: &str) -> Response {
    let mut params = vec![
        ("error", error.to_owned()),
        ("error_description", desc.to_owned()),
    ];
    if let Some(s) = req.get("state") {
        params.push(("state", s.to_owned()));
    }
    deliver(
        redirect_uri,
        req.get("response_mode").unwrap_or("query"),
        &params,
    )
}

/// A registered redirect URI matches exactly; for `http://localhost` and `http://127.0.0.1`
/// the port is ignored, as Entra does for loopback redirect URIs (native apps, MSAL).
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let split = |u: &str| -> Option<(String, String)> {
        let rest = u.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        };
        let loopback = ["localhost", "127.0.0.1", "[::1]"];
        loopback
            .iter()
            .any(|l| host.eq_ignore_ascii_case(l))
            .then(|| (host.to_ascii_lowercase(), path.to_owned()))
    };
    match (split(registered), split(given)) {
        (Some((h1, p1)), Some((h2, p2))) => h1 == h2 && (p1 == p2 || p1 == "/"),
        _ => false,
    }
}

/// Validates client and redirect URI. Errors here are shown on a page (never redirected).
fn authz_app(st: &SimState, seg: &str, req: &AuthzReq) -> Result<(Uuid, String), AadError> {
    let tref = resolve_tenant(st, seg)?;
    let client_id = req.get("client_id").ok_or_else(|| missing("client_id"))?;
    let tid = request_tenant(st, &tref, client_id).ok_or_else(|| app_not_found(client_id, seg))?;
    let dir = st.dir();
    let tenant = dir.tenant_by_id(tid).ok_or_else(|| tenant_not_found(seg))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, seg))?;
    let ru = req
        .get("redirect_uri")
        .ok_or_else(|| AadError::new("invalid_request", 900971, "No reply address provided."))?;
    if !app.redirect_uris.iter().any(|r| redirect_matches(r, ru)) {
        return Err(AadError::new(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{ru}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                app.client_id
            ),
        ));
    }
    Ok((tid, ru.to_owned()))
}

async fn authorize_get(
    State(st): State<St>,
    Path(seg): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&st, &seg, AuthzReq { q }, Endpoint::V2)
}

async fn authorize_post(State(st): State<St>, Path(seg): Path<String>, body: Bytes) -> Response {
    authorize(&st, &seg, form_req(&body), Endpoint::V2)
}

/// v1 (`/oauth2/authorize`): `resource=` instead of `scope`, same pages.
async fn authorize_v1_get(
    State(st): State<St>,
    Path(seg): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&st, &seg, AuthzReq { q }, Endpoint::V1)
}

async fn authorize_v1_post(State(st): State<St>, Path(seg): Path<String>, body: Bytes) -> Response {
    authorize(&st, &seg, form_req(&body), Endpoint::V1)
}

fn form_req(body: &[u8]) -> AuthzReq {
    let mut q = HashMap::new();
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        for (k, v) in pairs {
            q.entry(k).or_insert(v);
        }
    }
    AuthzReq { q }
}

fn hidden_fields(req: &AuthzReq) -> String {
    AUTHZ_KEYS
        .iter()
        .filter_map(|k| req.get(k).map(|v| (k, v)))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

/// One handler for the whole page flow (v2 and v1). The `step` field of a POST drives it:
/// (none) → sign-in page; `signin` (with `login`) → consent page or code; `consent` (with
/// `accept=yes|no`) → code or `access_denied`.
///
/// v1 ignores `scope` (permissions are configured on the app): the request is for `resource`'s
/// configured delegated permissions — `{resource}/.default` — and the code always carries
/// `openid` and `offline_access` (v1 returns an ID token and a refresh token). Without
/// `resource`, the token request must name it.
fn authorize(st: &SimState, seg: &str, req: AuthzReq, ep: Endpoint) -> Response {
    let (tid, redirect_uri) = match authz_app(st, seg, &req) {
        Ok(v) => v,
        Err(e) => return error_page(st, &e),
    };
    let client_id = req.get("client_id").unwrap_or("").to_owned();
    if req.get("response_type") != Some("code") {
        return redirect_error(
            &req,
            &redirect_uri,
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is required by the simulator; the implicit flow is not supported.",
        );
    }
    let scope = match ep {
        Endpoint::V2 => match req.get("scope") {
            Some(s) => s.to_owned(),
            None => {
                return redirect_error(
                    &req,
                    &redirect_uri,
                    "invalid_request",
                    "AADSTS900144: The request body must contain the following parameter: 'scope'.",
                );
            }
        },
        Endpoint::V1 => match req.get("resource") {
            None => "openid offline_access".to_owned(),
            Some(r) => match canonical_resource(r) {
                Some(canon) => format!("{canon}/.default openid offline_access"),
                None => {
                    let e = resource_not_found(r, &tid.to_string());
                    return redirect_error(
                        &req,
                        &redirect_uri,
                        e.error,
                        &format!("AADSTS{}: {}", e.code, e.message),
                    );
                }
            },
        },
    };
    if let Some(m) = req.get("code_challenge_method")
        && !m.eq_ignore_ascii_case("S256")
        && m != "plain"
    {
        return redirect_error(
            &req,
            &redirect_uri,
            "invalid_request",
            "AADSTS501491: Invalid size of Code_Challenge parameter or unsupported code_challenge_method.",
        );
    }
    let mode = req.get("response_mode").unwrap_or("query").to_owned();
    if !["query", "fragment", "form_post"].contains(&mode.as_str()) {
        return redirect_error(
            &req,
            &redirect_uri,
            "invalid_request",
            "AADSTS900144: The request is not valid: unsupported response_mode.",
        );
    }
    let tstr = tid.to_string();
    // v1 without `resource`: nothing to consent to beyond what is configured.
    let parsed = if ep == Endpoint::V1 && req.get("resource").is_none() {
        parse_scope(&format!("{scope} .default"), &tstr, false)
    } else {
        parse_scope(&scope, &tstr, false)
    };
    let sreq = match parsed {
        Ok(s) => s,
        Err(e) => {
            return redirect_error(
                &req,
                &redirect_uri,
                e.error,
                &format!("AADSTS{}: {}", e.code, e.message),
            );
        }
    };
    let step = req.get("step").unwrap_or("");
    let action = match ep {
        Endpoint::V2 => format!("{}/{seg}/oauth2/v2.0/authorize", st.base_url()),
        Endpoint::V1 => format!("{}/{seg}/oauth2/authorize", st.base_url()),
    };
    // Who signs in.
    let user = {
        let dir = st.dir();
        let Some(t) = dir.tenant_by_id(tid) else {
            return error_page(st, &tenant_not_found(seg));
        };
        match step {
            "signin" | "consent" => {
                let login = req.get("login").or(req.get("login_hint")).unwrap_or("");
                t.user(login).map(|u| {
                    (
                        u.id,
                        u.display_name.clone(),
                        u.upn.clone(),
                        u.account_enabled,
                    )
                })
            }
            _ => None,
        }
    };
    if step.is_empty() {
        // Sign-in page: the tenant's users.
        let dir = st.dir();
        let Some(t) = dir.tenant_by_id(tid) else {
            return error_page(st, &tenant_not_found(seg));
        };
        let hint = req.get("login_hint").unwrap_or("");
        let options: String = t
            .users()
            .filter(|u| u.account_enabled && u.kind == crate::model::MailboxKind::User)
            .map(|u| {
                let sel = if u.upn.eq_ignore_ascii_case(hint) {
                    " selected"
                } else {
                    ""
                };
                format!(
                    "<option value=\"{}\"{sel}>{} ({})</option>",
                    esc(&u.upn),
                    esc(&u.display_name),
                    esc(&u.upn)
                )
            })
            .collect();
        return Html(format!(
            "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body><h1>Sign in</h1><p>{} (simulated tenant)</p><form method=\"POST\" action=\"{}\">{}<input type=\"hidden\" name=\"step\" value=\"signin\"/><label>Account <select name=\"login\">{options}</select></label> <button type=\"submit\">Sign in</button></form></body></html>",
            esc(&t.display_name),
            esc(&action),
            hidden_fields(&req)
        ))
        .into_response();
    }
    let Some((user_id, user_name, user_upn, enabled)) = user else {
        return redirect_error(
            &req,
            &redirect_uri,
            "invalid_request",
            "AADSTS50034: The user account does not exist in the directory. To sign into this application, the account must be added to the directory.",
        );
    };
    if !enabled {
        return redirect_error(
            &req,
            &redirect_uri,
            "invalid_request",
            "AADSTS50057: The user account is disabled.",
        );
    }
    // Consent.
    let (app_name, consent) = {
        let dir = st.dir();
        let Some(app) = dir.tenant_by_id(tid).and_then(|t| t.app(&client_id)) else {
            return error_page(st, &app_not_found(&client_id, seg));
        };
        (app.display_name.clone(), consented(st, app, user_id))
    };
    let missing_perms: Vec<String> = sreq
        .perms
        .iter()
        .filter(|p| p.as_str() != ".default" && !consent.contains_key(&p.to_ascii_lowercase()))
        .cloned()
        .collect();
    let force_consent = step == "signin"
        && match req.get("prompt") {
            Some("consent") => true,
            // v1 only; the simulator has no administrators: it is a user consent prompt.
            Some("admin_consent") => ep == Endpoint::V1,
            _ => false,
        };
    if step == "consent" {
        match req.get("accept") {
            Some("yes") => {
                let Ok(cid) = Uuid::parse_str(&client_id) else {
                    return error_page(st, &app_not_found(&client_id, seg));
                };
                st.tokens
                    .inner()
                    .user_consent
                    .entry((cid, user_id))
                    .or_default()
                    .extend(
                        sreq.perms
                            .iter()
                            .filter(|p| p.as_str() != ".default")
                            .cloned(),
                    );
            }
            _ => {
                return redirect_error(
                    &req,
                    &redirect_uri,
                    "access_denied",
                    "AADSTS65004: User declined to consent to access the app.",
                );
            }
        }
    } else if !missing_perms.is_empty() || force_consent {
        if req.get("prompt") == Some("none") {
            return redirect_error(
                &req,
                &redirect_uri,
                "consent_required",
                &format!(
                    "AADSTS65001: The user or administrator has not consented to use the application with ID '{client_id}' named '{app_name}'. Send an interactive authorization request for this user and resource."
                ),
            );
        }
        // v1: the app's configured delegated permissions (those consented for it).
        let perms = match ep {
            Endpoint::V2 => sreq.perms.clone(),
            Endpoint::V1 => wanted_perms(&sreq, &consent),
        };
        let list: String = perms
            .iter()
            .map(|p| format!("<li>{}</li>", esc(p)))
            .collect();
        return Html(format!(
            "<!DOCTYPE html><html><head><title>Permissions requested</title></head><body><h1>Permissions requested</h1><p>{} wants to access your data as {} ({}):</p><ul>{list}</ul><form method=\"POST\" action=\"{}\">{}<input type=\"hidden\" name=\"step\" value=\"consent\"/><input type=\"hidden\" name=\"login\" value=\"{}\"/><button type=\"submit\" name=\"accept\" value=\"yes\">Accept</button> <button type=\"submit\" name=\"accept\" value=\"no\">Cancel</button></form></body></html>",
            esc(&app_name),
            esc(&user_name),
            esc(&user_upn),
            esc(&action),
            hidden_fields(&req),
            esc(&user_upn)
        ))
        .into_response();
    }
    // Issue the code.
    let Ok(cid) = Uuid::parse_str(&client_id) else {
        return error_page(st, &app_not_found(&client_id, seg));
    };
    let code = tokens::opaque("1.AQ", 200);
    let challenge = req.get("code_challenge").map(|c| {
        (
            c.to_owned(),
            req.get("code_challenge_method")
                .unwrap_or("plain")
                .to_owned(),
        )
    });
    st.tokens.inner().codes.insert(
        code.clone(),
        AuthCode {
            tenant_id: tid,
            client_id: cid,
            user_id,
            redirect_uri: redirect_uri.clone(),
            scopes: scope.split_whitespace().map(str::to_owned).collect(),
            challenge,
            nonce: req.get("nonce").map(str::to_owned),
            expires: st.now() + SignedDuration::from_secs(tokens::AUTH_CODE_LIFETIME_S),
            redeemed: false,
        },
    );
    let mut params = vec![("code", code)];
    if let Some(s) = req.get("state") {
        params.push(("state", s.to_owned()));
    }
    params.push(("session_state", Uuid::new_v4().to_string()));
    deliver(&redirect_uri, &mode, &params)
}
