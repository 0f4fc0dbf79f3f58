//! (Skeleton.)

use axum::Router;

use super::St;

pub fn routes() -> Router<St> {
    Router::new()
}
