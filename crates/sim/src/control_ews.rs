//! Control API of the EWS face (documented in `docs/sim/ews.md`):
//!
//! - `GET /_sim/ews` — auth settings, faults, counters, accounts (without passwords)
//! - `PUT /_sim/ews/auth` `{"basic": bool, "ntlm": bool}` — IIS authentication of `/EWS`
//!   (`{"basic": false, "ntlm": true}` is an NTLM-only server)
//! - `GET|PUT|DELETE /_sim/ews/faults` — `{"http_503": N, "server_busy": [{"account", "count",
//!   "back_off_ms"}], "max_concurrency": N}`
//! - `POST /_sim/ews/mailboxes/{address}/invalidate-sync-state` — the mailbox's sync states
//!   are forgotten and its next SyncFolderItems with a SyncState fails with
//!   `ErrorInvalidSyncStateData`
//! - `PUT /_sim/ews/accounts/{logon}` `{"password"?, "impersonation"?, "delegate"?}` — adds or
//!   changes a service account (`logon`: `DOMAIN\user` or `user`); answers with its password
//! - `DELETE /_sim/ews/accounts/{logon}`
//! - `POST /_sim/ews/reset` — auth, faults, sync states and counters back to the start
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::EmptyBody;
use crate::error::GraphError;
use crate::ews::state::{AuthSettings, EwsFaults};
use crate::model::{DelegateRight, EwsAccount, ImpersonationRight};
use crate::state::{SimState, lock};

type St = Arc<SimState>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/ews", get(overview))
        .route("/ews/auth", put(set_auth).get(get_auth))
        .route(
            "/ews/faults",
            get(get_faults)
                .put(set_faults)
                .post(set_faults)
                .delete(clear_faults),
        )
        .route(
            "/ews/mailboxes/{addr}/invalidate-sync-state",
            post(invalidate_sync),
        )
        .route(
            "/ews/accounts/{logon}",
            put(put_account).delete(delete_account),
        )
        .route("/ews/reset", post(reset))
}

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GraphError> {
    crate::control::parse_object(body, EmptyBody::IsEmptyObject, "BadRequest")
}

fn delegate_json(d: &DelegateRight) -> Value {
    match d {
        DelegateRight::All => json!("all"),
        DelegateRight::Mailboxes(m) => json!(m),
    }
}

async fn overview(State(st): State<St>) -> Response {
    let accounts: Vec<Value> = {
        let dir = st.dir();
        dir.tenants
            .iter()
            .flat_map(|t| t.ews_accounts.iter())
            .map(|a| {
                json!({"username": a.logon_name(), "upn": a.upn,
                    "impersonation": a.impersonation.as_text(),
                    "delegate": delegate_json(&a.delegate)})
            })
            .collect()
    };
    let stats = lock(&st.ews.stats).clone();
    axum::Json(json!({
        "url": format!("{}{}", st.base_url(), crate::ews::EWS_PATH),
        "server_version": {
            "major": crate::ews::SERVER_VERSION.0, "minor": crate::ews::SERVER_VERSION.1,
            "build": crate::ews::SERVER_VERSION.2, "revision": crate::ews::SERVER_VERSION.3,
            "version": crate::ews::SERVER_VERSION_STRING,
        },
        "auth": st.ews.auth(),
        "faults": st.ews.faults(),
        "stats": stats,
        "accounts": accounts,
    }))
    .into_response()
}

async fn get_auth(State(st): State<St>) -> Response {
    axum::Json(st.ews.auth()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthPatch {
    basic: Option<bool>,
    ntlm: Option<bool>,
}

async fn set_auth(State(st): State<St>, body: Bytes) -> Result<Response, GraphError> {
    let p: AuthPatch = parse(&body)?;
    let cur = st.ews.auth();
    let next = AuthSettings {
        basic: p.basic.unwrap_or(cur.basic),
        ntlm: p.ntlm.unwrap_or(cur.ntlm),
    };
    if !next.basic && !next.ntlm {
        return Err(bad("At least one of basic and ntlm must stay enabled."));
    }
    st.ews.set_auth(next);
    if !next.ntlm {
        st.ews.ntlm.clear();
    }
    Ok(axum::Json(next).into_response())
}

async fn get_faults(State(st): State<St>) -> Response {
    axum::Json(st.ews.faults()).into_response()
}

async fn set_faults(State(st): State<St>, body: Bytes) -> Result<Response, GraphError> {
    let f: EwsFaults = parse(&body)?;
    if f.max_concurrency == Some(0) {
        return Err(bad("max_concurrency must be at least 1."));
    }
    if f.server_busy.iter().any(|b| b.back_off_ms > 600_000) {
        return Err(bad("back_off_ms must be at most 600000."));
    }
    st.ews.set_faults(f.clone());
    Ok(axum::Json(f).into_response())
}

async fn clear_faults(State(st): State<St>) -> Response {
    st.ews.set_faults(EwsFaults::default());
    StatusCode::NO_CONTENT.into_response()
}

async fn invalidate_sync(
    State(st): State<St>,
    Path(addr): Path<String>,
) -> Result<Response, GraphError> {
    let uid = {
        let dir = st.dir();
        dir.tenants
            .iter()
            .find_map(|t| t.user(&addr).map(|u| u.id))
            .ok_or_else(|| GraphError::not_found("NotFound", format!("No mailbox '{addr}'.")))?
    };
    let n = st.ews.invalidate_sync(uid);
    Ok(axum::Json(json!({"mailbox": addr, "forgotten_sync_states": n})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    password: Option<String>,
    impersonation: Option<String>,
    /// `"all"` or a list of mailbox addresses.
    delegate: Option<Value>,
}

async fn put_account(
    State(st): State<St>,
    Path(logon): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: AccountBody = parse(&body)?;
    let impersonation = b
        .impersonation
        .as_deref()
        .map(|s| {
            ImpersonationRight::parse(s)
                .ok_or_else(|| bad("impersonation is all, none or room-list:EMAIL."))
        })
        .transpose()?;
    let delegate = match &b.delegate {
        None => None,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("all") => Some(DelegateRight::All),
        Some(Value::Array(a)) => Some(DelegateRight::Mailboxes(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_ascii_lowercase)
                        .ok_or_else(|| bad("delegate lists mailbox addresses."))
                })
                .collect::<Result<_, _>>()?,
        )),
        Some(_) => return Err(bad("delegate is \"all\" or a list of mailbox addresses.")),
    };
    let mut dir = st.dir();
    let t = dir.tenants.first_mut().ok_or_else(|| bad("No tenant."))?;
    let (domain, sam) = match logon.split_once('\\') {
        Some((d, u)) => (d.to_owned(), u.to_owned()),
        None => (crate::seed::DEMO_NETBIOS.to_owned(), logon.clone()),
    };
    if sam.is_empty() || sam.contains('@') {
        return Err(bad("The logon is DOMAIN\\user or user."));
    }
    let mail_domain = t
        .domains
        .get(1)
        .or(t.domains.first())
        .cloned()
        .unwrap_or_default();
    let (status, account) = match t.ews_accounts.iter_mut().find(|a| a.matches(&logon)) {
        Some(a) => {
            if let Some(p) = b.password {
                a.password = p;
            }
            if let Some(i) = impersonation {
                a.impersonation = i;
            }
            if let Some(d) = delegate {
                a.delegate = d;
            }
            (StatusCode::OK, a.clone())
        }
        None => {
            let a = EwsAccount {
                upn: format!("{sam}@{mail_domain}"),
                sam,
                domain,
                password: b
                    .password
                    .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                impersonation: impersonation.unwrap_or(ImpersonationRight::None),
                delegate: delegate.unwrap_or(DelegateRight::Mailboxes(Vec::new())),
            };
            t.ews_accounts.push(a.clone());
            (StatusCode::CREATED, a)
        }
    };
    Ok((
        status,
        axum::Json(json!({"username": account.logon_name(), "upn": account.upn,
            "password": account.password, "impersonation": account.impersonation.as_text(),
            "delegate": delegate_json(&account.delegate)})),
    )
        .into_response())
}

async fn delete_account(
    State(st): State<St>,
    Path(logon): Path<String>,
) -> Result<Response, GraphError> {
    let mut dir = st.dir();
    let mut removed = false;
    for t in &mut dir.tenants {
        let before = t.ews_accounts.len();
        t.ews_accounts.retain(|a| !a.matches(&logon));
        removed |= t.ews_accounts.len() != before;
    }
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(GraphError::not_found(
            "NotFound",
            format!("No EWS account '{logon}'."),
        ))
    }
}

async fn reset(State(st): State<St>) -> Response {
    st.ews.reset();
    st.ews.ntlm.clear();
    StatusCode::NO_CONTENT.into_response()
}
