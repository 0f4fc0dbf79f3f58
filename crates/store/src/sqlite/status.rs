//! Each mailbox's sync status: the last attempt, its outcome, the next action, running totals.

use jiff::SignedDuration;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::mailboxes::mailbox_from_row;
use super::{Ctx, SqliteStore, count, opt_ts, parse_enum, sql, to_i64, ts, us};
use crate::error::Result;
use crate::types::*;

const SELECT_STATUS: &str = "SELECT m.id AS mid, m.address, c.name AS connection, s.*, \
     EXISTS (SELECT 1 FROM shadows sh WHERE sh.mailbox_id = m.id) AS resync \
     FROM mailboxes m JOIN connections c ON c.id = m.connection_id \
     LEFT JOIN sync_status s ON s.mailbox_id = m.id";

fn status_from_row(row: &SqliteRow) -> Result<MailboxStatus> {
    let c = "cannot read a sync status";
    let class: Option<String> = row.try_get("last_error_class").ctx(c)?;
    let message: Option<String> = row.try_get("last_error_message").ctx(c)?;
    let at = opt_ts(row.try_get("last_error_at").ctx(c)?)?;
    let last_error = match (class, message, at) {
        (Some(class), Some(message), Some(at)) => Some(StatusError {
            kind: parse_enum("failure kind", &class)?,
            message,
            at,
        }),
        _ => None,
    };
    let n = |col: &str| -> Result<u64> {
        let v: Option<i64> = row.try_get(col).ctx(c)?;
        Ok(count(v.unwrap_or(0)))
    };
    let lag: Option<i64> = row.try_get("lag_us").ctx(c)?;
    Ok(MailboxStatus {
        mailbox_id: MailboxId(row.try_get("mid").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        connection: row.try_get("connection").ctx(c)?,
        last_attempt: opt_ts(row.try_get("last_attempt").ctx(c)?)?,
        last_success: opt_ts(row.try_get("last_success").ctx(c)?)?,
        last_error,
        consecutive_failures: n("consecutive_failures")?,
        next_action: row.try_get("next_action").ctx(c)?,
        next_run_at: opt_ts(row.try_get("next_run_at").ctx(c)?)?,
        lag: lag.map(SignedDuration::from_micros),
        counters: SyncCounters {
            rounds: n("rounds")?,
            requests: n("requests")?,
            throttled: n("throttled")?,
            upserts: n("upserts")?,
            removals: n("removals")?,
            full_resyncs: n("full_resyncs")?,
        },
        resync_in_progress: row.try_get::<bool, _>("resync").ctx(c)?,
        last_round_by: row.try_get("last_round_by").ctx(c)?,
    })
}

impl SqliteStore {
    pub(super) async fn record_status_impl(
        &self,
        mailbox: MailboxId,
        s: &SyncStatusUpdate,
    ) -> Result<()> {
        self.bulk
            .run({
                let s = s.clone();
                move |tx: &rusqlite::Transaction<'_>| write_status(tx, mailbox, &s, None)
            })
            .await
    }

    /// A round's status and the release of its lease, in one transaction.
    pub(super) async fn finish_round_impl(
        &self,
        mailbox: MailboxId,
        s: Option<&SyncStatusUpdate>,
        lease: &Lease,
    ) -> Result<bool> {
        self.bulk
            .run({
                let (s, lease) = (s.cloned(), lease.clone());
                move |tx: &rusqlite::Transaction<'_>| {
                    if let Some(s) = &s {
                        write_status(tx, mailbox, s, Some(&lease.holder.to_string()))?;
                    }
                    super::leases::release(tx, &lease)
                }
            })
            .await
    }

    /// Every linked mailbox's status by address, or one mailbox's.
    pub(super) async fn statuses_impl(
        &self,
        mailbox: Option<MailboxId>,
    ) -> Result<Vec<MailboxStatus>> {
        let rows = match mailbox {
            Some(m) => {
                sqlx::query(sql(format!("{SELECT_STATUS} WHERE m.id = ?")))
                    .bind(m.0)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(sql(format!("{SELECT_STATUS} ORDER BY m.address_key")))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx("cannot read sync statuses")?;
        rows.iter().map(status_from_row).collect()
    }
}

const SELECT_SYNC_STATE: &str = "SELECT m.id, m.address, m.connection_id, c.name AS connection, \
     m.kind, m.external_id, m.privacy, m.linked_at, m.resync_reason, m.id AS mid, s.*, \
     EXISTS (SELECT 1 FROM shadows sh WHERE sh.mailbox_id = m.id) AS resync, \
     d.delta_link AS d_link, d.window_start AS d_start, d.window_end AS d_end, \
     d.rebased_at AS d_rebased, \
     (SELECT COUNT(*) FROM instances i WHERE i.mailbox_id = m.id) AS live \
     FROM mailboxes m JOIN connections c ON c.id = m.connection_id \
     LEFT JOIN sync_status s ON s.mailbox_id = m.id \
     LEFT JOIN delta_cursors d ON d.mailbox_id = m.id";

fn sync_state_from_row(row: &SqliteRow) -> Result<MailboxSyncState> {
    let c = "cannot read the mailboxes' sync state";
    let link: Option<String> = row.try_get("d_link").ctx(c)?;
    let cursor = match link {
        Some(delta_link) => Some(Cursor {
            delta_link,
            window_start: ts(row.try_get("d_start").ctx(c)?)?,
            window_end: ts(row.try_get("d_end").ctx(c)?)?,
            rebased_at: ts(row.try_get("d_rebased").ctx(c)?)?,
        }),
        None => None,
    };
    Ok(MailboxSyncState {
        mailbox: mailbox_from_row(row)?,
        cursor,
        live_instances: count(row.try_get("live").ctx(c)?),
        status: status_from_row(row)?,
    })
}

impl SqliteStore {
    pub(super) async fn sync_states_impl(&self) -> Result<Vec<MailboxSyncState>> {
        let rows = sqlx::query(sql(format!("{SELECT_SYNC_STATE} ORDER BY m.address_key")))
            .fetch_all(&self.pool)
            .await
            .ctx("cannot read the mailboxes' sync state")?;
        rows.iter().map(sync_state_from_row).collect()
    }

    pub(super) async fn sync_state_impl(&self, address: &str) -> Result<Option<MailboxSyncState>> {
        let row = sqlx::query(sql(format!("{SELECT_SYNC_STATE} WHERE m.address_key = ?")))
            .bind(super::address_key(address))
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read the mailbox's sync state")?;
        row.as_ref().map(sync_state_from_row).transpose()
    }

    pub(super) async fn changes_after_impl(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query("SELECT * FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(to_i64(after))
            .bind(i64::from(limit.clamp(1, 100_000)))
            .fetch_all(&self.pool)
            .await
            .ctx("cannot read the change log")?;
        rows.iter().map(super::webhooks::change_from_row).collect()
    }

    pub(super) async fn mailboxes_changed_after_impl(
        &self,
        after: u64,
    ) -> Result<Vec<(MailboxId, u64)>> {
        let c = "cannot read the change log";
        // `seq` is the rowid: a range seek, nothing read when nothing changed.
        let rows = sqlx::query(
            "SELECT mailbox_id, max(seq) AS last FROM change_log NOT INDEXED WHERE seq > ? \
             AND mailbox_id IS NOT NULL GROUP BY mailbox_id",
        )
        .bind(to_i64(after))
        .fetch_all(&self.pool)
        .await
        .ctx(c)?;
        rows.iter()
            .map(|row| {
                Ok((
                    MailboxId(row.try_get("mailbox_id").ctx(c)?),
                    count(row.try_get("last").ctx(c)?),
                ))
            })
            .collect()
    }

    pub(super) async fn change_log_end_impl(&self) -> Result<u64> {
        let end: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .ctx("cannot read the change log")?;
        Ok(end.map_or(0, count))
    }
}

/// Writes a round's status in `tx` on the writer's connection; `by`: the process that ran it
/// (the lease holder), when known.
fn write_status(
    tx: &rusqlite::Transaction<'_>,
    mailbox: MailboxId,
    s: &SyncStatusUpdate,
    by: Option<&str>,
) -> Result<()> {
    use super::bulk::Ctx as _;
    let what = "cannot record the sync status";
    super::bulk::require_mailbox(tx, mailbox)?;
    // A failure after a success (or as the first outcome) and a success after failures are
    // events for the host application.
    let before: Option<i64> = tx
        .prepare_cached("SELECT consecutive_failures FROM sync_status WHERE mailbox_id = ?1")
        .and_then(|mut q| {
            let mut rows = q.query([mailbox.0])?;
            rows.next()?.map(|r| r.get(0)).transpose()
        })
        .ctx(what)?;
    let notice = crate::codec::status_notice(mailbox, s, before);
    if let Some(n) = &notice {
        super::webhooks::log_notice_in(tx, n, s.attempted_at)?;
    }
    let (success, class, message) = match &s.outcome {
        SyncOutcome::Success => (true, None, None),
        SyncOutcome::Failure { kind, message } => {
            (false, Some(kind.as_str()), Some(message.as_str()))
        }
    };
    let k = &s.counters;
    tx.prepare_cached(WRITE_STATUS)
        .and_then(|mut q| {
            q.execute(rusqlite::params![
                mailbox.0,
                us(s.attempted_at),
                success,
                class,
                message,
                s.next_action.as_deref(),
                s.next_run_at.map(us),
                s.lag
                    .map(|l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX)),
                to_i64(k.rounds),
                to_i64(k.requests),
                to_i64(k.throttled),
                to_i64(k.upserts),
                to_i64(k.removals),
                to_i64(k.full_resyncs),
                by,
            ])
        })
        .ctx(what)?;
    Ok(())
}

const WRITE_STATUS: &str = "INSERT INTO sync_status (mailbox_id, last_attempt, last_success, last_error_class, \
               last_error_message, last_error_at, consecutive_failures, next_action, next_run_at, \
               lag_us, rounds, requests, throttled, upserts, removals, full_resyncs, last_round_by) \
             VALUES (?1, ?2, CASE WHEN ?3 THEN ?2 END, ?4, ?5, CASE WHEN ?3 THEN NULL ELSE ?2 END, \
               CASE WHEN ?3 THEN 0 ELSE 1 END, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT (mailbox_id) DO UPDATE SET \
               last_attempt = excluded.last_attempt, \
               last_success = CASE WHEN ?3 THEN ?2 ELSE sync_status.last_success END, \
               last_error_class = excluded.last_error_class, \
               last_error_message = excluded.last_error_message, \
               last_error_at = excluded.last_error_at, \
               consecutive_failures = CASE WHEN ?3 THEN 0 \
                 ELSE sync_status.consecutive_failures + 1 END, \
               next_action = excluded.next_action, next_run_at = excluded.next_run_at, \
               lag_us = excluded.lag_us, \
               rounds = sync_status.rounds + excluded.rounds, \
               requests = sync_status.requests + excluded.requests, \
               throttled = sync_status.throttled + excluded.throttled, \
               upserts = sync_status.upserts + excluded.upserts, \
               removals = sync_status.removals + excluded.removals, \
               full_resyncs = sync_status.full_resyncs + excluded.full_resyncs, \
               last_round_by = coalesce(excluded.last_round_by, sync_status.last_round_by)";
