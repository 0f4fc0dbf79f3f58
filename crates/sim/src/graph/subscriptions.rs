//! Graph v1.0 `/subscriptions` for Outlook events: create (with the validation handshake of
//! notificationUrl and lifecycleNotificationUrl), get, list, update (renewal, a new
//! notificationUrl), delete and `reauthorize`. The machinery (limits, handshake, detection,
//! delivery) is in [`crate::subscriptions`]; documented in `docs/sim/subscriptions.md`.
//!
//! An app sees and manages the subscriptions it created; a delegated caller those it created as
//! that user. Creating one needs read access to the mailbox's calendar, decided exactly as for
//! `GET …/events` ([`super::authorize_mailbox`]: Entra roles under an Application Access
//! Policy, unioned with RBAC for Applications; delegated `Calendars.Read[Write]` for the
//! signed-in user's own mailbox).
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::events::read_body;
use super::wire;
use super::{Need, Principal, St, authorize_mailbox};
use crate::error::{GraphError, GraphResult};
use crate::subscriptions::{
    MAX_CLIENT_STATE, Scope, Subscription, check_expiration, check_url, parse_change_types,
};

pub fn routes() -> Router<St> {
    Router::new()
        .route("/subscriptions", get(list).post(create))
        .route(
            "/subscriptions/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/subscriptions/{id}/reauthorize", post(reauthorize))
}

fn invalid(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("InvalidRequest", msg)
}

fn not_found(id: &str) -> GraphError {
    GraphError::not_found(
        "ResourceNotFound",
        format!("The subscription '{id}' was not found."),
    )
}

/// A JSON object body.
fn object(body: Result<Bytes, BytesRejection>) -> GraphResult<Map<String, Value>> {
    match read_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(GraphError::bad_request(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

/// A string property (absent or `null` → `None`; another type → 400).
fn string_prop<'a>(m: &'a Map<String, Value>, name: &str) -> GraphResult<Option<&'a str>> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::bad_request(
            "BadRequest",
            format!(
                "Cannot convert the literal to the expected type 'Edm.String' for property '{name}'."
            ),
        )),
    }
}

fn required<'a>(m: &'a Map<String, Value>, name: &str) -> GraphResult<&'a str> {
    match string_prop(m, name)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(format!(
            "{name} is a required property for subscription creation."
        ))),
    }
}

/// Whom a resource names, and which calendar.
enum Who {
    User(String),
    Me,
}

/// The resource forms of Outlook events: `[/]users/{id|upn}/events`,
/// `…/calendar/events`, `…/calendars/{id}/events`, and the same under `me/`
/// (case-insensitive segment names).
fn parse_resource(raw: &str) -> GraphResult<(Who, Scope)> {
    let unsupported = || {
        invalid(format!(
            "Resource '{raw}' is not supported: the simulator serves change notifications for Outlook events (/users/{{id}}/events, /users/{{id}}/calendar/events, /users/{{id}}/calendars/{{id}}/events, or /me/…)."
        ))
    };
    let path = raw.trim().trim_start_matches('/');
    if path.contains('?') {
        return Err(unsupported());
    }
    let segs: Vec<&str> = path.split('/').collect();
    let (who, rest) = match segs.as_slice() {
        [me, rest @ ..] if me.eq_ignore_ascii_case("me") => (Who::Me, rest),
        [users, id, rest @ ..] if users.eq_ignore_ascii_case("users") && !id.is_empty() => {
            (Who::User((*id).to_owned()), rest)
        }
        _ => return Err(unsupported()),
    };
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let scope = match rest {
        [ev] if eq(ev, "events") => Scope::DefaultCalendar,
        [cal, ev] if eq(cal, "calendar") && eq(ev, "events") => Scope::DefaultCalendar,
        [cals, cid, ev] if eq(cals, "calendars") && eq(ev, "events") && !cid.is_empty() => {
            Scope::Calendar((*cid).to_owned())
        }
        _ => return Err(unsupported()),
    };
    Ok((who, scope))
}

/// Whether `p` may see and manage `s`.
fn owns(p: &Principal, s: &Subscription) -> bool {
    s.tenant_id == p.tenant_id
        && s.app_id == p.app_id
        && match &p.delegated {
            Some((uid, _)) => s.delegated && s.creator_id == *uid,
            None => !s.delegated,
        }
}

fn parse_id(id: &str) -> GraphResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

fn entity(st: &St, s: &Subscription, status: StatusCode) -> Response {
    let mut v = s.to_json();
    v["@odata.context"] = json!(wire::context_url(st.base_url(), "subscriptions/$entity"));
    (status, axum::Json(v)).into_response()
}

async fn create(
    State(st): State<St>,
    p: Principal,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    let m = object(body)?;
    let change_types = parse_change_types(required(&m, "changeType")?)?;
    let notification_url = required(&m, "notificationUrl")?.to_owned();
    let resource = required(&m, "resource")?.to_owned();
    let expiration_raw = required(&m, "expirationDateTime")?;
    let client_state = string_prop(&m, "clientState")?.map(str::to_owned);
    if client_state
        .as_deref()
        .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
    {
        return Err(invalid(format!(
            "clientState must be at most {MAX_CLIENT_STATE} characters long."
        )));
    }
    let lifecycle_url = string_prop(&m, "lifecycleNotificationUrl")?.map(str::to_owned);
    let tls_version = match string_prop(&m, "latestSupportedTlsVersion")? {
        None => "v1_2".to_owned(),
        Some(v @ ("v1_0" | "v1_1" | "v1_2" | "v1_3")) => v.to_owned(),
        Some(v) => {
            return Err(invalid(format!(
                "'{v}' is not a valid latestSupportedTlsVersion; use v1_0, v1_1, v1_2 or v1_3."
            )));
        }
    };
    if m.get("includeResourceData").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "Change notifications with resource data (includeResourceData) are not supported by the simulator.",
        ));
    }
    check_url("NotificationUrl", &notification_url)?;
    if let Some(u) = &lifecycle_url {
        check_url("LifecycleNotificationUrl", u)?;
    }
    let now = st.now();
    let expiration = check_expiration(expiration_raw, now)?;
    let (who, scope) = parse_resource(&resource)?;
    let (mailbox, creator_id) = {
        let dir = st.dir();
        let user_ref = match (&who, &p.delegated) {
            (Who::User(r), _) => r.clone(),
            (Who::Me, Some((uid, _))) => uid.to_string(),
            (Who::Me, None) => {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                ));
            }
        };
        let user = authorize_mailbox(&dir, &p, &user_ref, Need::Read)?;
        if let Scope::Calendar(cid) = &scope
            && user.calendar(cid).is_none()
        {
            return Err(GraphError::item_not_found());
        }
        let creator = match &p.delegated {
            Some((uid, _)) => *uid,
            None => dir
                .tenant_by_id(p.tenant_id)
                .and_then(|t| t.apps.iter().find(|a| a.client_id == p.app_id))
                .map(|a| a.sp_object_id)
                .unwrap_or(p.app_id),
        };
        (user.id, creator)
    };
    let cap = st.subscriptions.config().max_per_mailbox;
    if st.subscriptions.count_for_mailbox(mailbox, now) >= cap {
        return Err(too_many(cap));
    }
    // The handshake: both URLs must answer it (no lock is held meanwhile).
    st.subscriptions.validate_url(&notification_url).await?;
    if let Some(u) = &lifecycle_url {
        st.subscriptions.validate_url(u).await?;
    }
    let sub = Subscription {
        id: Uuid::new_v4(),
        tenant_id: p.tenant_id,
        app_id: p.app_id,
        creator_id,
        delegated: p.delegated.is_some(),
        mailbox,
        resource,
        scope,
        change_types,
        client_state,
        notification_url,
        lifecycle_url,
        expiration,
        tls_version,
        silent: false,
        drop_next: 0,
        reauthorization_required: false,
        counters: Default::default(),
    };
    st.subscriptions
        .insert(&st, sub.clone())
        .map_err(too_many)?;
    Ok(entity(&st, &sub, StatusCode::CREATED))
}

fn too_many(cap: usize) -> GraphError {
    GraphError::new(
        StatusCode::FORBIDDEN,
        "ExtensionError",
        format!("The maximum number of subscriptions ({cap}) for this mailbox has been reached."),
    )
}

async fn list(State(st): State<St>, p: Principal) -> Response {
    let value: Vec<Value> = st
        .subscriptions
        .list(st.now())
        .iter()
        .filter(|s| owns(&p, s))
        .map(Subscription::to_json)
        .collect();
    axum::Json(json!({
        "@odata.context": wire::context_url(st.base_url(), "subscriptions"),
        "value": value,
    }))
    .into_response()
}

/// The caller's subscription `id`.
fn owned(st: &St, p: &Principal, id: &str) -> GraphResult<Subscription> {
    let uuid = parse_id(id)?;
    st.subscriptions
        .get(uuid, st.now())
        .filter(|s| owns(p, s))
        .ok_or_else(|| not_found(id))
}

async fn get_one(
    State(st): State<St>,
    p: Principal,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let s = owned(&st, &p, &id)?;
    Ok(entity(&st, &s, StatusCode::OK))
}

async fn update(
    State(st): State<St>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    let current = owned(&st, &p, &id)?;
    let m = object(body)?;
    if m.contains_key("lifecycleNotificationUrl") {
        return Err(invalid(
            "lifecycleNotificationUrl can only be set when the subscription is created.",
        ));
    }
    for key in m.keys() {
        if !matches!(
            key.as_str(),
            "expirationDateTime" | "notificationUrl" | "@odata.type" | "id"
        ) {
            return Err(invalid(format!(
                "Property '{key}' of a subscription cannot be updated; only expirationDateTime and notificationUrl can."
            )));
        }
    }
    let now = st.now();
    let expiration = match string_prop(&m, "expirationDateTime")? {
        Some(raw) => Some(check_expiration(raw, now)?),
        None => None,
    };
    let notification_url = match string_prop(&m, "notificationUrl")? {
        Some(u) if u != current.notification_url => {
            check_url("NotificationUrl", u)?;
            st.subscriptions.validate_url(u).await?;
            Some(u.to_owned())
        }
        _ => None,
    };
    let updated = st
        .subscriptions
        .update(current.id, now, |s| {
            if let Some(e) = expiration {
                s.expiration = e;
                s.reauthorization_required = false;
            }
            if let Some(u) = notification_url {
                s.notification_url = u;
            }
            s.clone()
        })
        .ok_or_else(|| not_found(&id))?;
    Ok(entity(&st, &updated, StatusCode::OK))
}

async fn delete(
    State(st): State<St>,
    p: Principal,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let s = owned(&st, &p, &id)?;
    st.subscriptions.remove(s.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /subscriptions/{id}/reauthorize`: the caller still has access to the mailbox.
async fn reauthorize(
    State(st): State<St>,
    p: Principal,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let s = owned(&st, &p, &id)?;
    {
        let dir = st.dir();
        authorize_mailbox(&dir, &p, &s.mailbox.to_string(), Need::Read)?;
    }
    st.subscriptions
        .update(s.id, st.now(), |s| s.reauthorization_required = false)
        .ok_or_else(|| not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resource_forms() {
        for (raw, cal) in [
            ("/users/a@b.c/events", None),
            ("users/6e1d0c36-7a0f-4a5e-9d3c-1c7f9a0d2b11/events", None),
            ("/Users/a@b.c/Calendar/Events", None),
            ("/users/a@b.c/calendars/AAMk=/events", Some("AAMk=")),
            ("me/events", None),
        ] {
            let (_, scope) = parse_resource(raw).unwrap();
            match cal {
                None => assert_eq!(scope, Scope::DefaultCalendar, "{raw}"),
                Some(c) => assert_eq!(scope, Scope::Calendar(c.into()), "{raw}"),
            }
        }
        for bad in [
            "/users/a@b.c/messages",
            "/users/a@b.c/events?$filter=x",
            "/users//events",
            "/groups/x/events",
            "/users/a@b.c/events/AAMk=",
        ] {
            assert!(parse_resource(bad).is_err(), "{bad}");
        }
    }
}
