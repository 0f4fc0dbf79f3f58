//! Availability of people and rooms over a window: each mailbox's busy intervals (after the
//! busy mapping: tentative and out-of-office block time, free does not), merged, and the free
//! slots common to all. `POST /v1/availability` and `calgate freebusy` both call [`compute`].

use calgate_core::BusyMapping;
use calgate_core::busy::{Interval, free_slots, merge};
use calgate_store::Store;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The most mailboxes one request may ask about.
pub const MAX_MAILBOXES: usize = 200;

/// A busy or free interval (RFC 3339 instants, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntervalDto {
    pub start: String,
    pub end: String,
}

impl From<&Interval> for IntervalDto {
    fn from(i: &Interval) -> Self {
        IntervalDto {
            start: i.start.to_string(),
            end: i.end.to_string(),
        }
    }
}

/// One mailbox's busy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailboxBusy {
    pub address: String,
    /// Merged, sorted, within the window.
    pub busy: Vec<IntervalDto>,
    /// When the mailbox was last synced (`null`: never): how fresh `busy` is.
    pub last_synced: Option<String>,
}

/// The answer of `POST /v1/availability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    pub mailboxes: Vec<MailboxBusy>,
    /// Windows of at least `duration_minutes` where every listed mailbox is free.
    pub free_slots: Vec<IntervalDto>,
}

/// Availability of `addresses` over `[from, to)`; free slots of at least `min`.
pub async fn compute(
    store: &dyn Store,
    addresses: &[String],
    from: Timestamp,
    to: Timestamp,
    min: SignedDuration,
) -> Result<Availability, ApiError> {
    if addresses.is_empty() {
        return Err(ApiError::bad_request(
            "mailboxes is empty: list the addresses to check",
        ));
    }
    if addresses.len() > MAX_MAILBOXES {
        return Err(ApiError::bad_request(format!(
            "{} mailboxes asked for; at most {MAX_MAILBOXES} at once",
            addresses.len()
        )));
    }
    let mapping = BusyMapping::default();
    let mut out = Vec::with_capacity(addresses.len());
    let mut all = Vec::with_capacity(addresses.len());
    for a in addresses {
        let Some(m) = store.mailbox(a.trim()).await? else {
            return Err(ApiError::not_found(format!(
                "{} is not linked: link it first (POST /v1/mailboxes or `calgate mailbox link`)",
                calgate_core::printable(a.trim())
            )));
        };
        let busy: Vec<Interval> = store
            .instances(m.id, from, to)
            .await?
            .into_iter()
            .filter(|s| s.instance.is_busy(mapping))
            .map(|s| Interval {
                start: s.instance.when.start,
                end: s.instance.when.end,
            })
            .collect();
        let busy = merge(busy, from, to);
        let last = store.status(m.id).await?.and_then(|s| s.last_success);
        out.push(MailboxBusy {
            address: m.address,
            busy: busy.iter().map(IntervalDto::from).collect(),
            last_synced: last.map(|t| t.to_string()),
        });
        all.push(busy);
    }
    let free = free_slots(&all, from, to, min);
    Ok(Availability {
        mailboxes: out,
        free_slots: free.iter().map(IntervalDto::from).collect(),
    })
}
