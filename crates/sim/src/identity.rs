//! Entra ID (Microsoft identity platform): OIDC discovery, JWKS, instance discovery, the v2 and
//! v1 token endpoints, and a simple /authorize page. OWNER: identity. (Skeleton.)

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
}
