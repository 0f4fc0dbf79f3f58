//! Bookings as the host application puts them, and the simulator's truth to compare with.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;

use calgate_core::MailboxKind;
use calgate_store::Store;
use calgate_testkit::Control;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

pub fn role_of(kind: MailboxKind) -> &'static str {
    match kind {
        MailboxKind::User => "organizer",
        MailboxKind::Room => "room",
        MailboxKind::Equipment => "equipment",
    }
}

/// Puts booking `id` into the `targets` (address, kind), on day `day` from now.
pub async fn put(
    store: &dyn Store,
    id: &str,
    subject: &str,
    day: i64,
    targets: &[&(String, MailboxKind)],
) {
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(24 * day))
        .unwrap();
    let req: calgate_api::bookings::BookingRequest = serde_json::from_value(json!({
        "subject": subject,
        "start": start.to_string(),
        "end": (start + SignedDuration::from_mins(30)).to_string(),
        "time_zone": "Europe/London",
        "calendars": targets.iter().map(|(a, k)| json!({"address": a, "role": role_of(*k)})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let spec = calgate_api::bookings::parse_request(store, &req)
        .await
        .unwrap();
    store.put_booking(id, &spec).await.unwrap();
}

/// Every instance of every mailbox over [now − 2 d, now + 70 d): address → (subject, id).
pub async fn truth(
    control: &Control,
    mailboxes: &[(String, MailboxKind)],
) -> HashMap<String, Vec<(String, String)>> {
    let from = Timestamp::now() - SignedDuration::from_hours(48);
    let to = Timestamp::now() + SignedDuration::from_hours(24 * 70);
    let mut out = HashMap::new();
    for (a, _) in mailboxes {
        let items = control
            .truth(a, from, to)
            .await
            .into_iter()
            .map(|e: Value| {
                (
                    e["subject"].as_str().unwrap_or_default().to_owned(),
                    e["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        out.insert(a.clone(), items);
    }
    out
}
