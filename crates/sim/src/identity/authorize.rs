//! `/oauth2/v2.0/authorize` and `/oauth2/authorize`: the interactive part of the authorization
//! code flow — the sign-in page, the consent page, and the code (or error) sent back to the
//! client's redirect URI.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use jiff::SignedDuration;
use uuid::Uuid;

use super::delegated::{consented, wanted_perms};
use super::error::{
    AadError, USER_DISABLED, USER_NOT_FOUND, app_not_found, missing, not_consented_message,
    resource_not_found, tenant_not_found,
};
use super::scope::{ScopeReq, canonical_resource, parse_scope};
use super::{Endpoint, St, form_params, pages, request_tenant, resolve_tenant, tenant_app};
use crate::model::MailboxKind;
use crate::state::SimState;
use crate::tokens::{self, AuthCode};

/// `GET` (query) and `POST` (form) of the authorize endpoint of `ep`.
pub(super) fn route(ep: Endpoint) -> MethodRouter<St> {
    get(
        move |State(st): State<St>,
              Path(seg): Path<String>,
              Query(q): Query<HashMap<String, String>>| async move {
            authorize(&st, &seg, &AuthzReq { q }, ep)
        },
    )
    .post(
        move |State(st): State<St>, Path(seg): Path<String>, body: Bytes| async move {
            let req = AuthzReq {
                q: form_params(&body),
            };
            authorize(&st, &seg, &req, ep)
        },
    )
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

    /// The values the pages carry through their hidden fields.
    fn hidden_fields(&self) -> pages::Markup {
        pages::hidden_inputs(
            AUTHZ_KEYS
                .iter()
                .filter_map(|k| self.get(k).map(|v| (*k, v))),
        )
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
    let page = pages::error(e.error, body["error_description"].as_str().unwrap_or(""));
    (StatusCode::BAD_REQUEST, page).into_response()
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
        "form_post" => pages::form_post(redirect_uri, params).into_response(),
        "fragment" => found(&format!("{redirect_uri}#{enc}")),
        _ => {
            let sep = if redirect_uri.contains('?') { '&' } else { '?' };
            found(&format!("{redirect_uri}{sep}{enc}"))
        }
    }
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

/// An authorize request whose client and redirect URI are known: from here on, errors go to
/// the redirect URI.
struct Authz<'r> {
    req: &'r AuthzReq,
    ep: Endpoint,
    tid: Uuid,
    /// The app's client id, as registered.
    cid: Uuid,
    /// The client id as the request spells it (for messages).
    client_id: &'r str,
    redirect_uri: String,
}

impl<'r> Authz<'r> {
    /// Validates client and redirect URI. Errors here are shown on a page (never redirected).
    fn new(st: &SimState, seg: &str, req: &'r AuthzReq, ep: Endpoint) -> Result<Self, AadError> {
        let tref = resolve_tenant(st, seg)?;
        let client_id = req.get("client_id").ok_or_else(|| missing("client_id"))?;
        let tid = request_tenant(st, &tref, client_id, seg)?;
        let dir = st.dir();
        let (_, app) = tenant_app(&dir, tid, client_id, seg)?;
        let ru = req.get("redirect_uri").ok_or_else(|| {
            AadError::new("invalid_request", 900971, "No reply address provided.")
        })?;
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
        Ok(Authz {
            req,
            ep,
            tid,
            cid: app.client_id,
            client_id,
            redirect_uri: ru.to_owned(),
        })
    }

    /// Sends `params`, the request's `state` and the `session_state` given to the client, in
    /// the request's `response_mode`.
    fn deliver(&self, mut params: Vec<(&str, String)>, session_state: Option<String>) -> Response {
        if let Some(s) = self.req.get("state") {
            params.push(("state", s.to_owned()));
        }
        if let Some(s) = session_state {
            params.push(("session_state", s));
        }
        deliver(
            &self.redirect_uri,
            self.req.get("response_mode").unwrap_or("query"),
            &params,
        )
    }

    /// Sends an error to the client.
    fn fail(&self, error: &str, desc: &str) -> Response {
        self.deliver(
            vec![
                ("error", error.to_owned()),
                ("error_description", desc.to_owned()),
            ],
            None,
        )
    }

    /// Sends Entra's error `e` to the client.
    fn fail_with(&self, e: &AadError) -> Response {
        self.fail(e.error, &e.summary())
    }

    /// Checks the protocol parameters; returns the scopes the code is for and their parse.
    ///
    /// v1 ignores `scope` (permissions are configured on the app): the request is for
    /// `resource`'s configured delegated permissions — `{resource}/.default` — and the code
    /// always carries `openid` and `offline_access` (v1 returns an ID token and a refresh
    /// token). Without `resource`, the token request must name it.
    fn scopes(&self) -> Result<(String, ScopeReq), Response> {
        let req = self.req;
        if req.get("response_type") != Some("code") {
            return Err(self.fail(
                "unsupported_response_type",
                "AADSTS700054: response_type 'code' is required by the simulator; the implicit flow is not supported.",
            ));
        }
        let tenant = self.tid.to_string();
        let scope = match self.ep {
            Endpoint::V2 => match req.get("scope") {
                Some(s) => s.to_owned(),
                None => return Err(self.fail_with(&missing("scope"))),
            },
            Endpoint::V1 => match req.get("resource") {
                None => "openid offline_access".to_owned(),
                Some(r) => match canonical_resource(r) {
                    Some(canon) => format!("{canon}/.default openid offline_access"),
                    None => return Err(self.fail_with(&resource_not_found(r, &tenant))),
                },
            },
        };
        if let Some(m) = req.get("code_challenge_method")
            && !m.eq_ignore_ascii_case("S256")
            && m != "plain"
        {
            return Err(self.fail(
                "invalid_request",
                "AADSTS501491: Invalid size of Code_Challenge parameter or unsupported code_challenge_method.",
            ));
        }
        let mode = req.get("response_mode").unwrap_or("query");
        if !["query", "fragment", "form_post"].contains(&mode) {
            return Err(self.fail(
                "invalid_request",
                "AADSTS900144: The request is not valid: unsupported response_mode.",
            ));
        }
        // v1 without `resource`: nothing to consent to beyond what is configured.
        let parsed = if self.ep == Endpoint::V1 && req.get("resource").is_none() {
            parse_scope(&format!("{scope} .default"), &tenant, false)
        } else {
            parse_scope(&scope, &tenant, false)
        };
        match parsed {
            Ok(s) => Ok((scope, s)),
            Err(e) => Err(self.fail_with(&e)),
        }
    }
}

/// The user signing in.
struct SignedIn {
    id: Uuid,
    display_name: String,
    upn: String,
}

/// One handler for the whole page flow (v2 and v1). The `step` field of a POST drives it:
/// (none) → sign-in page; `signin` (with `login`) → consent page or code; `consent` (with
/// `accept=yes|no`) → code or `access_denied`.
fn authorize(st: &SimState, seg: &str, req: &AuthzReq, ep: Endpoint) -> Response {
    let a = match Authz::new(st, seg, req, ep) {
        Ok(a) => a,
        Err(e) => return error_page(st, &e),
    };
    let (scope, sreq) = match a.scopes() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let step = req.get("step").unwrap_or("");
    let action = match ep {
        Endpoint::V2 => format!("{}/{seg}/oauth2/v2.0/authorize", st.base_url()),
        Endpoint::V1 => format!("{}/{seg}/oauth2/authorize", st.base_url()),
    };
    if step.is_empty() {
        return sign_in_page(st, seg, &a, &action);
    }
    // Who signs in.
    let user = {
        let dir = st.dir();
        let Some(t) = dir.tenant_by_id(a.tid) else {
            return error_page(st, &tenant_not_found(seg));
        };
        match step {
            "signin" | "consent" => {
                let login = req.get("login").or(req.get("login_hint")).unwrap_or("");
                t.user(login).map(|u| {
                    let who = SignedIn {
                        id: u.id,
                        display_name: u.display_name.clone(),
                        upn: u.upn.clone(),
                    };
                    (who, u.account_enabled)
                })
            }
            _ => None,
        }
    };
    let Some((user, enabled)) = user else {
        return a.fail_with(&AadError::new("invalid_request", 50034, USER_NOT_FOUND));
    };
    if !enabled {
        return a.fail_with(&AadError::new("invalid_request", 50057, USER_DISABLED));
    }
    if let Some(r) = consent(st, seg, &a, &sreq, &user, step, &action) {
        return r;
    }
    issue_code(st, &a, &scope, user.id)
}

/// The sign-in page: the tenant's enabled people, `login_hint` preselected.
fn sign_in_page(st: &SimState, seg: &str, a: &Authz<'_>, action: &str) -> Response {
    let dir = st.dir();
    let Some(t) = dir.tenant_by_id(a.tid) else {
        return error_page(st, &tenant_not_found(seg));
    };
    let hint = a.req.get("login_hint").unwrap_or("");
    let accounts = t
        .users()
        .filter(|u| u.account_enabled && u.kind == MailboxKind::User)
        .map(|u| pages::Account {
            upn: &u.upn,
            display_name: &u.display_name,
            selected: u.upn.eq_ignore_ascii_case(hint),
        });
    pages::sign_in(&t.display_name, action, &a.req.hidden_fields(), accounts).into_response()
}

/// The consent step: records an accepted consent (`step=consent`), or answers with the consent
/// page (permissions not consented yet, or `prompt=consent`), or with an error; `None` when the
/// code can be issued.
fn consent(
    st: &SimState,
    seg: &str,
    a: &Authz<'_>,
    sreq: &ScopeReq,
    user: &SignedIn,
    step: &str,
    action: &str,
) -> Option<Response> {
    let req = a.req;
    let (app_name, consent) = {
        let dir = st.dir();
        let Some(app) = dir.tenant_by_id(a.tid).and_then(|t| t.app(a.client_id)) else {
            return Some(error_page(st, &app_not_found(a.client_id, seg)));
        };
        (app.display_name.clone(), consented(st, app, user.id))
    };
    if step == "consent" {
        if req.get("accept") != Some("yes") {
            return Some(a.fail(
                "access_denied",
                "AADSTS65004: User declined to consent to access the app.",
            ));
        }
        st.tokens
            .inner()
            .user_consent
            .entry((a.cid, user.id))
            .or_default()
            .extend(
                sreq.perms
                    .iter()
                    .filter(|p| p.as_str() != ".default")
                    .cloned(),
            );
        return None;
    }
    let missing_perms = sreq
        .perms
        .iter()
        .any(|p| p.as_str() != ".default" && !consent.contains_key(&p.to_ascii_lowercase()));
    let force_consent = step == "signin"
        && match req.get("prompt") {
            Some("consent") => true,
            // v1 only; the simulator has no administrators: it is a user consent prompt.
            Some("admin_consent") => a.ep == Endpoint::V1,
            _ => false,
        };
    if !missing_perms && !force_consent {
        return None;
    }
    if req.get("prompt") == Some("none") {
        return Some(a.fail_with(&AadError::new(
            "consent_required",
            65001,
            not_consented_message(a.client_id, &app_name),
        )));
    }
    // v1: the app's configured delegated permissions (those consented for it).
    let perms = match a.ep {
        Endpoint::V2 => sreq.perms.clone(),
        Endpoint::V1 => wanted_perms(sreq, &consent),
    };
    let page = pages::consent(
        &app_name,
        &user.display_name,
        &user.upn,
        &perms,
        action,
        &req.hidden_fields(),
    );
    Some(page.into_response())
}

/// Stores an authorization code for `user` and sends it to the client.
fn issue_code(st: &SimState, a: &Authz<'_>, scope: &str, user: Uuid) -> Response {
    let code = tokens::opaque("1.AQ", 200);
    let challenge = a.req.get("code_challenge").map(|c| {
        (
            c.to_owned(),
            a.req
                .get("code_challenge_method")
                .unwrap_or("plain")
                .to_owned(),
        )
    });
    st.tokens.inner().codes.insert(
        code.clone(),
        AuthCode {
            tenant_id: a.tid,
            client_id: a.cid,
            user_id: user,
            redirect_uri: a.redirect_uri.clone(),
            scopes: scope.split_whitespace().map(str::to_owned).collect(),
            challenge,
            nonce: a.req.get("nonce").map(str::to_owned),
            expires: st.now() + SignedDuration::from_secs(tokens::AUTH_CODE_LIFETIME_S),
            redeemed: false,
        },
    );
    a.deliver(vec![("code", code)], Some(Uuid::new_v4().to_string()))
}
