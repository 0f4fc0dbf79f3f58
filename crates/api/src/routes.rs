//! The REST API's handlers (DESIGN.md, "REST API contract").

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calgate_core::{ApiScope, BusyMapping, MailboxKind, NewMailbox, PrivacyPolicy};
use calgate_store::InstanceCursor;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::availability::{self, Availability};
use crate::dto::{ChecklistDto, ConnectionDto, CredentialDto, InstanceDto, MailboxDto};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

// ---- helpers ---------------------------------------------------------------------------------

/// A point in time of a request: an RFC 3339 instant, or a date (its midnight, UTC).
pub fn parse_time(field: &str, v: &str) -> ApiResult<Timestamp> {
    let v = v.trim();
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = v.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    Err(ApiError::bad_request(format!(
        "{field} is not a date: give an RFC 3339 instant (2026-12-07T09:00:00Z) or a date (2026-12-07, midnight UTC), not '{}'",
        calgate_core::printable(v).trim_matches('\'')
    )))
}

/// `[from, to)` of a request, checked: `to` after `from`, at most the configured span.
fn window(state: &AppState, from: &str, to: &str) -> ApiResult<(Timestamp, Timestamp)> {
    let (from, to) = (parse_time("from", from)?, parse_time("to", to)?);
    if to <= from {
        return Err(ApiError::bad_request(format!(
            "to ({to}) must be after from ({from})"
        )));
    }
    let days = state.config.max_window_days;
    if to.duration_since(from) > SignedDuration::from_hours(24 * days) {
        return Err(ApiError::bad_request(format!(
            "the window from {from} to {to} is longer than {days} days: ask for a shorter one"
        )));
    }
    Ok((from, to))
}

/// The linked mailbox at `address` (checked as an address first).
async fn mailbox(state: &AppState, address: &str) -> ApiResult<calgate_core::Mailbox> {
    calgate_core::check_address(address.trim()).map_err(|e| ApiError::bad_request(e.message()))?;
    state.store.mailbox(address.trim()).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "{} is not linked: link it with POST /v1/mailboxes (or `calgate mailbox link`)",
            address.trim()
        ))
    })
}

/// A JSON answer with a weak ETag of its bytes; `304` when `If-None-Match` matches.
fn json_with_etag<T: Serialize>(headers: &HeaderMap, value: &T) -> ApiResult<Response> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
    let digest = Sha256::digest(&body);
    let etag = format!(
        "W/\"{}\"",
        URL_SAFE_NO_PAD.encode(digest.get(..16).unwrap_or(&digest))
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                t.trim() == etag
                    || t.trim() == "*"
                    || t.trim().trim_start_matches("W/") == etag.trim_start_matches("W/")
            })
        });
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

// ---- health ----------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: String,
    pub store: bool,
    pub scheduler: bool,
}

/// Readiness: the store answers and the background scheduler runs.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Ready),
              (status = 503, description = "Not ready", body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.list_connections().await.is_ok();
    let scheduler = state.scheduler.as_ref().is_none_or(|s| s.is_alive());
    let ok = store && scheduler;
    let body = axum::Json(Ready {
        status: if ok { "ready" } else { "not ready" }.to_owned(),
        store,
        scheduler,
    });
    if ok {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let states = state.store.sync_states().await?;
    let shared = state.engine.shared();
    let text = state.metrics.render(
        &states,
        &shared.metrics(),
        &shared.responses_by_status(),
        Timestamp::now(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

// ---- mailboxes -------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MailboxList {
    pub mailboxes: Vec<MailboxDto>,
}

/// Linked mailboxes with their sync status.
#[utoipa::path(get, path = "/v1/mailboxes", tag = "mailboxes", security(("api_key" = [])),
    responses((status = 200, body = MailboxList),
              (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn list_mailboxes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<MailboxList>> {
    caller.require(ApiScope::Read)?;
    let states = state.store.sync_states().await?;
    let records: std::collections::HashMap<
        calgate_store::MailboxId,
        calgate_store::SubscriptionRecord,
    > = if state.notifier.is_some() {
        state
            .store
            .subscriptions()
            .await?
            .into_iter()
            .map(|r| (r.mailbox, r))
            .collect()
    } else {
        Default::default()
    };
    let now = Timestamp::now();
    Ok(axum::Json(MailboxList {
        mailboxes: states
            .iter()
            .map(|s| MailboxDto {
                notifications: Some(crate::dto::NotificationsDto::new(
                    state.notifier.is_some(),
                    records.get(&s.mailbox.id),
                    now,
                )),
                ..MailboxDto::new(s)
            })
            .collect(),
    }))
}

/// A mailbox to link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    #[schema(example = "room-camden@contoso.example")]
    pub address: String,
    #[schema(example = "demo")]
    pub connection: String,
    /// `user`, `room` or `equipment` (default: what Exchange says, else `user`).
    #[schema(example = "room")]
    pub kind: Option<String>,
    /// `full`, `busy-only` or `full-including-private` (default `full`).
    #[schema(example = "busy-only")]
    pub privacy: Option<String>,
    pub external_id: Option<String>,
}

/// What linking did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkResponse {
    pub mailbox: MailboxDto,
    pub created: bool,
    /// How Exchange confirmed it.
    pub verified: Option<String>,
    /// Linked without verification (Exchange could not be asked now).
    pub warning: Option<String>,
}

/// Links a mailbox after verifying it through its connection.
#[utoipa::path(post, path = "/v1/mailboxes", tag = "mailboxes", security(("api_key" = [])),
    request_body = LinkRequest,
    responses((status = 201, description = "Linked", body = LinkResponse),
              (status = 200, description = "Already linked (settings given were applied)", body = LinkResponse),
              (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn link_mailbox(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<LinkRequest>,
) -> ApiResult<Response> {
    caller.require(ApiScope::Admin)?;
    let kind = req
        .kind
        .as_deref()
        .map(|k| k.parse::<MailboxKind>().map_err(ApiError::bad_request))
        .transpose()?;
    let privacy = req
        .privacy
        .as_deref()
        .map(|p| p.parse::<PrivacyPolicy>().map_err(ApiError::bad_request))
        .transpose()?;
    if req.external_id.as_deref().is_some_and(|e| e.len() > 256) {
        return Err(ApiError::bad_request(
            "external_id is longer than 256 characters",
        ));
    }
    let new = NewMailbox {
        address: req.address.trim().to_owned(),
        connection: req.connection.trim().to_owned(),
        kind,
        external_id: req.external_id,
        privacy,
    };
    use calgate_admin::mailboxes::{LinkError, LinkOptions};
    let report = calgate_admin::mailboxes::link(
        state.store.as_ref(),
        state.engine.shared(),
        &new,
        LinkOptions { verify: true },
    )
    .await
    .map_err(|e| match e {
        LinkError::Usage(m) => ApiError::bad_request(m),
        LinkError::UnknownConnection(_) => ApiError::unprocessable(e.to_string()),
        LinkError::Conflict(m) => ApiError::conflict(m),
        LinkError::Refused { reason, .. } => ApiError::unprocessable(reason),
        LinkError::Store(s) => s.into(),
    })?;
    let states = state.store.sync_states().await?;
    let s = states
        .iter()
        .find(|s| s.mailbox.id == report.mailbox.id)
        .ok_or_else(|| ApiError::conflict("the mailbox was unlinked meanwhile"))?;
    if report.created
        && let Some(sched) = &state.scheduler
    {
        sched.sync_now(&report.mailbox.address);
    }
    let body = axum::Json(LinkResponse {
        mailbox: MailboxDto::new(s),
        created: report.created,
        verified: report.verified,
        warning: report.warning,
    });
    Ok(if report.created {
        (StatusCode::CREATED, body).into_response()
    } else {
        body.into_response()
    })
}

/// Unlinks a mailbox and deletes everything stored for it.
#[utoipa::path(delete, path = "/v1/mailboxes/{address}", tag = "mailboxes", security(("api_key" = [])),
    params(("address" = String, Path, description = "The mailbox's address", example = "anna.devries@contoso.example")),
    responses((status = 204, description = "Unlinked"), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn unlink_mailbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiScope::Admin)?;
    let m = mailbox(&state, &address).await?;
    if state.store.unlink_mailbox(&m.address).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{} is not linked", m.address)))
    }
}

/// Verify a mailbox: exists, in the app's scope, its kind, its calendar readable.
#[utoipa::path(post, path = "/v1/mailboxes/{address}/verify", tag = "mailboxes", security(("api_key" = [])),
    params(("address" = String, Path, description = "The mailbox's address", example = "anna.devries@contoso.example")),
    responses((status = 200, body = ChecklistDto), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn verify_mailbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(address): Path<String>,
) -> ApiResult<axum::Json<ChecklistDto>> {
    caller.require(ApiScope::Admin)?;
    let m = mailbox(&state, &address).await?;
    let list = calgate_admin::verify::verify_mailbox(
        state.store.as_ref(),
        &m.connection,
        &m.address,
        &calgate_admin::verify::VerifyOptions::default(),
    )
    .await
    .map_err(admin_error)?;
    Ok(axum::Json(ChecklistDto::from(&list)))
}

fn admin_error(e: calgate_admin::diagnose::AdminError) -> ApiError {
    use calgate_admin::diagnose::AdminError as E;
    match e {
        E::UnknownConnection(_) => ApiError::not_found(e.to_string()),
        E::Store(s) => s.into(),
        E::Setup(g) => ApiError::unavailable(g.message),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncQueued {
    pub address: String,
    pub queued: bool,
}

/// Asks for an immediate sync round of the mailbox (without waiting for the cadence).
#[utoipa::path(post, path = "/v1/mailboxes/{address}/sync", tag = "mailboxes", security(("api_key" = [])),
    params(("address" = String, Path, description = "The mailbox's address", example = "anna.devries@contoso.example")),
    responses((status = 202, body = SyncQueued), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn sync_mailbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(address): Path<String>,
) -> ApiResult<Response> {
    caller.require(ApiScope::Write)?;
    let m = mailbox(&state, &address).await?;
    let Some(s) = &state.scheduler else {
        return Err(ApiError::unavailable(
            "the background scheduler is not running",
        ));
    };
    s.sync_now(&m.address);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SyncQueued {
            address: m.address,
            queued: true,
        }),
    )
        .into_response())
}

// ---- events ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start: RFC 3339 instant or date (midnight UTC).
    #[param(example = "2026-12-07T00:00:00Z")]
    pub from: String,
    /// End (exclusive): RFC 3339 instant or date (midnight UTC).
    #[param(example = "2026-12-14")]
    pub to: String,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Instances per page (default 500, at most 1,000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<InstanceDto>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct PageCursor {
    /// The window it belongs to (µs), and where the next page starts.
    f: i64,
    t: i64,
    s: i64,
    i: String,
}

/// A mailbox's instances over a window (privacy and busy mapping applied), paginated.
#[utoipa::path(get, path = "/v1/mailboxes/{address}/events", tag = "events", security(("api_key" = [])),
    params(("address" = String, Path, description = "The mailbox's address", example = "anna.devries@contoso.example"), EventsQuery),
    responses((status = 200, body = EventsPage), (status = 304, description = "Not modified (If-None-Match)"),
              (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(address): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(ApiScope::Read)?;
    let (from, to) = window(&state, &q.from, &q.to)?;
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let m = mailbox(&state, &address).await?;
    let bad_cursor = || {
        ApiError::bad_request(
            "cursor is not one of this window's: pass next_cursor as given, with the same from and to",
        )
    };
    let after = match &q.cursor {
        None => None,
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD.decode(c.trim()).map_err(|_| bad_cursor())?;
            let pc: PageCursor = serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?;
            if pc.f != from.as_microsecond() || pc.t != to.as_microsecond() {
                return Err(bad_cursor());
            }
            Some(InstanceCursor {
                start: Timestamp::from_microsecond(pc.s).map_err(|_| bad_cursor())?,
                exchange_id: pc.i,
            })
        }
    };
    let page = state
        .store
        .instances_page(m.id, from, to, after.as_ref(), limit)
        .await?;
    let mapping = BusyMapping::default();
    let next_cursor = page.next.map(|n| {
        let pc = PageCursor {
            f: from.as_microsecond(),
            t: to.as_microsecond(),
            s: n.start.as_microsecond(),
            i: n.exchange_id,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&pc).unwrap_or_default())
    });
    let body = EventsPage {
        events: page
            .instances
            .iter()
            .map(|s| InstanceDto::new(s, m.privacy, mapping))
            .collect(),
        next_cursor,
    };
    json_with_etag(&headers, &body)
}

// ---- availability ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRequest {
    /// Addresses of linked mailboxes (people and rooms), at most 200.
    #[schema(example = json!(["anna.devries@contoso.example", "room-camden@contoso.example"]))]
    pub mailboxes: Vec<String>,
    /// RFC 3339 instant or date (midnight UTC).
    #[schema(example = "2026-12-07T08:00:00Z")]
    pub from: String,
    /// End (exclusive): RFC 3339 instant or date (midnight UTC).
    #[schema(example = "2026-12-09")]
    pub to: String,
    /// The shortest free slot worth reporting, in minutes (default 30).
    #[schema(example = 60)]
    pub duration_minutes: Option<u32>,
}

/// Busy time of several mailboxes, merged, and the free slots common to all.
#[utoipa::path(post, path = "/v1/availability", tag = "availability", security(("api_key" = [])),
    request_body = AvailabilityRequest,
    responses((status = 200, body = Availability), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn availability(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<AvailabilityRequest>,
) -> ApiResult<axum::Json<Availability>> {
    caller.require(ApiScope::Read)?;
    let (from, to) = window(&state, &req.from, &req.to)?;
    let minutes = req.duration_minutes.unwrap_or(30);
    if minutes == 0 || minutes > 24 * 60 * 31 {
        return Err(ApiError::bad_request(
            "duration_minutes must be between 1 and 44640 (31 days)",
        ));
    }
    for a in &req.mailboxes {
        calgate_core::check_address(a.trim()).map_err(|e| ApiError::bad_request(e.message()))?;
    }
    let result = availability::compute(
        state.store.as_ref(),
        &state.busy,
        &req.mailboxes,
        from,
        to,
        SignedDuration::from_mins(i64::from(minutes)),
    )
    .await?;
    Ok(axum::Json(result))
}

// ---- connections -----------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionDto>,
}

/// Connections (never their secrets).
#[utoipa::path(get, path = "/v1/connections", tag = "connections", security(("api_key" = [])),
    responses((status = 200, body = ConnectionList), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<ConnectionList>> {
    caller.require(ApiScope::Admin)?;
    let mailboxes = state.store.list_mailboxes().await?;
    let connections = state
        .store
        .list_connections()
        .await?
        .into_iter()
        .map(|c| ConnectionDto {
            mailboxes: mailboxes.iter().filter(|m| m.connection_id == c.id).count() as u64,
            kind: c.kind().as_str().to_owned(),
            ews: c.ews.as_ref().map(|e| crate::dto::EwsConnectionDto {
                url: e.url.clone(),
                username: e.username.clone(),
                auth: e.auth.as_str().to_owned(),
                impersonation: e.impersonation,
            }),
            credentials: c
                .credentials
                .iter()
                .map(|k| CredentialDto {
                    id: k.id.0,
                    kind: k.kind.as_str().to_owned(),
                    key_id: k.key_id.clone(),
                    expires_at: k.expires_at.map(|t| t.to_string()),
                })
                .collect(),
            name: c.name,
            tenant: c.tenant,
            client_id: c.client_id,
            authority: c.authority,
            graph_url: c.graph_url,
            cloud: c.cloud,
        })
        .collect();
    Ok(axum::Json(ConnectionList { connections }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The mailbox to probe (default: the first linked to the connection).
    pub mailbox: Option<String>,
    /// `pull` (default) or `push`: whether writing must be allowed.
    pub purpose: Option<String>,
}

/// Test settings: one step per check, with the fix for every failure.
#[utoipa::path(post, path = "/v1/connections/{name}/test", tag = "connections", security(("api_key" = [])),
    params(("name" = String, Path, description = "The connection's name")),
    request_body(content = TestRequest, description = "Optional", content_type = "application/json"),
    responses((status = 200, body = ChecklistDto), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<ChecklistDto>> {
    caller.require(ApiScope::Admin)?;
    let req: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body is not a valid test request: {e}"))
        })?
    };
    use calgate_admin::diagnose::{Purpose, TestOptions, test_connection};
    let purpose = match req.purpose.as_deref() {
        None | Some("pull") => Purpose::Pull,
        Some("push") => Purpose::Push,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "purpose must be pull or push, not '{}'",
                calgate_core::printable(other).trim_matches('\'')
            )));
        }
    };
    let list = test_connection(
        state.store.as_ref(),
        name.trim(),
        &TestOptions {
            mailbox: req.mailbox,
            purpose,
            ..TestOptions::default()
        },
    )
    .await
    .map_err(admin_error)?;
    Ok(axum::Json(ChecklistDto::from(&list)))
}

// ---- feeds -----------------------------------------------------------------------------------

/// An ICS feed (no API key: the token in the URL is the secret).
#[utoipa::path(get, path = "/v1/feeds/{token}", tag = "feeds",
    params(("token" = String, Path, description = "The feed's token, followed by .ics")),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> ApiResult<Response> {
    let unknown = || ApiError::not_found("no such feed (it was never made, or was revoked)");
    let token = file.strip_suffix(".ics").unwrap_or(&file);
    if token.is_empty() || token.len() > 128 {
        return Err(unknown());
    }
    let f = state
        .store
        .feed_by_token_hash(&crate::auth::feed_token_hash(token))
        .await?
        .filter(|f| f.revoked_at.is_none())
        .ok_or_else(unknown)?;
    let m = state.store.mailbox(&f.address).await?.ok_or_else(unknown)?;
    let now = Timestamp::now();
    let window = state.config.window.window_at(now);
    let instances = state
        .store
        .instances(m.id, window.start, window.end)
        .await?;
    let policy = crate::ics::narrower(f.privacy, m.privacy);
    let body = crate::ics::render(
        &m.address,
        &instances,
        policy,
        window.start,
        window.end,
        now,
    );
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8")
        .header(header::CACHE_CONTROL, "private, max-age=300")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
