//! Role leases (PostgreSQL): work one process does for every process sharing the store (the webhook
//! dispatcher, the keeper of Graph subscriptions), held with a deadline and renewed.

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;

use super::{Ctx, PgStore, ts, us};
use crate::error::{Error, Result};
use crate::types::LeaseHolder;

impl PgStore {
    pub(super) async fn hold_role_impl(
        &self,
        role: &str,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<bool> {
        if ttl <= SignedDuration::ZERO {
            return Err(Error::invalid("a role lease needs a positive duration"));
        }
        let what = "cannot take a role lease";
        let now = Timestamp::now();
        let deadline = us(now.checked_add(ttl).unwrap_or(Timestamp::MAX));
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT owner, pid, host, deadline FROM role_leases WHERE role = $1")
            .bind(role)
            .fetch_optional(&mut *tx)
            .await
            .ctx(what)?;
        let free = match &row {
            None => true,
            Some(r) => {
                let other = LeaseHolder {
                    id: r.try_get("owner").ctx(what)?,
                    pid: u32::try_from(r.try_get::<i64, _>("pid").ctx(what)?).unwrap_or(0),
                    host: r.try_get("host").ctx(what)?,
                };
                other.id == holder.id
                    || r.try_get::<i64, _>("deadline").ctx(what)? <= us(now)
                    || other.is_gone()
            }
        };
        if !free {
            return Ok(false);
        }
        let mine = row
            .as_ref()
            .map(|r| r.try_get::<String, _>("owner"))
            .transpose()
            .ctx(what)?
            .is_some_and(|o| o == holder.id);
        sqlx::query(
            "INSERT INTO role_leases (role, owner, pid, host, acquired_at, deadline) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, \
             pid = excluded.pid, host = excluded.host, deadline = excluded.deadline, \
             acquired_at = CASE WHEN $7 THEN role_leases.acquired_at ELSE excluded.acquired_at END",
        )
        .bind(role)
        .bind(&holder.id)
        .bind(i64::from(holder.pid))
        .bind(&holder.host)
        .bind(us(now))
        .bind(deadline)
        .bind(mine)
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(true)
    }

    pub(super) async fn release_role_impl(&self, role: &str, holder: &LeaseHolder) -> Result<bool> {
        let what = "cannot give a role lease up";
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM role_leases WHERE role = $1 AND owner = $2")
            .bind(role)
            .bind(&holder.id)
            .execute(&mut *tx)
            .await
            .ctx(what)?
            .rows_affected();
        tx.commit().await.ctx(what)?;
        Ok(done > 0)
    }

    pub(super) async fn roles_impl(&self) -> Result<Vec<(String, LeaseHolder, Timestamp)>> {
        let what = "cannot read the role leases";
        let rows = sqlx::query(
            "SELECT role, owner, pid, host, deadline FROM role_leases WHERE deadline > $1 \
             ORDER BY role",
        )
        .bind(us(Timestamp::now()))
        .fetch_all(&self.pool)
        .await
        .ctx(what)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("role").ctx(what)?,
                    LeaseHolder {
                        id: r.try_get("owner").ctx(what)?,
                        pid: u32::try_from(r.try_get::<i64, _>("pid").ctx(what)?).unwrap_or(0),
                        host: r.try_get("host").ctx(what)?,
                    },
                    ts(r.try_get("deadline").ctx(what)?)?,
                ))
            })
            .collect()
    }
}
