//! Injected faults (`/_sim/faults`): extra latency, an error rate, a 429 storm, dropping the
//! connection after the server has acted. (410 on the next delta lives in `graph::delta`.)
//! OWNER: graph-extras. (Skeleton.)

use std::sync::Arc;

use uuid::Uuid;

use crate::error::GraphResult;
use crate::state::SimState;

#[derive(Debug, Default)]
pub struct Faults {}

impl Faults {
    /// Called for every mailbox call after authorization and throttling.
    pub async fn before_mailbox_call(&self, _st: &Arc<SimState>, _app: Uuid, _mailbox: Uuid) -> GraphResult<()> {
        Ok(())
    }
    /// Extra latency to add to every non-control response.
    pub fn extra_latency_ms(&self) -> u64 {
        0
    }
    /// Whether to break the connection of this (already served) request.
    pub fn take_drop_connection(&self, _path: &str) -> bool {
        false
    }
}
