//! Push: bookings, their targets and the outbox (PostgreSQL; ported from `../sqlite/push.rs`).
//!
//! Where this differs from SQLite: a booking's targets come in insertion order by the `ord`
//! identity column (SQLite's `rowid`); `json_extract` and `unixepoch` become `jsonb` operators
//! and `extract(epoch …)`; scalar `MAX` is `GREATEST`.

use std::collections::{BTreeMap, HashMap};

use calgate_core::booking::{
    Booking, BookingSpec, BookingState, TargetRole, TargetState, TargetStatus,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Ctx, PgStore, Tx, address_key, from_json, parse_enum, to_json, ts, us};
use crate::error::{Error, Result};
use crate::types::{MailboxId, NewNotice, NoticeKind, PushOp, PushOutcome, PushTask};

fn target_from_row(row: &PgRow) -> Result<TargetStatus> {
    let c = "cannot read a booking target";
    let role: String = row.try_get("role").ctx(c)?;
    let state: String = row.try_get("state").ctx(c)?;
    Ok(TargetStatus {
        address: row.try_get("address").ctx(c)?,
        role: parse_enum("calendar role", &role)?,
        state: parse_enum("target state", &state)?,
        exchange_id: row.try_get("exchange_id").ctx(c)?,
        web_link: row.try_get("web_link").ctx(c)?,
        error: row.try_get("error").ctx(c)?,
        response: row.try_get("response").ctx(c)?,
        updated_at: ts(row.try_get("updated_at").ctx(c)?)?,
    })
}

fn booking_from_row(row: &PgRow, targets: Vec<TargetStatus>) -> Result<Booking> {
    let c = "cannot read a booking";
    let spec: String = row.try_get("spec").ctx(c)?;
    let deleted: i64 = row.try_get("deleted").ctx(c)?;
    Ok(Booking {
        external_id: row.try_get("external_id").ctx(c)?,
        spec: from_json("booking", &spec)?,
        version: row.try_get("version").ctx(c)?,
        deleted: deleted != 0,
        targets,
        created_at: ts(row.try_get("created_at").ctx(c)?)?,
        updated_at: ts(row.try_get("updated_at").ctx(c)?)?,
    })
}

/// Queues (or re-queues) work for a target; an entry already there keeps its id and attempts
/// (an earlier attempt's outcome may be unknown) and takes the new op and version.
async fn enqueue(
    tx: &mut Tx,
    external_id: &str,
    key: &str,
    op: PushOp,
    version: i64,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO push_outbox (external_id, address_key, op, version, not_before, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (external_id, address_key) DO UPDATE SET op = excluded.op, \
         version = excluded.version, \
         not_before = CASE WHEN push_outbox.attempts > 0 AND push_outbox.not_before > excluded.not_before \
                      THEN push_outbox.not_before ELSE excluded.not_before END",
    )
    .bind(external_id)
    .bind(key)
    .bind(op.as_str())
    .bind(version)
    .bind(us(now))
    .bind(us(now))
    .execute(&mut **tx)
    .await
    .ctx("cannot queue the write to Exchange")?;
    Ok(())
}

impl PgStore {
    async fn targets_of(&self, external_id: &str) -> Result<Vec<TargetStatus>> {
        let rows =
            // `ord` is the insertion order (SQLite's `rowid`; an upsert keeps both).
            sqlx::query("SELECT * FROM booking_targets WHERE external_id = $1 ORDER BY ord")
                .bind(external_id)
                .fetch_all(&self.pool)
                .await
                .ctx("cannot read booking targets")?;
        rows.iter().map(target_from_row).collect()
    }

    pub(super) async fn booking_impl(&self, external_id: &str) -> Result<Option<Booking>> {
        let row = sqlx::query("SELECT * FROM bookings WHERE external_id = $1")
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read the booking")?;
        match row {
            None => Ok(None),
            Some(row) => {
                let targets = self.targets_of(external_id).await?;
                booking_from_row(&row, targets).map(Some)
            }
        }
    }

    pub(super) async fn put_booking_impl(
        &self,
        external_id: &str,
        spec: &BookingSpec,
    ) -> Result<(Booking, bool)> {
        calgate_core::booking::check_external_id(external_id).map_err(Error::invalid)?;
        if spec.calendars.is_empty() {
            return Err(Error::invalid("a booking needs at least one calendar"));
        }
        let now = Timestamp::now();
        let spec_json = to_json(spec)?;
        let mut tx = self.write_tx().await?;
        let existing: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT spec, version, deleted FROM bookings WHERE external_id = $1")
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("cannot read the booking")?;
        let version = match &existing {
            Some((old, _, 0)) if *old == spec_json => {
                tx.commit().await.ctx("cannot read the booking")?;
                let b = self
                    .booking_impl(external_id)
                    .await?
                    .ok_or_else(|| Error::not_found("the booking vanished"))?;
                return Ok((b, false));
            }
            Some((_, v, _)) => v + 1,
            None => 1,
        };
        sqlx::query(
            "INSERT INTO bookings (external_id, spec, version, deleted, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (external_id) DO UPDATE SET \
             spec = excluded.spec, version = excluded.version, deleted = 0, \
             updated_at = excluded.updated_at",
        )
        .bind(external_id)
        .bind(&spec_json)
        .bind(version)
        .bind(us(now))
        .bind(us(now))
        .execute(&mut *tx)
        .await
        .ctx("cannot store the booking")?;
        // Targets: the spec's get an upsert; the others (dropped from the spec) a delete.
        let old: Vec<(String, String)> =
            sqlx::query_as("SELECT address_key, state FROM booking_targets WHERE external_id = $1")
                .bind(external_id)
                .fetch_all(&mut *tx)
                .await
                .ctx("cannot read booking targets")?;
        let mut wanted: BTreeMap<String, (&str, TargetRole)> = BTreeMap::new();
        for t in &spec.calendars {
            wanted.insert(address_key(&t.address), (t.address.trim(), t.role));
        }
        for (key, (address, role)) in &wanted {
            sqlx::query(
                "INSERT INTO booking_targets (external_id, address_key, address, role, state, error, updated_at) \
                 VALUES ($1, $2, $3, $4, 'pending', NULL, $5) ON CONFLICT (external_id, address_key) \
                 DO UPDATE SET role = excluded.role, state = 'pending', error = NULL, \
                 updated_at = excluded.updated_at",
            )
            .bind(external_id)
            .bind(key)
            .bind(*address)
            .bind(role.as_str())
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .ctx("cannot store a booking target")?;
            enqueue(&mut tx, external_id, key, PushOp::Upsert, version, now).await?;
        }
        for (key, state) in &old {
            if wanted.contains_key(key) || state == TargetState::Deleted.as_str() {
                continue;
            }
            self.queue_delete(&mut tx, external_id, key, version, now)
                .await?;
        }
        tx.commit().await.ctx("cannot store the booking")?;
        let b = self
            .booking_impl(external_id)
            .await?
            .ok_or_else(|| Error::not_found("the booking vanished"))?;
        Ok((b, true))
    }

    async fn queue_delete(
        &self,
        tx: &mut Tx,
        external_id: &str,
        key: &str,
        version: i64,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE booking_targets SET state = 'deleting', error = NULL, updated_at = $1 \
             WHERE external_id = $2 AND address_key = $3",
        )
        .bind(us(now))
        .bind(external_id)
        .bind(key)
        .execute(&mut **tx)
        .await
        .ctx("cannot store a booking target")?;
        enqueue(tx, external_id, key, PushOp::Delete, version, now).await
    }

    /// Queues a booking's failed targets again (after the administrator fixed the cause); how
    /// many. The entries start as if an attempt's outcome were unknown, so that the push looks
    /// for an event it may have made before creating one.
    pub(super) async fn retry_booking_impl(&self, external_id: &str) -> Result<Option<u64>> {
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let booking: Option<(i64, i64)> =
            sqlx::query_as("SELECT version, deleted FROM bookings WHERE external_id = $1")
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("cannot read the booking")?;
        let Some((version, deleted)) = booking else {
            return Ok(None);
        };
        let keys: Vec<(String,)> = sqlx::query_as(
            "SELECT address_key FROM booking_targets WHERE external_id = $1 AND state = 'failed'",
        )
        .bind(external_id)
        .fetch_all(&mut *tx)
        .await
        .ctx("cannot read booking targets")?;
        for (key,) in &keys {
            if deleted != 0 {
                self.queue_delete(&mut tx, external_id, key, version, now)
                    .await?;
            } else {
                sqlx::query(
                    "UPDATE booking_targets SET state = 'pending', error = NULL, updated_at = $1 \
                     WHERE external_id = $2 AND address_key = $3",
                )
                .bind(us(now))
                .bind(external_id)
                .bind(key)
                .execute(&mut *tx)
                .await
                .ctx("cannot store a booking target")?;
                enqueue(&mut tx, external_id, key, PushOp::Upsert, version, now).await?;
            }
            sqlx::query(
                "UPDATE push_outbox SET attempts = GREATEST(attempts, 1) \
                 WHERE external_id = $1 AND address_key = $2",
            )
            .bind(external_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .ctx("cannot queue the write to Exchange")?;
        }
        tx.commit().await.ctx("cannot retry the booking")?;
        Ok(Some(keys.len() as u64))
    }

    pub(super) async fn delete_booking_impl(&self, external_id: &str) -> Result<bool> {
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let version: Option<(i64, i64)> =
            sqlx::query_as("SELECT version, deleted FROM bookings WHERE external_id = $1")
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("cannot read the booking")?;
        let Some((version, deleted)) = version else {
            return Ok(false);
        };
        if deleted != 0 {
            tx.commit().await.ctx("cannot delete the booking")?;
            return Ok(true);
        }
        let version = version + 1;
        sqlx::query(
            "UPDATE bookings SET deleted = 1, version = $1, updated_at = $2 WHERE external_id = $3",
        )
        .bind(version)
        .bind(us(now))
        .bind(external_id)
        .execute(&mut *tx)
        .await
        .ctx("cannot delete the booking")?;
        let keys: Vec<(String,)> = sqlx::query_as(
            "SELECT address_key FROM booking_targets WHERE external_id = $1 \
             AND state NOT IN ('deleted', 'deleted_in_exchange')",
        )
        .bind(external_id)
        .fetch_all(&mut *tx)
        .await
        .ctx("cannot read booking targets")?;
        for (key,) in keys {
            self.queue_delete(&mut tx, external_id, &key, version, now)
                .await?;
        }
        tx.commit().await.ctx("cannot delete the booking")?;
        Ok(true)
    }

    pub(super) async fn list_bookings_impl(
        &self,
        state: Option<BookingState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Booking>> {
        let state_sql = match state {
            None => "TRUE",
            Some(BookingState::Failed) => {
                "EXISTS (SELECT 1 FROM booking_targets t WHERE t.external_id = b.external_id AND t.state = 'failed')"
            }
            Some(BookingState::Pending) => {
                "NOT EXISTS (SELECT 1 FROM booking_targets t WHERE t.external_id = b.external_id AND t.state = 'failed') \
                 AND EXISTS (SELECT 1 FROM booking_targets t WHERE t.external_id = b.external_id AND t.state IN ('pending', 'deleting'))"
            }
            Some(BookingState::Synced) => {
                "NOT EXISTS (SELECT 1 FROM booking_targets t WHERE t.external_id = b.external_id AND t.state IN ('failed', 'pending', 'deleting'))"
            }
        };
        let rows = sqlx::query(super::sql(format!(
            "SELECT * FROM bookings b WHERE b.external_id > $1 AND {state_sql} \
             ORDER BY b.external_id LIMIT $2"
        )))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 1001)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot list bookings")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("external_id").ctx("cannot list bookings")?;
            let targets = self.targets_of(&id).await?;
            out.push(booking_from_row(row, targets)?);
        }
        Ok(out)
    }

    pub(super) async fn due_pushes_impl(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PushTask>> {
        let rows = sqlx::query(
            "SELECT o.id, o.external_id, o.address_key, o.op, o.version, o.attempts, \
             t.address, t.role, t.exchange_id, t.ical_uid, t.change_key, t.pushed_version, \
             b.spec, b.deleted \
             FROM push_outbox o \
             JOIN bookings b ON b.external_id = o.external_id \
             JOIN booking_targets t ON t.external_id = o.external_id AND t.address_key = o.address_key \
             WHERE o.not_before <= $1 ORDER BY o.not_before, o.id LIMIT $2",
        )
        .bind(us(now))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the push outbox")?;
        let c = "cannot read the push outbox";
        let mut specs: HashMap<String, BookingSpec> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let external_id: String = row.try_get("external_id").ctx(c)?;
            let spec = match specs.get(&external_id) {
                Some(s) => s.clone(),
                None => {
                    let text: String = row.try_get("spec").ctx(c)?;
                    let s: BookingSpec = from_json("booking", &text)?;
                    specs.insert(external_id.clone(), s.clone());
                    s
                }
            };
            let op: String = row.try_get("op").ctx(c)?;
            let role: String = row.try_get("role").ctx(c)?;
            out.push(PushTask {
                entry: row.try_get("id").ctx(c)?,
                external_id,
                address: row.try_get("address").ctx(c)?,
                role: parse_enum("calendar role", &role)?,
                op: parse_enum("push operation", &op)?,
                version: row.try_get("version").ctx(c)?,
                attempts: row.try_get::<i64, _>("attempts").ctx(c)?.max(0) as u32,
                exchange_id: row.try_get("exchange_id").ctx(c)?,
                ical_uid: row.try_get("ical_uid").ctx(c)?,
                change_key: row.try_get("change_key").ctx(c)?,
                pushed_version: row.try_get("pushed_version").ctx(c)?,
                spec,
            });
        }
        Ok(out)
    }

    pub(super) async fn claim_push_impl(
        &self,
        entry: i64,
        now: Timestamp,
        hold: SignedDuration,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE push_outbox SET attempts = attempts + 1, not_before = $1 \
             WHERE id = $2 AND not_before <= $3",
        )
        .bind(us(now.saturating_add(hold).unwrap_or(now)))
        .bind(entry)
        .bind(us(now))
        .execute(&mut *tx)
        .await
        .ctx("cannot claim the push")?;
        tx.commit().await.ctx("cannot claim the push")?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn finish_push_impl(
        &self,
        task: &PushTask,
        outcome: &PushOutcome,
    ) -> Result<()> {
        let now = Timestamp::now();
        let c = "cannot record the push";
        let mut tx = self.write_tx().await?;
        let key = address_key(&task.address);
        // The entry as it is now: a newer put may have changed its op or version meanwhile.
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT op, version FROM push_outbox WHERE id = $1")
                .bind(task.entry)
                .fetch_optional(&mut *tx)
                .await
                .ctx(c)?;
        let superseded = current
            .as_ref()
            .is_some_and(|(op, v)| op != task.op.as_str() || *v != task.version);
        let mut target_state: Option<TargetState> = None;
        match outcome {
            PushOutcome::Written {
                exchange_id,
                ical_uid,
                web_link,
                change_key,
            } => {
                sqlx::query(
                    "UPDATE booking_targets SET exchange_id = $1, ical_uid = COALESCE($2, ical_uid), \
                     web_link = $3, change_key = $4, pushed_version = $5, error = NULL, updated_at = $6 \
                     WHERE external_id = $7 AND address_key = $8",
                )
                .bind(Some(exchange_id.as_str()).filter(|s| !s.is_empty()))
                .bind(ical_uid.as_deref())
                .bind(web_link.as_deref())
                .bind(change_key.as_deref())
                .bind(task.version)
                .bind(us(now))
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                target_state = Some(TargetState::Synced);
            }
            PushOutcome::Removed => {
                sqlx::query(
                    "UPDATE booking_targets SET exchange_id = NULL, web_link = NULL, change_key = NULL, \
                     pushed_version = $1, error = NULL, updated_at = $2 \
                     WHERE external_id = $3 AND address_key = $4",
                )
                .bind(task.version)
                .bind(us(now))
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                target_state = Some(TargetState::Deleted);
            }
            PushOutcome::GoneInExchange => {
                sqlx::query(
                    "UPDATE booking_targets SET exchange_id = NULL, web_link = NULL, change_key = NULL, \
                     updated_at = $1 WHERE external_id = $2 AND address_key = $3",
                )
                .bind(us(now))
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                target_state = Some(TargetState::DeletedInExchange);
            }
            PushOutcome::Retry { error, not_before } => {
                sqlx::query("UPDATE push_outbox SET not_before = $1 WHERE id = $2")
                    .bind(us(*not_before))
                    .bind(task.entry)
                    .execute(&mut *tx)
                    .await
                    .ctx(c)?;
                sqlx::query(
                    "UPDATE booking_targets SET error = $1, updated_at = $2 \
                     WHERE external_id = $3 AND address_key = $4",
                )
                .bind(error)
                .bind(us(now))
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
            }
            PushOutcome::Failed { error } => {
                sqlx::query(
                    "UPDATE booking_targets SET error = $1, updated_at = $2 \
                     WHERE external_id = $3 AND address_key = $4",
                )
                .bind(error)
                .bind(us(now))
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                target_state = Some(TargetState::Failed);
            }
        }
        if let Some(state) = target_state {
            if superseded {
                // A newer change is queued: the entry stays (due now), the target pending.
                sqlx::query("UPDATE push_outbox SET not_before = $1, attempts = 0 WHERE id = $2")
                    .bind(us(now))
                    .bind(task.entry)
                    .execute(&mut *tx)
                    .await
                    .ctx(c)?;
            } else {
                sqlx::query("DELETE FROM push_outbox WHERE id = $1")
                    .bind(task.entry)
                    .execute(&mut *tx)
                    .await
                    .ctx(c)?;
                sqlx::query(
                    "UPDATE booking_targets SET state = $1 WHERE external_id = $2 AND address_key = $3",
                )
                .bind(state.as_str())
                .bind(&task.external_id)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                let notice = match (state, outcome) {
                    (
                        TargetState::Synced,
                        PushOutcome::Written {
                            exchange_id,
                            web_link,
                            ..
                        },
                    ) => Some((
                        NoticeKind::BookingSynced,
                        serde_json::json!({"exchange_id": exchange_id, "web_link": web_link}),
                    )),
                    (TargetState::Failed, PushOutcome::Failed { error }) => Some((
                        NoticeKind::BookingFailed,
                        serde_json::json!({ "error": error }),
                    )),
                    (TargetState::DeletedInExchange, _) => {
                        Some((NoticeKind::BookingDeletedInExchange, serde_json::json!({})))
                    }
                    _ => None,
                };
                if let Some((kind, details)) = notice {
                    booking_notice(&mut tx, kind, &task.external_id, &key, details, now).await?;
                }
            }
        }
        tx.commit().await.ctx(c)
    }

    pub(super) async fn pending_pushes_impl(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_outbox")
            .fetch_one(&self.pool)
            .await
            .ctx("cannot read the push outbox")?;
        Ok(super::count(n))
    }
}

impl PgStore {
    /// What the last pulls saw of calgate's events, applied to their targets:
    /// - edited in Exchange (the stored instance's change key differs from the one calgate
    ///   wrote): the booking is queued again (`app-wins`) — direct mode only: a meeting's
    ///   change key also moves when an attendee responds, which is not an edit;
    /// - gone from a mailbox synced since the write, while the booking lies inside the synced
    ///   window: the target becomes `deleted_in_exchange` (not re-created by itself).
    ///
    /// Returns (re-queued, deleted in Exchange).
    pub(super) async fn reconcile_pushed_impl(&self) -> Result<(u64, u64)> {
        let now = Timestamp::now();
        let c = "cannot compare calgate's events with the pulled ones";
        let mut tx = self.write_tx().await?;
        let drifted: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT t.external_id, t.address_key, b.version, c.outlook_edits FROM booking_targets t \
             JOIN bookings b ON b.external_id = t.external_id AND b.deleted = 0 \
             AND (b.spec::jsonb ->> 'mode') = 'direct' \
             JOIN mailboxes m ON m.address_key = t.address_key \
             JOIN connections c ON c.id = m.connection_id \
             JOIN instances i ON i.mailbox_id = m.id AND i.exchange_id = t.exchange_id \
             WHERE t.state = 'synced' AND t.change_key IS NOT NULL \
             AND i.change_key IS NOT NULL AND i.change_key <> t.change_key \
             AND NOT EXISTS (SELECT 1 FROM push_outbox o WHERE o.external_id = t.external_id \
                             AND o.address_key = t.address_key)",
        )
        .fetch_all(&mut *tx)
        .await
        .ctx(c)?;
        let mut requeued = 0u64;
        for (id, key, version, policy) in &drifted {
            if policy == "report" {
                sqlx::query(
                    "UPDATE booking_targets SET state = 'drifted', \
                     error = 'edited in Exchange: left as it is (policy report); put the booking again to overwrite', \
                     updated_at = $1 WHERE external_id = $2 AND address_key = $3",
                )
                .bind(us(now))
                .bind(id)
                .bind(key)
                .execute(&mut *tx)
                .await
                .ctx(c)?;
                booking_notice(
                    &mut tx,
                    NoticeKind::BookingDrifted,
                    id,
                    key,
                    serde_json::json!({"error": "edited in Exchange: left as it is (policy report); put the booking again to overwrite"}),
                    now,
                )
                .await?;
                continue;
            }
            requeued += 1;
            sqlx::query(
                "UPDATE booking_targets SET state = 'pending', \
                 error = 'edited in Exchange: calgate puts the booking back (app-wins)', updated_at = $1 \
                 WHERE external_id = $2 AND address_key = $3",
            )
            .bind(us(now))
            .bind(id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .ctx(c)?;
            enqueue(&mut tx, id, key, PushOp::Upsert, *version, now).await?;
        }
        // Gone: the mailbox was synced after the write, the event lies inside the window the
        // instances cover, and neither it nor its series is stored. SQLite's
        // `unixepoch(json_extract(…))` is whole seconds (truncated): `trunc(extract(epoch …))`
        // here, so that both compare the same microseconds with the window.
        let gone = sqlx::query(
            "UPDATE booking_targets SET state = 'deleted_in_exchange', updated_at = $1, \
             error = 'deleted in Exchange: put the booking again to bring it back' \
             WHERE state = 'synced' AND exchange_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM push_outbox o WHERE o.external_id = booking_targets.external_id \
                             AND o.address_key = booking_targets.address_key) \
             AND EXISTS (SELECT 1 FROM mailboxes m JOIN sync_status s ON s.mailbox_id = m.id \
                         JOIN delta_cursors d ON d.mailbox_id = m.id \
                         JOIN bookings b ON b.external_id = booking_targets.external_id \
                         WHERE m.address_key = booking_targets.address_key \
                         AND s.last_success > booking_targets.updated_at \
                         AND trunc(extract(epoch FROM (b.spec::jsonb #>> '{when,start}')::timestamptz))::BIGINT \
                             * 1000000 > d.window_start \
                         AND trunc(extract(epoch FROM (b.spec::jsonb #>> '{when,end}')::timestamptz))::BIGINT \
                             * 1000000 < d.window_end \
                         AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.mailbox_id = m.id \
                             AND (i.exchange_id = booking_targets.exchange_id \
                                  OR i.series_master_id = booking_targets.exchange_id))) \
             RETURNING external_id, address_key",
        )
        .bind(us(now))
        .fetch_all(&mut *tx)
        .await
        .ctx(c)?;
        for row in &gone {
            let id: String = row.try_get("external_id").ctx(c)?;
            let key: String = row.try_get("address_key").ctx(c)?;
            booking_notice(
                &mut tx,
                NoticeKind::BookingDeletedInExchange,
                &id,
                &key,
                serde_json::json!({}),
                now,
            )
            .await?;
        }
        tx.commit().await.ctx(c)?;
        Ok((requeued, gone.len() as u64))
    }
}

impl PgStore {
    /// Records that Exchange holds `exchange_id` for the booking's target in `address`
    /// (found by calgate's marker). `false`: no such target, or it knows that event already.
    pub(super) async fn adopt_pushed_impl(
        &self,
        external_id: &str,
        address: &str,
        exchange_id: &str,
        ical_uid: Option<&str>,
        web_link: Option<&str>,
        change_key: Option<&str>,
    ) -> Result<bool> {
        let c = "cannot record an event found in Exchange";
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE booking_targets SET exchange_id = $1, ical_uid = $2, web_link = $3, change_key = $4, \
             updated_at = $5 WHERE external_id = $6 AND address_key = $7 \
             AND state NOT IN ('deleted', 'deleted_in_exchange') \
             AND (exchange_id IS NULL OR exchange_id <> $8)",
        )
        .bind(exchange_id)
        .bind(ical_uid)
        .bind(web_link)
        .bind(change_key)
        .bind(us(Timestamp::now()))
        .bind(external_id)
        .bind(address_key(address))
        .bind(exchange_id)
        .execute(&mut *tx)
        .await
        .ctx(c)?;
        tx.commit().await.ctx(c)?;
        Ok(done.rows_affected() > 0)
    }
}

impl PgStore {
    /// Records the answers to a meeting-mode booking, by attendee address.
    ///
    /// A meeting has one organizer (the API requires it). Should a booking have several
    /// calendars with that role, PostgreSQL would fail a scalar subquery of several rows where
    /// SQLite takes the first its primary-key scan finds: `ORDER BY o.address_key LIMIT 1`
    /// takes that same one.
    pub(super) async fn record_responses_impl(
        &self,
        external_id: &str,
        responses: &[(String, String)],
    ) -> Result<()> {
        let c = "cannot record the meeting's answers";
        let mut tx = self.write_tx().await?;
        for (address, response) in responses {
            sqlx::query(
                "UPDATE booking_targets SET response = $1, \
                 ical_uid = COALESCE((SELECT o.ical_uid FROM booking_targets o \
                     WHERE o.external_id = booking_targets.external_id AND o.role = 'organizer' \
                     ORDER BY o.address_key LIMIT 1), ical_uid) \
                 WHERE external_id = $2 AND address_key = $3",
            )
            .bind(response)
            .bind(external_id)
            .bind(address_key(address))
            .execute(&mut *tx)
            .await
            .ctx(c)?;
        }
        tx.commit().await.ctx(c)
    }
}

impl PgStore {
    pub(super) async fn set_outlook_edits_impl(
        &self,
        connection: &str,
        policy: calgate_core::booking::OutlookEdits,
    ) -> Result<bool> {
        let c = "cannot change the connection";
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE connections SET outlook_edits = $1 WHERE name = $2")
            .bind(policy.as_str())
            .bind(connection.trim())
            .execute(&mut *tx)
            .await
            .ctx(c)?;
        tx.commit().await.ctx(c)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn outlook_edits_impl(
        &self,
        connection: &str,
    ) -> Result<Option<calgate_core::booking::OutlookEdits>> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT outlook_edits FROM connections WHERE name = $1")
                .bind(connection.trim())
                .fetch_optional(&self.pool)
                .await
                .ctx("cannot read the connection")?;
        v.map(|v| parse_enum("Outlook-edit policy", &v)).transpose()
    }
}

/// A booking's calendar changed state: a notice for the host application, in the same
/// transaction (about the calendar's mailbox when it is linked).
async fn booking_notice(
    tx: &mut Tx,
    kind: NoticeKind,
    external_id: &str,
    address_key: &str,
    details: serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    let mailbox: Option<i64> =
        sqlx::query_scalar("SELECT id FROM mailboxes WHERE address_key = $1")
            .bind(address_key)
            .fetch_optional(&mut **tx)
            .await
            .ctx("cannot write the change log")?;
    let mut data = serde_json::json!({ "external_id": external_id, "calendar": address_key });
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), details) {
        d.extend(more);
    }
    PgStore::log_notice(
        tx,
        &NewNotice {
            kind,
            mailbox: mailbox.map(MailboxId),
            data,
        },
        now,
    )
    .await?;
    Ok(())
}
