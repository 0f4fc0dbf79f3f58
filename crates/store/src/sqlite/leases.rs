//! Per-mailbox sync leases: one round of a mailbox at a time, across processes, fenced by a
//! token that every write of the round presents.

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Ctx, SqliteStore, Tx, ts, us};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

const SELECT_LEASE: &str = "SELECT l.mailbox_id, m.address, l.token, l.owner, l.pid, l.host, \
     l.acquired_at, l.deadline FROM sync_leases l JOIN mailboxes m ON m.id = l.mailbox_id";

/// A held lease row (`owner` not NULL); `None` for a released one.
fn info_from_row(row: &SqliteRow) -> Result<Option<LeaseInfo>> {
    let c = "cannot read a sync lease";
    let owner: Option<String> = row.try_get("owner").ctx(c)?;
    let Some(owner) = owner else { return Ok(None) };
    let pid: i64 = row.try_get::<Option<i64>, _>("pid").ctx(c)?.unwrap_or(0);
    Ok(Some(LeaseInfo {
        mailbox: MailboxId(row.try_get("mailbox_id").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        holder: LeaseHolder {
            id: owner,
            pid: u32::try_from(pid).unwrap_or(0),
            host: row
                .try_get::<Option<String>, _>("host")
                .ctx(c)?
                .unwrap_or_default(),
        },
        token: row.try_get("token").ctx(c)?,
        since: ts(row
            .try_get::<Option<i64>, _>("acquired_at")
            .ctx(c)?
            .unwrap_or(0))?,
        deadline: ts(row
            .try_get::<Option<i64>, _>("deadline")
            .ctx(c)?
            .unwrap_or(0))?,
    }))
}

pub(super) fn deadline(now: Timestamp, ttl: SignedDuration) -> i64 {
    us(now.checked_add(ttl).unwrap_or(Timestamp::MAX))
}

impl SqliteStore {
    pub(super) async fn acquire_lease_impl(
        &self,
        mailbox: MailboxId,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<LeaseGrant> {
        if ttl <= SignedDuration::ZERO {
            return Err(Error::invalid("a sync lease needs a positive duration"));
        }
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, mailbox).await?;
        let row = sqlx::query(super::sql(format!("{SELECT_LEASE} WHERE l.mailbox_id = ?")))
            .bind(mailbox.0)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read the sync lease")?;
        let mut token = 0;
        if let Some(row) = &row {
            token = row.try_get("token").ctx("cannot read the sync lease")?;
            if let Some(info) = info_from_row(row)?
                && info.deadline > now
                && !info.holder.is_gone()
            {
                tx.commit().await.ctx("cannot read the sync lease")?;
                return Ok(LeaseGrant::Held(info));
            }
        }
        let token = token + 1;
        sqlx::query(
            "INSERT INTO sync_leases (mailbox_id, token, owner, pid, host, acquired_at, deadline) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox_id) DO UPDATE SET \
             token = excluded.token, owner = excluded.owner, pid = excluded.pid, \
             host = excluded.host, acquired_at = excluded.acquired_at, \
             deadline = excluded.deadline",
        )
        .bind(mailbox.0)
        .bind(token)
        .bind(&holder.id)
        .bind(i64::from(holder.pid))
        .bind(&holder.host)
        .bind(us(now))
        .bind(deadline(now, ttl))
        .execute(&mut *tx)
        .await
        .ctx("cannot take the sync lease")?;
        tx.commit().await.ctx("cannot take the sync lease")?;
        Ok(LeaseGrant::Acquired(Lease {
            mailbox,
            token,
            holder: holder.clone(),
            ttl,
            acquired_at: now,
        }))
    }

    /// Checks that `lease` is still the mailbox's current one and extends it; the mailbox's
    /// privacy policy comes back (every fenced write needs it). Else NotFound (unlinked) or
    /// LeaseLost (taken over).
    pub(super) async fn fence(tx: &mut Tx, lease: &Lease) -> Result<calgate_core::PrivacyPolicy> {
        let policy = Self::require_mailbox(tx, lease.mailbox).await?;
        let done = sqlx::query(
            "UPDATE sync_leases SET deadline = MAX(deadline, ?) \
             WHERE mailbox_id = ? AND token = ? AND owner = ?",
        )
        .bind(deadline(Timestamp::now(), lease.ttl))
        .bind(lease.mailbox.0)
        .bind(lease.token)
        .bind(&lease.holder.id)
        .execute(&mut **tx)
        .await
        .ctx("cannot check the sync lease")?;
        if done.rows_affected() == 1 {
            return Ok(policy);
        }
        Err(Self::lease_lost(&mut **tx, lease).await)
    }

    /// The error of a fenced write whose lease is no longer the mailbox's current one: who
    /// holds it now, if anyone.
    pub(super) async fn lease_lost(conn: impl sqlx::SqliteExecutor<'_>, lease: &Lease) -> Error {
        let row = match sqlx::query(super::sql(format!("{SELECT_LEASE} WHERE l.mailbox_id = ?")))
            .bind(lease.mailbox.0)
            .fetch_optional(conn)
            .await
            .ctx("cannot read the sync lease")
        {
            Ok(row) => row,
            Err(e) => return e,
        };
        let now_held = match &row {
            Some(r) => match info_from_row(r) {
                Ok(i) => i,
                Err(e) => return e,
            },
            None => None,
        };
        Error::new(
            ErrorKind::LeaseLost,
            match now_held {
                Some(i) => format!(
                    "this round's sync lease on {} lapsed and another calgate process ({}) took it over at {}: this round stopped without writing, that process syncs the mailbox",
                    i.address,
                    i.holder,
                    i.since.strftime("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => format!(
                    "this round's sync lease on mailbox {} lapsed and was released: this round stopped without writing; the next sync runs it again",
                    lease.mailbox
                ),
            },
        )
    }

    pub(super) async fn renew_lease_impl(&self, lease: &Lease) -> Result<()> {
        let mut tx = self.write_tx().await?;
        Self::fence(&mut tx, lease).await?;
        tx.commit().await.ctx("cannot renew the sync lease")
    }

    pub(super) async fn release_lease_impl(&self, lease: &Lease) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let released = Self::release_in(&mut tx, lease).await?;
        tx.commit().await.ctx("cannot release the sync lease")?;
        Ok(released)
    }

    pub(super) async fn release_in(tx: &mut Tx, lease: &Lease) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sync_leases SET owner = NULL, pid = NULL, host = NULL, acquired_at = NULL, \
             deadline = NULL WHERE mailbox_id = ? AND token = ? AND owner = ?",
        )
        .bind(lease.mailbox.0)
        .bind(lease.token)
        .bind(&lease.holder.id)
        .execute(&mut **tx)
        .await
        .ctx("cannot release the sync lease")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn leases_impl(&self) -> Result<Vec<LeaseInfo>> {
        let rows = sqlx::query(super::sql(format!(
            "{SELECT_LEASE} WHERE l.owner IS NOT NULL AND l.deadline > ? ORDER BY m.address_key"
        )))
        .bind(us(Timestamp::now()))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the sync leases")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(i) = info_from_row(r)?
                && !i.holder.is_gone()
            {
                out.push(i);
            }
        }
        Ok(out)
    }
}
