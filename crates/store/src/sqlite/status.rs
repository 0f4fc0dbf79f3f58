//! Each mailbox's sync status: the last attempt, its outcome, the next action, running totals.

use jiff::SignedDuration;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Ctx, SqliteStore, count, opt_ts, parse_enum, sql, to_i64, us};
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
    })
}

impl SqliteStore {
    pub(super) async fn record_status_impl(
        &self,
        mailbox: MailboxId,
        s: &SyncStatusUpdate,
    ) -> Result<()> {
        let what = "cannot record the sync status";
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, mailbox).await?;
        let (success, class, message) = match &s.outcome {
            SyncOutcome::Success => (true, None, None),
            SyncOutcome::Failure { kind, message } => {
                (false, Some(kind.as_str()), Some(message.as_str()))
            }
        };
        let at = us(s.attempted_at);
        let k = &s.counters;
        sqlx::query(
            "INSERT INTO sync_status (mailbox_id, last_attempt, last_success, last_error_class, \
               last_error_message, last_error_at, consecutive_failures, next_action, next_run_at, \
               lag_us, rounds, requests, throttled, upserts, removals, full_resyncs) \
             VALUES (?1, ?2, CASE WHEN ?3 THEN ?2 END, ?4, ?5, CASE WHEN ?3 THEN NULL ELSE ?2 END, \
               CASE WHEN ?3 THEN 0 ELSE 1 END, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
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
               full_resyncs = sync_status.full_resyncs + excluded.full_resyncs",
        )
        .bind(mailbox.0)
        .bind(at)
        .bind(success)
        .bind(class)
        .bind(message)
        .bind(s.next_action.as_deref())
        .bind(s.next_run_at.map(us))
        .bind(
            s.lag
                .map(|l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX)),
        )
        .bind(to_i64(k.rounds))
        .bind(to_i64(k.requests))
        .bind(to_i64(k.throttled))
        .bind(to_i64(k.upserts))
        .bind(to_i64(k.removals))
        .bind(to_i64(k.full_resyncs))
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)
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
