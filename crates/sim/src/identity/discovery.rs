//! Discovery: the OpenID configuration (v2 and v1), the signing keys (JWKS) and MSAL's instance
//! discovery. Every document carries the same caching and CORS headers.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::error::{AadError, internal};
use super::{Endpoint, St, TenantRef, resolve_tenant};
use crate::state::SimState;

fn discovery_response(doc: Value) -> Response {
    let mut r = axum::Json(doc).into_response();
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

/// The token issuer: `{base}/{tenant}/v2.0` (v2), `https://sts.windows.net/{tenant}/` (v1).
fn issuer(st: &SimState, iss_tenant: &str, ep: Endpoint) -> String {
    match ep {
        Endpoint::V2 => format!("{}/{iss_tenant}/v2.0", st.base_url()),
        Endpoint::V1 => format!("https://sts.windows.net/{iss_tenant}/"),
    }
}

/// A discovery document of the `{tenant}` segment's tenant: `doc(state, (URL tenant, issuer
/// tenant), ep)`, or Entra's error (an unknown tenant, 90002).
type DocFn = fn(&SimState, (String, String), Endpoint) -> Result<Value, AadError>;

/// `GET` of the discovery document `doc` for endpoint version `ep`.
fn route(ep: Endpoint, doc: DocFn) -> MethodRouter<St> {
    get(
        move |State(st): State<St>, Path(seg): Path<String>| async move {
            match discovery_tenant(&st, &seg).and_then(|t| doc(&st, t, ep)) {
                Ok(v) => discovery_response(v),
                Err(e) => e.response(st.now()),
            }
        },
    )
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (v2) or
/// `GET /{tenant}/.well-known/openid-configuration` (v1).
pub(super) fn oidc_route(ep: Endpoint) -> MethodRouter<St> {
    route(ep, oidc)
}

/// `GET /{tenant}/discovery/v2.0/keys` (v2) or `GET /{tenant}/discovery/keys` (v1).
pub(super) fn jwks_route(ep: Endpoint) -> MethodRouter<St> {
    route(ep, jwks)
}

fn oidc(st: &SimState, (t, iss_t): (String, String), ep: Endpoint) -> Result<Value, AadError> {
    let b = st.base_url();
    let host = b.split("://").nth(1).unwrap_or(b);
    let (oauth, keys) = match ep {
        Endpoint::V2 => ("oauth2/v2.0", "discovery/v2.0/keys"),
        Endpoint::V1 => ("oauth2", "discovery/keys"),
    };
    let mut doc = json!({
        "token_endpoint": format!("{b}/{t}/{oauth}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{t}/{keys}"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": issuer(st, &iss_t, ep),
        "authorization_endpoint": format!("{b}/{t}/{oauth}/authorize"),
        "device_authorization_endpoint": format!("{b}/{t}/{oauth}/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{t}/{oauth}/logout"),
        "kerberos_endpoint": format!("{b}/{t}/kerberos"),
        "tenant_region_scope": "WW",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    let only = match ep {
        Endpoint::V2 => json!({
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{b}/oidc/userinfo"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        }),
        Endpoint::V1 => json!({
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "microsoft_multi_refresh_token": true,
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
            "check_session_iframe": format!("{b}/{t}/oauth2/checksession"),
            "userinfo_endpoint": format!("{b}/{t}/openid/userinfo"),
        }),
    };
    if let (Some(doc), Value::Object(only)) = (doc.as_object_mut(), only) {
        doc.extend(only);
    }
    Ok(doc)
}

fn jwks(st: &SimState, (_, iss_t): (String, String), ep: Endpoint) -> Result<Value, AadError> {
    let key = st.tokens.key().map_err(internal)?;
    Ok(json!({"keys": [key.jwk(&issuer(st, &iss_t, ep))]}))
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: MSAL's instance
/// discovery. Answers for the simulator's own host.
pub(super) async fn instance_discovery(
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
    discovery_response(json!({
        "tenant_discovery_endpoint": format!("{b}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    }))
}
