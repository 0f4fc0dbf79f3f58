//! The control API under `/_sim/`, for tests, demos and benchmarks (documented in the README).
//! It needs no token: it stands for the Microsoft 365 admin centre, Outlook, and the network.
//!
//! - `control_apps`: app registrations, secrets, certificates, consents, RBAC scopes, access policies
//! - `control_directory`: mailboxes (users, rooms, equipment), groups, room lists, the clock
//! - `control_events`: events changed as a person in Outlook would
//! - `control_faults`: fault injection, settings, per-mailbox counters

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .merge(crate::control_apps::routes())
        .merge(crate::control_directory::routes())
        .merge(crate::control_events::routes())
        .merge(crate::control_faults::routes())
}
