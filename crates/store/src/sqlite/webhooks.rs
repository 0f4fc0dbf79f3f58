//! The host application's events beyond instances (notices in the change log), its webhook
//! endpoints and their durable delivery queue.

use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Ctx, SqliteStore, Tx, count, opt_ts, parse_enum, to_i64, ts, us};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

fn secret_aad(id: &str) -> Vec<u8> {
    format!("calgate:webhook:{id}").into_bytes()
}

/// 16 random bytes as 32 lowercase hex digits.
fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| Error::new(ErrorKind::Database, "cannot draw random bytes"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> Result<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| Error::new(ErrorKind::Database, "cannot draw a webhook secret"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    ))
}

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    let c = "cannot read a webhook";
    let events: Option<String> = row.try_get("events").ctx(c)?;
    Ok(Webhook {
        id: row.try_get("id").ctx(c)?,
        url: row.try_get("url").ctx(c)?,
        events: events
            .map(|e| super::from_json("webhook event types", &e))
            .transpose()?,
        position: count(row.try_get("position").ctx(c)?),
        created_at: ts(row.try_get("created_at").ctx(c)?)?,
        previous_secret_until: opt_ts(row.try_get("previous_until").ctx(c)?)?,
    })
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery> {
    let c = "cannot read a webhook delivery";
    let state: String = row.try_get("state").ctx(c)?;
    let status: Option<i64> = row.try_get("last_status").ctx(c)?;
    Ok(Delivery {
        id: row.try_get("id").ctx(c)?,
        webhook_id: row.try_get("webhook_id").ctx(c)?,
        msg_id: row.try_get("msg_id").ctx(c)?,
        seq: count(row.try_get("seq").ctx(c)?),
        partition: row.try_get("partition").ctx(c)?,
        event_type: row.try_get("type").ctx(c)?,
        payload: row.try_get("payload").ctx(c)?,
        state: parse_enum("delivery state", &state)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").ctx(c)?).unwrap_or(u32::MAX),
        next_at: ts(row.try_get("next_at").ctx(c)?)?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error").ctx(c)?,
        created_at: ts(row.try_get("created_at").ctx(c)?)?,
        finished_at: opt_ts(row.try_get("finished_at").ctx(c)?)?,
    })
}

/// A change-log row as the store's domain type.
pub(super) fn change_from_row(row: &SqliteRow) -> Result<ChangeRecord> {
    let c = "cannot read the change log";
    let op: String = row.try_get("op").ctx(c)?;
    let mailbox: Option<i64> = row.try_get("mailbox_id").ctx(c)?;
    let change = match op.as_str() {
        "created" | "updated" | "deleted" => {
            let id: String = row.try_get("instance_id").ctx(c)?;
            Change::Instance {
                op: parse_enum("change", &op)?,
                instance_id: uuid::Uuid::parse_str(&id)
                    .map_err(|_| Error::corrupt("instance id", &id))?,
                exchange_id: row.try_get("exchange_id").ctx(c)?,
                start: opt_ts(row.try_get("start_us").ctx(c)?)?,
                end: opt_ts(row.try_get("end_us").ctx(c)?)?,
            }
        }
        other => {
            let data: Option<String> = row.try_get("data").ctx(c)?;
            Change::Notice {
                kind: parse_enum("event type", other)?,
                data: match data {
                    Some(d) => super::from_json("event details", &d)?,
                    None => serde_json::Value::Null,
                },
            }
        }
    };
    let via: Option<String> = row.try_get("via").ctx(c)?;
    Ok(ChangeRecord {
        seq: count(row.try_get("seq").ctx(c)?),
        mailbox: mailbox.map(MailboxId),
        address: row.try_get("address").ctx(c)?,
        change,
        via: match via.as_deref() {
            Some("round") => Some(crate::ChangeVia::Round),
            Some("resync") => Some(crate::ChangeVia::Resync),
            _ => None,
        },
        at: ts(row.try_get("at").ctx(c)?)?,
    })
}

/// Appends a notice (`mailbox_id, op, at, data`) to the change log, with the mailbox's address.
const LOG_NOTICE: &str = "INSERT INTO change_log (mailbox_id, address, op, at, data) \
     VALUES (?1, (SELECT address FROM mailboxes WHERE id = ?1), ?2, ?3, ?4) RETURNING seq";

/// [`SqliteStore::log_notice`] in `tx` on the writer's connection.
pub(super) fn log_notice_in(
    tx: &rusqlite::Transaction<'_>,
    n: &NewNotice,
    now: Timestamp,
) -> Result<u64> {
    use super::bulk::Ctx as _;
    let data = super::to_json(&n.data)?;
    let seq: i64 = tx
        .prepare_cached(LOG_NOTICE)
        .and_then(|mut q| {
            q.query_row(
                (
                    n.mailbox.map(|m| m.0),
                    n.kind.as_str(),
                    us(now),
                    data.as_str(),
                ),
                |r| r.get(0),
            )
        })
        .ctx("cannot write the change log")?;
    Ok(count(seq))
}

impl SqliteStore {
    /// Appends a notice to the change log inside `tx`; its position.
    pub(super) async fn log_notice(tx: &mut Tx, n: &NewNotice, now: Timestamp) -> Result<u64> {
        let what = "cannot write the change log";
        let data = super::to_json(&n.data)?;
        let seq: i64 = sqlx::query_scalar(LOG_NOTICE)
            .bind(n.mailbox.map(|m| m.0))
            .bind(n.kind.as_str())
            .bind(us(now))
            .bind(data)
            .fetch_one(&mut **tx)
            .await
            .ctx(what)?;
        Ok(count(seq))
    }

    pub(super) async fn record_notice_impl(&self, n: &NewNotice) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let seq = Self::log_notice(&mut tx, n, Timestamp::now()).await?;
        tx.commit().await.ctx("cannot write the change log")?;
        Ok(seq)
    }

    pub(super) async fn record_notice_once_impl(
        &self,
        key: &str,
        n: &NewNotice,
    ) -> Result<Option<u64>> {
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let fresh =
            sqlx::query("INSERT INTO notice_marks (key, at) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .ctx("cannot write the change log")?;
        if fresh.rows_affected() == 0 {
            return Ok(None);
        }
        let seq = Self::log_notice(&mut tx, n, now).await?;
        tx.commit().await.ctx("cannot write the change log")?;
        Ok(Some(seq))
    }

    pub(super) async fn change_log_floor_impl(&self) -> Result<u64> {
        let first: Option<i64> = sqlx::query_scalar("SELECT min(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .ctx("cannot read the change log")?;
        match first {
            Some(f) => Ok(count(f).saturating_sub(1)),
            // Empty: everything up to the high-water mark is gone (or never was).
            None => {
                let high: Option<i64> =
                    sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'change_log'")
                        .fetch_optional(&self.pool)
                        .await
                        .ctx("cannot read the change log")?;
                Ok(high.map_or(0, count))
            }
        }
    }

    pub(super) async fn prune_change_log_impl(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "DELETE FROM change_log WHERE at < ? \
             AND seq <= COALESCE((SELECT min(position) FROM webhooks), seq)",
        )
        .bind(us(before))
        .execute(&mut *tx)
        .await
        .ctx("cannot prune the change log")?;
        tx.commit().await.ctx("cannot prune the change log")?;
        Ok(done.rows_affected())
    }

    pub(super) async fn add_webhook_impl(
        &self,
        url: &str,
        events: Option<&[String]>,
    ) -> Result<(Webhook, String)> {
        let id = format!("wh_{}", random_hex()?);
        let secret = new_secret()?;
        let sealed = self.key.seal(&secret_aad(&id), secret.as_bytes())?;
        let events_json = events.map(|e| super::to_json(&e)).transpose()?;
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let position: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM change_log")
            .fetch_one(&mut *tx)
            .await
            .ctx("cannot add the webhook")?;
        sqlx::query(
            "INSERT INTO webhooks (id, url, events, secret, position, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(url)
        .bind(events_json)
        .bind(sealed)
        .bind(position.unwrap_or(0))
        .bind(us(now))
        .execute(&mut *tx)
        .await
        .ctx("cannot add the webhook")?;
        tx.commit().await.ctx("cannot add the webhook")?;
        Ok((
            Webhook {
                id,
                url: url.to_owned(),
                events: events.map(<[String]>::to_vec),
                position: count(position.unwrap_or(0)),
                created_at: now,
                previous_secret_until: None,
            },
            secret,
        ))
    }

    pub(super) async fn webhooks_impl(&self, id: Option<&str>) -> Result<Vec<Webhook>> {
        let rows = match id {
            Some(id) => {
                sqlx::query("SELECT * FROM webhooks WHERE id = ?")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM webhooks ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx("cannot read the webhooks")?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub(super) async fn remove_webhook_impl(&self, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the webhook")?;
        tx.commit().await.ctx("cannot remove the webhook")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn rotate_webhook_secret_impl(
        &self,
        id: &str,
        overlap: SignedDuration,
    ) -> Result<Option<String>> {
        let secret = new_secret()?;
        let sealed = self.key.seal(&secret_aad(id), secret.as_bytes())?;
        let until = Timestamp::now()
            .checked_add(overlap)
            .unwrap_or(Timestamp::MAX);
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET previous_secret = secret, previous_until = ?, secret = ? \
             WHERE id = ?",
        )
        .bind(us(until))
        .bind(sealed)
        .bind(id)
        .execute(&mut *tx)
        .await
        .ctx("cannot rotate the webhook's secret")?;
        tx.commit()
            .await
            .ctx("cannot rotate the webhook's secret")?;
        Ok((done.rows_affected() > 0).then_some(secret))
    }

    pub(super) async fn webhook_secrets_impl(&self, id: &str) -> Result<Vec<SecretString>> {
        let row = sqlx::query(
            "SELECT secret, previous_secret, previous_until FROM webhooks WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .ctx("cannot read the webhook's secret")?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let c = "cannot read the webhook's secret";
        let open = |sealed: Vec<u8>| -> Result<SecretString> {
            let plain = self.key.open(&secret_aad(id), &sealed)?;
            String::from_utf8(plain)
                .map(SecretString::new)
                .map_err(|_| Error::corrupt("webhook secret", "(not UTF-8)"))
        };
        let mut out = vec![open(row.try_get("secret").ctx(c)?)?];
        let previous: Option<Vec<u8>> = row.try_get("previous_secret").ctx(c)?;
        let until = opt_ts(row.try_get("previous_until").ctx(c)?)?;
        if let (Some(p), Some(until)) = (previous, until)
            && until > Timestamp::now()
        {
            out.push(open(p)?);
        }
        Ok(out)
    }

    pub(super) async fn enqueue_deliveries_impl(
        &self,
        webhook: &str,
        from: u64,
        through: u64,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let what = "cannot queue webhook deliveries";
        let now = us(Timestamp::now());
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query("UPDATE webhooks SET position = ? WHERE id = ? AND position = ?")
            .bind(to_i64(through))
            .bind(webhook)
            .bind(to_i64(from))
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for chunk in deliveries.chunks(64) {
            let values = vec!["(?, ?, ?, ?, ?, ?, 'pending', ?, ?)"; chunk.len()].join(", ");
            let mut q = sqlx::query(super::sql(format!(
                "INSERT INTO webhook_deliveries (webhook_id, msg_id, seq, partition, type, \
                 payload, state, next_at, created_at) VALUES {values}"
            )));
            for d in chunk {
                q = q
                    .bind(webhook)
                    .bind(format!("msg_{}", random_hex()?))
                    .bind(to_i64(d.seq))
                    .bind(d.partition.as_str())
                    .bind(d.event_type.as_str())
                    .bind(d.payload.as_str())
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *tx).await.ctx(what)?;
        }
        tx.commit().await.ctx(what)?;
        Ok(true)
    }

    pub(super) async fn due_deliveries_impl(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT d.* FROM webhook_deliveries d \
             WHERE d.state = 'pending' AND d.next_at <= ? \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
               WHERE e.webhook_id = d.webhook_id AND e.partition = d.partition \
               AND e.state = 'pending' AND e.id < d.id) \
             ORDER BY d.next_at, d.id LIMIT ?",
        )
        .bind(us(now))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the webhook queue")?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub(super) async fn next_delivery_at_impl(&self) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_at) FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .ctx("cannot read the webhook queue")?;
        opt_ts(next)
    }

    pub(super) async fn finish_delivery_impl(
        &self,
        id: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<()> {
        let what = "cannot record a webhook delivery";
        let now = us(Timestamp::now());
        let mut tx = self.write_tx().await?;
        match outcome {
            DeliveryOutcome::Delivered { status } => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, \
                     last_status = ?, last_error = NULL, finished_at = ? WHERE id = ?",
                )
                .bind(i64::from(*status))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx(what)?;
            }
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at,
            } => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, \
                     last_error = ?, state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END, \
                     next_at = COALESCE(?, next_at), \
                     finished_at = CASE WHEN ? IS NULL THEN ? END WHERE id = ?",
                )
                .bind(status.map(i64::from))
                .bind(error.as_str())
                .bind(retry_at.map(us))
                .bind(retry_at.map(us))
                .bind(retry_at.map(us))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx(what)?;
            }
        }
        tx.commit().await.ctx(what)
    }

    pub(super) async fn deliveries_impl(
        &self,
        webhook: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = ? \
             AND (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(webhook)
        .bind(state.map(DeliveryState::as_str))
        .bind(state.map(DeliveryState::as_str))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the webhook's deliveries")?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub(super) async fn replay_deliveries_impl(
        &self,
        webhook: &str,
        ids: Option<&[i64]>,
    ) -> Result<u64> {
        let what = "cannot replay webhook deliveries";
        let now = us(Timestamp::now());
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        let replay = "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = ?, \
                      finished_at = NULL WHERE webhook_id = ? AND state = 'dead'";
        match ids {
            None => {
                n += sqlx::query(replay)
                    .bind(now)
                    .bind(webhook)
                    .execute(&mut *tx)
                    .await
                    .ctx(what)?
                    .rows_affected();
            }
            Some(ids) => {
                for id in ids {
                    n += sqlx::query(super::sql(format!("{replay} AND id = ?")))
                        .bind(now)
                        .bind(webhook)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .ctx(what)?
                        .rows_affected();
                }
            }
        }
        tx.commit().await.ctx(what)?;
        Ok(n)
    }

    pub(super) async fn prune_deliveries_impl(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state = 'delivered' AND finished_at < ?",
        )
        .bind(us(before))
        .execute(&mut *tx)
        .await
        .ctx("cannot prune webhook deliveries")?;
        tx.commit().await.ctx("cannot prune webhook deliveries")?;
        Ok(done.rows_affected())
    }
}

fn subscription_from_row(row: &SqliteRow) -> Result<SubscriptionRecord> {
    let c = "cannot read a subscription";
    let state: String = row.try_get("state").ctx(c)?;
    Ok(SubscriptionRecord {
        mailbox: MailboxId(row.try_get("mailbox_id").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        subscription_id: row.try_get("subscription_id").ctx(c)?,
        client_state_hash: row.try_get("client_state_hash").ctx(c)?,
        expires_at: opt_ts(row.try_get("expires_at").ctx(c)?)?,
        state: parse_enum("subscription state", &state)?,
        reason: row.try_get("reason").ctx(c)?,
        failures: u32::try_from(row.try_get::<i64, _>("failures").ctx(c)?).unwrap_or(u32::MAX),
        next_attempt_at: opt_ts(row.try_get("next_attempt_at").ctx(c)?)?,
        updated_at: ts(row.try_get("updated_at").ctx(c)?)?,
    })
}

impl SqliteStore {
    pub(super) async fn subscriptions_impl(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>> {
        let base = "SELECT s.*, m.address FROM graph_subscriptions s \
                    JOIN mailboxes m ON m.id = s.mailbox_id";
        let rows = match id {
            Some(id) => {
                sqlx::query(super::sql(format!("{base} WHERE s.subscription_id = ?")))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(super::sql(format!("{base} ORDER BY m.address_key")))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx("cannot read the subscriptions")?;
        rows.iter().map(subscription_from_row).collect()
    }

    pub(super) async fn save_subscription_impl(&self, r: &SubscriptionRecord) -> Result<()> {
        let what = "cannot record the subscription";
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, r.mailbox).await?;
        sqlx::query(
            "INSERT INTO graph_subscriptions (mailbox_id, subscription_id, client_state_hash, \
             expires_at, state, reason, failures, next_attempt_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox_id) DO UPDATE SET \
             subscription_id = excluded.subscription_id, \
             client_state_hash = excluded.client_state_hash, expires_at = excluded.expires_at, \
             state = excluded.state, reason = excluded.reason, failures = excluded.failures, \
             next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at",
        )
        .bind(r.mailbox.0)
        .bind(r.subscription_id.as_deref())
        .bind(r.client_state_hash.as_deref())
        .bind(r.expires_at.map(us))
        .bind(r.state.as_str())
        .bind(r.reason.as_deref())
        .bind(i64::from(r.failures))
        .bind(r.next_attempt_at.map(us))
        .bind(us(r.updated_at))
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)
    }

    pub(super) async fn remove_subscription_impl(&self, mailbox: MailboxId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM graph_subscriptions WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the subscription")?;
        tx.commit().await.ctx("cannot remove the subscription")?;
        Ok(done.rows_affected() > 0)
    }
}

impl SqliteStore {
    /// The change log's rows about instances of `mailbox` overlapping `[from, to)`, newest first.
    pub(super) async fn changes_of_impl(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM change_log WHERE mailbox_id = ? AND start_us < ? AND end_us > ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(mailbox.0)
        .bind(us(to))
        .bind(us(from))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the change log")?;
        rows.iter().map(change_from_row).collect()
    }

    /// The change log's rows about one event (by its Exchange id), newest first.
    pub(super) async fn changes_of_event_impl(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM change_log WHERE mailbox_id = ? AND exchange_id = ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(mailbox.0)
        .bind(exchange_id)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the change log")?;
        rows.iter().map(change_from_row).collect()
    }
}
