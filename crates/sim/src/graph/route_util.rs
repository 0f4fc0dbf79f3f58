//! The six path forms of a calendarView-shaped endpoint — `/users/{id}/…`,
//! `/users/{id}/calendar/…`, `/users/{id}/calendars/{cid}/…` and the same under `/me/…` — routed
//! to one handler that gets the request's [`Target`].
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::future::Future;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::view::{CalSel, Target, Who};
use super::{Principal, St};
use crate::error::GraphResult;

/// Routes `GET` on the six path forms ending in `leaf` (e.g. `calendarView`) to `handler`, called
/// with the state, the principal, the target, the raw query and the headers; an error becomes
/// its Graph error response.
pub fn calendar_routes<H, F>(leaf: &str, handler: H) -> Router<St>
where
    H: Fn(St, Principal, Target, Option<String>, HeaderMap) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = GraphResult<Response>> + Send + 'static,
{
    let serve = move |st: St, p: Principal, who: Who, cal: CalSel, q, headers| async move {
        handler(st, p, Target { who, cal }, q, headers)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Router::new()
        .route(
            &format!("/users/{{id}}/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      Path(id): Path<String>,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::User(id), CalSel::Root, q, headers)
                },
            ),
        )
        .route(
            &format!("/users/{{id}}/calendar/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      Path(id): Path<String>,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::User(id), CalSel::Default, q, headers)
                },
            ),
        )
        .route(
            &format!("/users/{{id}}/calendars/{{cid}}/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      Path((id, cid)): Path<(String, String)>,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::User(id), CalSel::Id(cid), q, headers)
                },
            ),
        )
        .route(
            &format!("/me/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::Me, CalSel::Root, q, headers)
                },
            ),
        )
        .route(
            &format!("/me/calendar/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::Me, CalSel::Default, q, headers)
                },
            ),
        )
        .route(
            &format!("/me/calendars/{{cid}}/{leaf}"),
            get(
                move |State(st): State<St>,
                      p: Principal,
                      Path(cid): Path<String>,
                      RawQuery(q): RawQuery,
                      headers: HeaderMap| {
                    serve(st, p, Who::Me, CalSel::Id(cid), q, headers)
                },
            ),
        )
}
