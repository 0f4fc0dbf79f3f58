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

/// The columns of [`SELECT_LEASE`], as read.
struct LeaseRow {
    mailbox_id: i64,
    address: String,
    token: i64,
    owner: Option<String>,
    pid: Option<i64>,
    host: Option<String>,
    acquired_at: Option<i64>,
    deadline: Option<i64>,
}

impl LeaseRow {
    fn from_sqlx(row: &SqliteRow) -> Result<LeaseRow> {
        let c = "cannot read a sync lease";
        Ok(LeaseRow {
            mailbox_id: row.try_get("mailbox_id").ctx(c)?,
            address: row.try_get("address").ctx(c)?,
            token: row.try_get("token").ctx(c)?,
            owner: row.try_get("owner").ctx(c)?,
            pid: row.try_get("pid").ctx(c)?,
            host: row.try_get("host").ctx(c)?,
            acquired_at: row.try_get("acquired_at").ctx(c)?,
            deadline: row.try_get("deadline").ctx(c)?,
        })
    }

    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<LeaseRow> {
        Ok(LeaseRow {
            mailbox_id: row.get("mailbox_id")?,
            address: row.get("address")?,
            token: row.get("token")?,
            owner: row.get("owner")?,
            pid: row.get("pid")?,
            host: row.get("host")?,
            acquired_at: row.get("acquired_at")?,
            deadline: row.get("deadline")?,
        })
    }

    /// The lease it holds (`owner` not NULL); `None` for a released one.
    fn info(self) -> Result<Option<LeaseInfo>> {
        let Some(owner) = self.owner else {
            return Ok(None);
        };
        Ok(Some(LeaseInfo {
            mailbox: MailboxId(self.mailbox_id),
            address: self.address,
            holder: LeaseHolder {
                id: owner,
                pid: u32::try_from(self.pid.unwrap_or(0)).unwrap_or(0),
                host: self.host.unwrap_or_default(),
            },
            token: self.token,
            since: ts(self.acquired_at.unwrap_or(0))?,
            deadline: ts(self.deadline.unwrap_or(0))?,
        }))
    }
}

/// A held lease row (`owner` not NULL); `None` for a released one.
fn info_from_row(row: &SqliteRow) -> Result<Option<LeaseInfo>> {
    LeaseRow::from_sqlx(row)?.info()
}

/// Takes a lease back: the round is over.
pub(super) const RELEASE_LEASE: &str = "UPDATE sync_leases SET owner = NULL, pid = NULL, \
     host = NULL, acquired_at = NULL, deadline = NULL \
     WHERE mailbox_id = ?1 AND token = ?2 AND owner = ?3";

/// Releases `lease` in `tx` on the writer's connection; false when it was no longer held.
pub(super) fn release(tx: &rusqlite::Transaction<'_>, lease: &Lease) -> Result<bool> {
    use super::bulk::Ctx as _;
    let done = tx
        .prepare_cached(RELEASE_LEASE)
        .and_then(|mut q| q.execute((lease.mailbox.0, lease.token, lease.holder.id.as_str())))
        .ctx("cannot release the sync lease")?;
    Ok(done > 0)
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
        let holder = holder.clone();
        self.bulk
            .run(move |tx: &rusqlite::Transaction<'_>| acquire(tx, mailbox, holder, ttl))
            .await
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
        let lease = lease.clone();
        self.bulk
            .run(move |tx: &rusqlite::Transaction<'_>| release(tx, &lease))
            .await
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

/// Takes the mailbox's sync lease for `holder` in `tx` on the writer's connection, unless a
/// live process holds it.
fn acquire(
    tx: &rusqlite::Transaction<'_>,
    mailbox: MailboxId,
    holder: LeaseHolder,
    ttl: SignedDuration,
) -> Result<LeaseGrant> {
    use super::bulk::Ctx as _;
    let now = Timestamp::now();
    super::bulk::require_mailbox(tx, mailbox)?;
    let c = "cannot read the sync lease";
    let row = tx
        .prepare_cached(&format!("{SELECT_LEASE} WHERE l.mailbox_id = ?1"))
        .and_then(|mut q| {
            let mut rows = q.query([mailbox.0])?;
            rows.next()?.map(LeaseRow::from_rusqlite).transpose()
        })
        .ctx(c)?;
    let mut token = 0;
    if let Some(row) = row {
        token = row.token;
        if let Some(info) = row.info()?
            && info.deadline > now
            && !info.holder.is_gone()
        {
            return Ok(LeaseGrant::Held(info));
        }
    }
    let token = token + 1;
    tx.prepare_cached(
        "INSERT INTO sync_leases (mailbox_id, token, owner, pid, host, acquired_at, deadline) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (mailbox_id) DO UPDATE SET \
         token = excluded.token, owner = excluded.owner, pid = excluded.pid, \
         host = excluded.host, acquired_at = excluded.acquired_at, \
         deadline = excluded.deadline",
    )
    .and_then(|mut q| {
        q.execute((
            mailbox.0,
            token,
            holder.id.as_str(),
            i64::from(holder.pid),
            holder.host.as_str(),
            us(now),
            deadline(now, ttl),
        ))
    })
    .ctx("cannot take the sync lease")?;
    Ok(LeaseGrant::Acquired(Lease {
        mailbox,
        token,
        holder,
        ttl,
        acquired_at: now,
    }))
}
