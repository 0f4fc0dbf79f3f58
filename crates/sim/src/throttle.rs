//! Graph's Outlook throttling per (app, mailbox): at most N concurrent requests (a further one →
//! 429 `ApplicationThrottled`, "MailboxConcurrency") and a request budget per 10 minutes
//! (→ 429 `TooManyRequests` with `Retry-After`). Also per-mailbox request counters and the peak
//! concurrency seen, read by `/_sim/stats`. OWNER: graph-extras. (Skeleton.)

use std::sync::Arc;

use uuid::Uuid;

use crate::error::GraphResult;
use crate::state::SimState;

#[derive(Debug, Default)]
pub struct Throttle {}

/// Held while a request is in flight; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Permit {}

impl Throttle {
    pub fn acquire(&self, _st: &Arc<SimState>, _app: Uuid, _mailbox: Uuid) -> GraphResult<Permit> {
        Ok(Permit {})
    }
}
