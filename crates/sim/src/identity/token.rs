//! The token endpoints (`/oauth2/v2.0/token`, `/oauth2/token`): request parsing, the grant
//! dispatch, the client-credentials grant and the token response bodies.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client_auth::authenticate_client;
use super::delegated::{authorization_code, refresh_token};
use super::error::{AadError, internal, json_no_store, missing, resource_not_found};
use super::scope::{canonical_resource, parse_scope};
use super::{Endpoint, St, TenantRef, form_params, resolve_tenant, tenant_app};
use crate::state::SimState;
use crate::tokens;

/// Form parameters (first value wins) plus HTTP Basic client credentials.
#[derive(Debug, Default)]
pub(super) struct Params {
    form: HashMap<String, String>,
    basic: Option<(String, String)>,
}

impl Params {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
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
        Params {
            form: form_params(body),
            basic,
        }
    }

    /// A required (non-empty) form parameter (900144 without it).
    pub(super) fn require(&self, k: &str) -> Result<&str, AadError> {
        self.get(k).ok_or_else(|| missing(k))
    }

    /// A non-empty form parameter.
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.form
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn client_id(&self) -> Option<&str> {
        self.get("client_id")
            .or_else(|| self.basic.as_ref().map(|(u, _)| u.as_str()))
    }

    pub(super) fn client_secret(&self) -> Option<&str> {
        self.get("client_secret")
            .or_else(|| self.basic.as_ref().map(|(_, p)| p.as_str()))
    }
}

/// `POST /{tenant}/oauth2/v2.0/token` (v2) or `POST /{tenant}/oauth2/token` (v1).
pub(super) fn route(ep: Endpoint) -> MethodRouter<St> {
    post(
        move |State(st): State<St>, Path(seg): Path<String>, headers: HeaderMap, body: Bytes| async move {
            token(&st, &seg, &headers, &body, ep)
        },
    )
}

fn token(st: &SimState, seg: &str, headers: &HeaderMap, body: &[u8], ep: Endpoint) -> Response {
    let p = Params::parse(headers, body);
    let client = p.client_id().and_then(|c| Uuid::parse_str(c).ok());
    if let Some(c) = client {
        st.tokens.count(c, |c| c.token_requests += 1);
    }
    match token_inner(st, seg, &p, ep) {
        Ok(v) => json_no_store(StatusCode::OK, v),
        Err(e) => {
            if let Some(c) = client {
                st.tokens.count(c, |c| c.token_errors += 1);
            }
            e.response(st.now())
        }
    }
}

/// A token request: the path's `{tenant}` segment and what it names, the parameters, the
/// endpoint's version.
#[derive(Clone, Copy)]
pub(super) struct TokenRequest<'a> {
    pub st: &'a SimState,
    pub seg: &'a str,
    pub tref: &'a TenantRef,
    pub p: &'a Params,
    pub ep: Endpoint,
}

fn token_inner(st: &SimState, seg: &str, p: &Params, ep: Endpoint) -> Result<Value, AadError> {
    let tref = resolve_tenant(st, seg)?;
    let grant = p.require("grant_type")?;
    if ep == Endpoint::V2 && p.get("resource").is_some() {
        return Err(AadError::new(
            "invalid_request",
            901002,
            "The 'resource' request parameter is not supported.",
        ));
    }
    let r = TokenRequest {
        st,
        seg,
        tref: &tref,
        p,
        ep,
    };
    match grant {
        "client_credentials" => client_credentials(r),
        "authorization_code" => authorization_code(r),
        "refresh_token" => refresh_token(r),
        other => Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// A successful token response: v2 numbers, v1 strings plus `expires_on`, `not_before` and
/// `resource`; `scope` for delegated tokens.
pub(super) fn token_body(
    issued: &tokens::Issued,
    ep: Endpoint,
    resource: &str,
    scope: Option<String>,
) -> Value {
    let mut v = match ep {
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
    };
    if let Some(scope) = scope {
        v["scope"] = json!(scope);
    }
    v
}

fn client_credentials(r: TokenRequest<'_>) -> Result<Value, AadError> {
    let TokenRequest {
        st,
        seg,
        tref,
        p,
        ep,
    } = r;
    let TenantRef::Id(tid) = tref else {
        return Err(AadError::new(
            "invalid_request",
            9001023,
            "The grant type 'client_credentials' is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    };
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let dir = st.dir();
    let (tenant, app) = tenant_app(&dir, *tid, client_id, seg)?;
    let resource = match ep {
        Endpoint::V2 => parse_scope(p.require("scope")?, seg, true)?.resource,
        Endpoint::V1 => {
            let res = p.require("resource")?;
            canonical_resource(res)
                .ok_or_else(|| resource_not_found(res, seg))?
                .to_owned()
        }
    };
    let auth = authenticate_client(st, tenant, app, p, false)?;
    let issued = tokens::issue_app_token(st, tenant, app, &resource, auth).map_err(internal)?;
    Ok(token_body(&issued, ep, &resource, None))
}
