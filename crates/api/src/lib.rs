//! calgate's interface to the host application: the REST API of `calgate serve` (DESIGN.md,
//! "REST API contract"), its OpenAPI document, ICS feeds, availability, and the JSON it reads
//! and writes.
//!
//! - `dto.rs` — the data transfer objects, with OpenAPI schemas; `InstanceDto` is the one
//!   JSON of an instance (`calgate events --json`, the API, webhooks).
//! - `routes.rs` — the handlers; `extract.rs` — extractors whose rejections are problem+json;
//!   `error.rs` — `ApiError` → `application/problem+json` (RFC 9457).
//! - `auth.rs` — API keys (`Authorization: Bearer cgk_…`; salted hashes stored; scopes
//!   `read`, `write`, `admin`) and feed tokens.
//! - `availability.rs` — busy intervals and free slots (also `calgate freebusy`).
//! - `ics.rs` — RFC 5545 feeds. `metrics.rs` — `/metrics`.
//! - `notifications.rs` — Graph's change notifications into calgate (no API key: each proves
//!   itself by its subscription's clientState), answered at once, acted on afterwards.
//! - `webhooks.rs` — the host application's events: signed webhooks (Standard Webhooks) from
//!   the store's durable queue, the change feed (`GET /v1/changes`), and the `Dispatcher` that
//!   `calgate serve` runs to fan the change log out and deliver.
//!
//! Architecture invariants: **only this crate knows the REST DTOs**; the store is reached only
//! through the `Store` trait; every response carries a `request-id`; no key, token or secret
//! is ever logged (log lines name the route template, never the raw path: a feed's path is its
//! token).
#![forbid(unsafe_code)]

pub mod auth;
pub mod availability;
pub mod bookings;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod ics;
pub mod metrics;
pub mod notifications;
pub mod routes;
pub mod state;
pub mod webhooks;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;

pub use state::{ApiConfig, AppState};

use crate::error::ApiError;

/// The largest request body accepted (1 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3.1 document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "calgate",
        description = "The host application's interface to Microsoft Exchange calendars: events of people, rooms and equipment, availability, ICS feeds, mailbox and connection administration.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::healthz, routes::readyz, routes::metrics,
        routes::list_mailboxes, routes::link_mailbox, routes::unlink_mailbox,
        routes::verify_mailbox, routes::sync_mailbox, routes::events,
        routes::availability, routes::list_connections, routes::test_connection, routes::feed,
        bookings::put_booking, bookings::get_booking, bookings::delete_booking,
        bookings::list_bookings,
        webhooks::add_webhook, webhooks::list_webhooks, webhooks::remove_webhook,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::replay, webhooks::changes,
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "events", description = "A mailbox's Exchange events"),
        (name = "availability", description = "Who and which room is free when"),
        (name = "mailboxes", description = "Linked mailboxes and their sync status"),
        (name = "connections", description = "App registrations and Test settings"),
        (name = "feeds", description = "ICS feeds"),
        (name = "bookings", description = "The host application's events, pushed into Exchange"),
        (name = "webhooks", description = "Signed webhooks and the change feed: what changed, as it happens"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `calgate apikey create`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as pretty JSON (what `/openapi.json` serves and `docs/openapi.json`
/// holds).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_default()
}

async fn openapi() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_json(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /openapi.json")
}

/// Every request: a `request-id` (a fresh UUID; an incoming one that is a plain token is kept),
/// a log line naming the route template, status and latency, and the metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let incoming = req
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned);
    let id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = {
        let _enter = span.enter();
        drop(_enter);
        tracing::Instrument::instrument(next.run(req), span.clone()).await
    };
    let took = started.elapsed();
    let status = response.status();
    state.metrics.record_request(&route, status.as_u16(), took);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = took.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", v);
    }
    response
}

/// A method the route does not have: 405 as problem+json.
async fn method_not_allowed(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    if r.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "this endpoint does not take that method: see /openapi.json",
        )
        .into_response();
    }
    r
}

/// The REST API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi))
        .route(
            "/v1/mailboxes",
            get(routes::list_mailboxes).post(routes::link_mailbox),
        )
        .route(
            "/v1/mailboxes/{address}",
            axum::routing::delete(routes::unlink_mailbox),
        )
        .route(
            "/v1/mailboxes/{address}/verify",
            post(routes::verify_mailbox),
        )
        .route("/v1/mailboxes/{address}/sync", post(routes::sync_mailbox))
        .route("/v1/mailboxes/{address}/events", get(routes::events))
        .route("/v1/availability", post(routes::availability))
        .route("/v1/connections", get(routes::list_connections))
        .route("/v1/connections/{name}/test", post(routes::test_connection))
        .route("/v1/feeds/{token}", get(routes::feed))
        .route("/v1/bookings", get(bookings::list_bookings))
        .route(
            "/v1/bookings/{external_id}",
            get(bookings::get_booking)
                .put(bookings::put_booking)
                .delete(bookings::delete_booking),
        )
        .route(
            "/v1/webhooks",
            get(webhooks::list_webhooks).post(webhooks::add_webhook),
        )
        .route(
            "/v1/webhooks/{id}",
            axum::routing::delete(webhooks::remove_webhook),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/replay", post(webhooks::replay))
        .route("/v1/changes", get(webhooks::changes))
        .route(
            calgate_sync::notify::NOTIFICATION_PATH,
            post(notifications::graph),
        )
        .route(
            calgate_sync::notify::LIFECYCLE_PATH,
            post(notifications::lifecycle),
        )
        .merge(console::router())
        .fallback(not_found)
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    /// The committed document is what the code generates (CI fails when it drifts).
    #[test]
    fn committed_openapi_document_is_current() {
        let committed = include_str!("../../../docs/openapi.json");
        let generated = format!("{}\n", super::openapi_json());
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: regenerate it with `cargo run -p calgate -- openapi > docs/openapi.json`"
        );
        let v: serde_json::Value = serde_json::from_str(committed).unwrap_or_default();
        assert_eq!(v["openapi"], "3.1.0");
        for p in [
            "/v1/mailboxes",
            "/v1/mailboxes/{address}/events",
            "/v1/availability",
            "/v1/feeds/{token}",
            "/healthz",
        ] {
            assert!(v["paths"].get(p).is_some(), "{p}");
        }
    }
}
