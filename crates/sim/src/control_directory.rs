//! (Skeleton.)

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
}
