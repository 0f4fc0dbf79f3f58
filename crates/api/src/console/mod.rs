//! The admin console at `/console`: server-rendered HTML (askama templates in
//! `crates/api/templates/console`, one stylesheet in `crates/api/assets`, no JavaScript), for
//! the administrator's flows of the seed guides. Every action calls the same library as the
//! CLI and the REST API (`calgate-admin`, the store, the engine).
//!
//! Sign-in: the administrator password (`calgate admin set-password`, stored as an argon2id
//! hash) or an API key with the `admin` scope. A session is a random token in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` when calgate's public URL is
//! https), kept in the store by the token's SHA-256 (a restart signs nobody out; instances
//! sharing the store share sessions) for at most 12 hours. Every form
//! carries the session's CSRF token (the sign-in form a token of its own, double-submitted in
//! a cookie); a form without it is refused. After three failed sign-ins each further attempt
//! waits longer (1 s, 2 s, 4 s, … up to 30 s) and is refused until the wait is over.

mod actions;
mod pages;
mod session;

use axum::Router;
use axum::routing::{get, post};

pub use session::{ConsoleState, hash_password, verify_password};

use crate::AppState;

/// The console's routes (merged into the API's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::overview))
        .route("/console/", get(pages::overview))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route(
            "/console/connections",
            get(pages::connections).post(actions::add_connection),
        )
        .route(
            "/console/connections/{name}/secrets",
            post(actions::add_secret),
        )
        .route(
            "/console/connections/{name}/secrets/{id}/remove",
            post(actions::remove_secret),
        )
        .route("/console/mailboxes/verify", post(actions::verify))
        .route("/console/mailboxes/import", post(actions::import))
        .route("/console/rooms/discover", post(actions::discover))
        .route("/console/rooms/link", post(actions::link_rooms))
        .route(
            "/console/connections/{name}/test",
            post(pages::test_connection),
        )
        .route("/console/mailboxes", get(pages::mailboxes))
        .route("/console/mailboxes/{address}", get(pages::mailbox))
        .route("/console/mailboxes/{address}/why", get(pages::why))
        .route("/console/mailboxes/{address}/event", get(pages::event))
        .route("/console/mailboxes/{address}/unlink", post(actions::unlink))
        .route(
            "/console/connections/{name}/remove",
            post(actions::remove_connection),
        )
        .route("/console/accounts", get(pages::accounts))
        .route("/console/accounts/disconnect", post(pages::disconnect))
        .route("/console/accounts/connect", post(pages::connect))
        .route("/console/accounts/callback", get(pages::connect_callback))
        .route("/console/bookings", get(pages::bookings))
        .route("/console/bookings/{id}/retry", post(pages::retry_booking))
        .route("/console/webhooks", get(pages::webhooks))
        .route("/console/webhooks/{id}/replay", post(pages::replay))
        .route("/console/doctor", get(pages::doctor))
        .route("/console/assets/console.css", get(pages::stylesheet))
}
