//! Entra ID (Microsoft identity platform): OIDC discovery, JWKS, instance discovery, the v2 and
//! v1 token endpoints, and a simple /authorize page. OWNER: identity.
//!
//! Errors use Entra's JSON shape: `{"error","error_description":"AADSTSnnn: …\r\nTrace ID: …\r\n
//! Correlation ID: …\r\nTimestamp: …","error_codes":[nnn],"timestamp","trace_id",
//! "correlation_id","error_uri"}`, HTTP 400 (401 for `invalid_client`).
//!
//! - `mod.rs` — the routes, the `{tenant}` path segment, v2/v1 ([`Endpoint`]);
//! - `error.rs` — [`AadError`] and the AADSTS errors shared by the endpoints;
//! - `discovery.rs` — OpenID configuration, JWKS, instance discovery;
//! - `scope.rs` — the `scope` / `resource` parameters;
//! - `token.rs` — the token endpoints and the client-credentials grant;
//! - `client_auth.rs` — client authentication: secrets and certificate assertions;
//! - `delegated.rs` — authorization-code and refresh-token grants, consent, delegated tokens;
//! - `authorize.rs` — the /authorize flow (sign-in, consent, code delivery);
//! - `pages.rs` and `templates/` — the HTML pages of that flow, every inserted value escaped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use uuid::Uuid;

use crate::model::{App, Directory, Tenant};
use crate::state::SimState;

mod authorize;
mod client_auth;
mod delegated;
mod discovery;
mod error;
mod pages;
mod scope;
mod token;

pub use client_auth::cert_public_key;
pub use error::AadError;

type St = Arc<SimState>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", token::route(Endpoint::V2))
        .route("/{tenant}/oauth2/token", token::route(Endpoint::V1))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            discovery::oidc_route(Endpoint::V2),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            discovery::oidc_route(Endpoint::V1),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            discovery::jwks_route(Endpoint::V2),
        )
        .route(
            "/{tenant}/discovery/keys",
            discovery::jwks_route(Endpoint::V1),
        )
        .route(
            "/{tenant}/discovery/instance",
            axum::routing::get(discovery::instance_discovery),
        )
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            authorize::route(Endpoint::V2),
        )
        .route("/{tenant}/oauth2/authorize", authorize::route(Endpoint::V1))
}

/// The protocol version of an endpoint: v2 (`/oauth2/v2.0/…`, `scope=`) or v1 (`/oauth2/…`,
/// `resource=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    V2,
    V1,
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
        .ok_or_else(|| error::tenant_not_found(seg))
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

/// The tenant `tid` and its app `client_id` (`seg`, the path segment, names them in errors).
fn tenant_app<'d>(
    dir: &'d Directory,
    tid: Uuid,
    client_id: &str,
    seg: &str,
) -> Result<(&'d Tenant, &'d App), AadError> {
    let tenant = dir
        .tenant_by_id(tid)
        .ok_or_else(|| error::tenant_not_found(seg))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| error::app_not_found(client_id, seg))?;
    Ok((tenant, app))
}

/// The tenant of a delegated request: the path tenant, or, for /common and /organizations, the
/// app's (700016 when no tenant has it). Locks the directory: call it before [`SimState::dir`].
fn request_tenant(
    st: &SimState,
    tref: &TenantRef,
    client_id: &str,
    seg: &str,
) -> Result<Uuid, AadError> {
    match tref {
        TenantRef::Id(id) => Some(*id),
        _ => tenant_of_app(st, client_id),
    }
    .ok_or_else(|| error::app_not_found(client_id, seg))
}

/// Form-encoded parameters (a token request's body, a posted authorize form); the first value
/// of a repeated name wins.
fn form_params(body: &[u8]) -> HashMap<String, String> {
    let mut form = HashMap::new();
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        for (k, v) in pairs {
            form.entry(k).or_insert(v);
        }
    }
    form
}
