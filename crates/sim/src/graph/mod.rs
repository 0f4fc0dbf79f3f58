//! Microsoft Graph v1.0: the request pipeline every mailbox endpoint goes through
//! (bearer token → principal → mailbox authorization → throttling → faults) and the routes.
//!
//! Submodules own the endpoints: `events` (users, calendars, events, instances, extended
//! properties), `view` (calendarView), `delta` (calendarView/delta and its sync states),
//! `schedule` (getSchedule), `places`, `batch` (`$batch`), `subscriptions` (change
//! notifications).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use uuid::Uuid;

use crate::error::{GraphError, GraphResult};
use crate::model::{AccessRight, Directory, Tenant, User};
use crate::state::SimState;

pub mod batch;
pub mod delta;
pub mod events;
pub mod places;
pub mod responses;
mod route_util;
pub mod schedule;
pub mod subscriptions;
pub mod view;
pub mod wire;

pub type St = Arc<SimState>;

/// Routes under `/v1.0`.
pub fn routes() -> Router<St> {
    Router::new()
        .merge(events::routes())
        .merge(responses::routes())
        .merge(view::routes())
        .merge(delta::routes())
        .merge(schedule::routes())
        .merge(places::routes())
        .merge(batch::routes())
        .merge(subscriptions::routes())
}

/// Who is calling: decoded from a valid Graph access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub app_id: Uuid,
    /// Application permissions (`roles` claim) of an app-only token.
    pub roles: BTreeSet<String>,
    /// Delegated permissions (`scp` claim) and the signed-in user, for delegated tokens.
    pub delegated: Option<(Uuid, BTreeSet<String>)>,
}

impl FromRequestParts<St> for Principal {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let Some(h) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(GraphError::invalid_token("Access token is empty."));
        };
        let h = h.to_str().unwrap_or("");
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .ok_or_else(|| {
                GraphError::invalid_token("Access token validation failure. Invalid audience.")
            })?;
        crate::tokens::validate_graph_token(state, token.trim())
    }
}

/// What a mailbox call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

const ACCESS_DENIED: &str = "Access is denied. Check credentials and try again.";
const RAOP_DENIED: &str = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.";

fn grants(perms: &BTreeSet<String>, need: Need) -> bool {
    let rw = perms
        .iter()
        .any(|p| p.eq_ignore_ascii_case("Calendars.ReadWrite"));
    match need {
        Need::Write => rw,
        Need::Read => {
            rw || perms
                .iter()
                .any(|p| p.eq_ignore_ascii_case("Calendars.Read"))
        }
    }
}

fn in_group(t: &Tenant, group: Uuid, user: Uuid) -> bool {
    t.groups
        .iter()
        .any(|g| g.id == group && g.members.contains(&user))
}

/// Resolves `user_ref` (id or UPN) in the caller's tenant and checks the caller may read or
/// write its calendar: Entra application permissions (constrained by an Application Access
/// Policy) unioned with RBAC-for-Applications assignments whose scope contains the mailbox.
pub fn authorize_mailbox<'d>(
    dir: &'d Directory,
    p: &Principal,
    user_ref: &str,
    need: Need,
) -> GraphResult<&'d User> {
    let tenant = dir
        .tenant_by_id(p.tenant_id)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))?;
    let user = tenant.user(user_ref).ok_or_else(|| {
        GraphError::not_found(
            "ErrorInvalidUser",
            format!("The requested user '{user_ref}' is invalid."),
        )
    })?;
    if !user.has_mailbox || !user.account_enabled {
        return Err(GraphError::not_found(
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    if let Some((uid, scopes)) = &p.delegated {
        // Delegated: the signed-in user's own mailbox with Calendars.Read/ReadWrite.
        if *uid == user.id && grants(scopes, need) {
            return Ok(user);
        }
        return Err(GraphError::access_denied(ACCESS_DENIED));
    }
    let app = tenant
        .apps
        .iter()
        .find(|a| a.client_id == p.app_id)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))?;
    // RBAC for Applications: evaluated on its own, unioned with Entra grants.
    let rbac_perms: BTreeSet<String> = app
        .rbac
        .iter()
        .filter(|a| a.scope_group.is_none_or(|g| in_group(tenant, g, user.id)))
        .map(|a| a.permission.clone())
        .collect();
    if grants(&rbac_perms, need) {
        return Ok(user);
    }
    if grants(&p.roles, need) {
        match &app.access_policy {
            None => return Ok(user),
            Some(pol) => {
                let member = in_group(tenant, pol.group, user.id);
                let allowed = match pol.access_right {
                    AccessRight::RestrictAccess => member,
                    AccessRight::DenyAccess => !member,
                };
                if allowed {
                    return Ok(user);
                }
                return Err(GraphError::access_denied(RAOP_DENIED));
            }
        }
    }
    Err(GraphError::access_denied(ACCESS_DENIED))
}

/// The full pipeline for a mailbox call: authorize, then throttle (the permit is held until the
/// response has been sent, including injected latency), then injected faults.
/// Returns the mailbox's user id.
pub async fn enter_mailbox(
    st: &St,
    p: &Principal,
    user_ref: &str,
    need: Need,
) -> GraphResult<Uuid> {
    let user_id = {
        let dir = st.dir();
        authorize_mailbox(&dir, p, user_ref, need)?.id
    };
    let permit = st.throttle.acquire(st, p.app_id, user_id)?;
    crate::server::hold_until_response(permit);
    st.faults.before_mailbox_call(st, p.app_id, user_id).await?;
    Ok(user_id)
}

/// Application-permission check for non-mailbox resources (places: `Place.Read.All`, directory:
/// `User.Read.All`). Delegated tokens check `scp`.
pub fn require_role(p: &Principal, any_of: &[&str]) -> GraphResult<()> {
    let perms = match &p.delegated {
        Some((_, scp)) => scp,
        None => &p.roles,
    };
    if any_of
        .iter()
        .any(|r| perms.iter().any(|p| p.eq_ignore_ascii_case(r)))
    {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}
