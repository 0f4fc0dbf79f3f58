//! One event's history, as the change log recorded it: when calgate first stored it, each
//! change a sync round brought from Exchange, its removal. Read by the console's event page
//! and `calgate events ADDRESS --explain ID`; kept as long as the change log is (`[server]
//! history_days`, 7 by default).

use calgate_store::{Change, ChangeOp, ChangeRecord, ChangeVia, MailboxId, Store, StoredInstance};
use jiff::Timestamp;

/// What calgate knows of one event of a mailbox.
#[derive(Debug, Clone)]
pub struct EventHistory {
    /// The event as calgate holds it now (`None`: not held: removed, or never seen).
    pub now: Option<StoredInstance>,
    /// One line per change-log row, newest first ("2026-12-06 10:00:00 UTC: first stored by a
    /// sync round (2026-12-07 09:00–10:00 UTC)").
    pub lines: Vec<String>,
}

/// The history of the event with Exchange id `exchange_id` in `mailbox` (at most `limit`
/// change-log rows).
pub async fn event_history(
    store: &dyn Store,
    mailbox: MailboxId,
    exchange_id: &str,
    limit: u32,
) -> calgate_store::Result<EventHistory> {
    let now = store.instance(mailbox, exchange_id).await?;
    let rows = store.changes_of_event(mailbox, exchange_id, limit).await?;
    Ok(EventHistory {
        now,
        lines: rows.iter().filter_map(describe_change).collect(),
    })
}

/// A change-log row about an event, in an administrator's words (`None` for notices).
pub fn describe_change(c: &ChangeRecord) -> Option<String> {
    let Change::Instance { op, start, end, .. } = &c.change else {
        return None;
    };
    let span = match (start, end) {
        (Some(a), Some(b)) => format!(" ({}–{})", minute(*a), b.strftime("%H:%M UTC")),
        _ => String::new(),
    };
    let by = match c.via {
        Some(ChangeVia::Resync) => "a full resync (the whole window read again and swapped in)",
        Some(ChangeVia::Round) | None => "a sync round",
    };
    Some(format!(
        "{}: {}{span}",
        c.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        match op {
            ChangeOp::Created => format!("first stored by {by}"),
            ChangeOp::Updated => format!("changed in Exchange, updated by {by}"),
            ChangeOp::Deleted => {
                format!("removed by {by} (deleted or moved away in Exchange)")
            }
        }
    ))
}

fn minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: ChangeOp, via: Option<ChangeVia>) -> ChangeRecord {
        ChangeRecord {
            seq: 1,
            mailbox: Some(MailboxId(1)),
            address: Some("room@contoso.example".into()),
            change: Change::Instance {
                op,
                instance_id: calgate_store::Uuid::nil(),
                exchange_id: "AAMk".into(),
                start: Some("2026-12-07T09:00:00Z".parse().expect("a time")),
                end: Some("2026-12-07T10:00:00Z".parse().expect("a time")),
            },
            via,
            at: "2026-12-06T08:00:00Z".parse().expect("a time"),
        }
    }

    #[test]
    fn each_row_says_what_happened_and_how() {
        assert_eq!(
            describe_change(&row(ChangeOp::Created, Some(ChangeVia::Round)))
                .expect("an instance row"),
            "2026-12-06 08:00:00 UTC: first stored by a sync round (2026-12-07 09:00–10:00 UTC)"
        );
        let resync = describe_change(&row(ChangeOp::Deleted, Some(ChangeVia::Resync)))
            .expect("an instance row");
        assert!(
            resync.contains("removed by a full resync (the whole window read again"),
            "{resync}"
        );
        let old = describe_change(&row(ChangeOp::Updated, None)).expect("an instance row");
        assert!(old.contains("updated by a sync round"), "{old}");
        let notice = ChangeRecord {
            change: Change::Notice {
                kind: calgate_store::NoticeKind::MailboxSyncFailed,
                data: serde_json::Value::Null,
            },
            ..row(ChangeOp::Created, None)
        };
        assert_eq!(describe_change(&notice), None);
    }
}
