//! Access tokens: issuing Graph-shaped JWTs (RS256, `iss` sts.windows.net/{tid}/, `aud`, `tid`,
//! `appid`, `roles` or `scp`, `exp` 60–90 minutes) and validating them on Graph requests.
//! OWNER: identity. (Skeleton — to be completed.)

use std::sync::Arc;

use crate::error::{GraphError, GraphResult};
use crate::graph::Principal;
use crate::state::SimState;

#[derive(Debug)]
pub struct TokenState {}

impl TokenState {
    pub fn new() -> Self {
        TokenState {}
    }
}

impl Default for TokenState {
    fn default() -> Self {
        Self::new()
    }
}

/// Validates a bearer token presented to Graph. 401 `InvalidAuthenticationToken` when missing,
/// expired, forged, or for another audience.
pub fn validate_graph_token(_st: &Arc<SimState>, _token: &str) -> GraphResult<Principal> {
    Err(GraphError::invalid_token("Access token validation failure."))
}
