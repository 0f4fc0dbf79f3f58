//! calendarView/delta: opaque skip/delta tokens backed by server-side sync states. (Skeleton.)

use axum::Router;

use super::St;

/// Server-side sync states of delta rounds (the "internal delta token cache").
#[derive(Debug, Default)]
pub struct SyncStates {}

pub fn routes() -> Router<St> {
    Router::new()
}
