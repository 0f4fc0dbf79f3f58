//! Delegated grants at the token endpoints: authorization code (+ PKCE) and refresh token;
//! the permissions consented for an (app, user) and the delegated token response.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

use super::client_auth::authenticate_client;
use super::error::{
    AadError, USER_DISABLED, USER_NOT_FOUND, fmt_7, internal, invalid_grant, missing,
    not_consented_message, resource_not_found,
};
use super::scope::{ScopeReq, canonical_resource, is_oidc, parse_scope};
use super::token::{TokenRequest, token_body};
use super::{Endpoint, request_tenant, tenant_app};
use crate::model::{App, Tenant};
use crate::state::SimState;
use crate::tokens::{self, ClientAuth, RefreshGrant};

/// Delegated permissions consented for (app, user): tenant-wide admin consent ∪ the user's own,
/// keyed by lowercase name (permission names are case-insensitive), valued as consented.
pub(super) fn consented(st: &SimState, app: &App, user: Uuid) -> BTreeMap<String, String> {
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
pub(super) fn wanted_perms(req: &ScopeReq, consent: &BTreeMap<String, String>) -> Vec<String> {
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
        not_consented_message(&app.client_id.to_string(), &app.display_name),
    )
    .with_suberror("consent_required")
}

/// Issues the delegated token response for (tenant, app, user, scopes).
fn delegated_response(
    r: TokenRequest<'_>,
    (tenant, app): (&Tenant, &App),
    user_id: Uuid,
    scopes: &[String],
    nonce: Option<&str>,
    auth: ClientAuth,
) -> Result<Value, AadError> {
    let TokenRequest { st, ep, .. } = r;
    let user = tenant
        .user_by_id(user_id)
        .ok_or_else(|| invalid_grant(50034, USER_NOT_FOUND))?;
    if !user.account_enabled {
        return Err(invalid_grant(50057, USER_DISABLED));
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
    let scope = match ep {
        // `{resource}/{permission}`, then the OIDC scopes with `offline_access` last.
        Endpoint::V2 => {
            let mut v: Vec<String> = scp
                .iter()
                .map(|s| format!("{}/{s}", req.resource))
                .collect();
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
        }
        Endpoint::V1 => scp.join(" "),
    };
    let mut out = token_body(&issued, ep, &req.resource, Some(scope));
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
fn grant_scopes(r: TokenRequest<'_>, grant: &[String]) -> Result<Vec<String>, AadError> {
    let TokenRequest { seg, p, ep, .. } = r;
    if ep == Endpoint::V2 {
        return Ok(match p.get("scope") {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => grant.to_vec(),
        });
    }
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

/// 70008: an authorization code or refresh token past its lifetime.
const EXPIRED_INACTIVE: &str = "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.";

/// 700005 unless the grant (`what`: a code or a refresh token) was issued to `app` in `tenant`.
fn issued_to(
    app: &App,
    tenant: &Tenant,
    client_id: Uuid,
    tenant_id: Uuid,
    what: &str,
) -> Result<(), AadError> {
    if client_id != app.client_id || tenant_id != tenant.id {
        return Err(invalid_grant(
            700005,
            format!("Provided {what} is intended to use against other tenant or application."),
        ));
    }
    Ok(())
}

pub(super) fn authorization_code(r: TokenRequest<'_>) -> Result<Value, AadError> {
    let TokenRequest {
        st, seg, tref, p, ..
    } = r;
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let code = p.require("code")?;
    let tid = request_tenant(st, tref, client_id, seg)?;
    let dir = st.dir();
    let (tenant, app) = tenant_app(&dir, tid, client_id, seg)?;
    let redirect_uri = p.require("redirect_uri")?;
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
        issued_to(app, tenant, c.client_id, c.tenant_id, "Authorization Code")?;
        if c.redeemed {
            return Err(invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        if now >= c.expires {
            return Err(invalid_grant(70008, EXPIRED_INACTIVE));
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
        if let Some(ch) = &c.challenge
            && !p.get("code_verifier").is_some_and(|v| pkce_ok(ch, v))
        {
            return Err(invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        let scopes = grant_scopes(r, &c.scopes)?;
        c.redeemed = true;
        (c.clone(), scopes)
    };
    delegated_response(
        r,
        (tenant, app),
        grant.user_id,
        &scopes,
        grant.nonce.as_deref(),
        auth,
    )
}

pub(super) fn refresh_token(r: TokenRequest<'_>) -> Result<Value, AadError> {
    let TokenRequest {
        st, seg, tref, p, ..
    } = r;
    let client_id = p.client_id().ok_or_else(|| missing("client_id"))?;
    let rt = p.require("refresh_token")?;
    let tid = request_tenant(st, tref, client_id, seg)?;
    let dir = st.dir();
    let (tenant, app) = tenant_app(&dir, tid, client_id, seg)?;
    let auth = authenticate_client(st, tenant, app, p, true)?;
    let now = st.now();
    let grant = st.tokens.inner().refresh.get(rt).cloned();
    let Some(grant) = grant else {
        return Err(invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is malformed or not valid.",
        ));
    };
    issued_to(
        app,
        tenant,
        grant.client_id,
        grant.tenant_id,
        "refresh token",
    )?;
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
                "{EXPIRED_INACTIVE} The refresh token was issued on {} and was inactive for {days}.00:00:00.",
                fmt_7(grant.issued)
            ),
        ));
    }
    let scopes = grant_scopes(r, &grant.scopes)?;
    delegated_response(r, (tenant, app), grant.user_id, &scopes, None, auth)
}
