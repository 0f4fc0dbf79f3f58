//! Linking mailboxes, and what a change of privacy policy does to what is stored.

use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Ctx, SqliteStore, Tx, address_key, parse_enum, sql, ts, us};
use crate::error::{Error, Result};
use crate::types::*;

const SELECT_MAILBOX: &str = "SELECT m.id, m.address, m.connection_id, c.name AS connection, \
     m.kind, m.external_id, m.privacy, m.linked_at, m.resync_reason FROM mailboxes m \
     JOIN connections c ON c.id = m.connection_id";

pub(super) fn mailbox_from_row(row: &SqliteRow) -> Result<Mailbox> {
    let c = "cannot read a mailbox";
    let kind: String = row.try_get("kind").ctx(c)?;
    let privacy: String = row.try_get("privacy").ctx(c)?;
    Ok(Mailbox {
        id: MailboxId(row.try_get("id").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        connection_id: ConnectionId(row.try_get("connection_id").ctx(c)?),
        connection: row.try_get("connection").ctx(c)?,
        kind: parse_enum("mailbox kind", &kind)?,
        external_id: row.try_get("external_id").ctx(c)?,
        privacy: parse_enum("privacy policy", &privacy)?,
        linked_at: ts(row.try_get("linked_at").ctx(c)?)?,
        pending_resync: row.try_get("resync_reason").ctx(c)?,
    })
}

/// The rows whose details `policy` hides, as a condition on a table of instances or masters.
fn hidden_rows(policy: PrivacyPolicy) -> Option<&'static str> {
    match policy {
        PrivacyPolicy::BusyOnly => Some("1 = 1"),
        PrivacyPolicy::Full => Some("sensitivity IN ('private', 'confidential')"),
        PrivacyPolicy::FullIncludingPrivate => None,
    }
}

impl SqliteStore {
    pub(super) async fn link_mailbox_impl(&self, m: &NewMailbox) -> Result<MailboxId> {
        let address = m.address.trim();
        calgate_core::check_address(address).map_err(|e| Error::invalid(e.to_string()))?;
        let key = address_key(address);
        let external_id = |e: &Option<String>| e.as_deref().map(str::trim).map(str::to_owned);
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, &m.connection).await?;
        let existing = sqlx::query(sql(format!("{SELECT_MAILBOX} WHERE m.address_key = ?")))
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read mailboxes")?;
        let id = match existing {
            Some(row) => {
                let old = mailbox_from_row(&row)?;
                if old.connection_id != conn {
                    return Err(Error::conflict(format!(
                        "mailbox {address} is already linked to connection '{}': unlink it first",
                        old.connection
                    )));
                }
                let kind = m.kind.unwrap_or(old.kind);
                let privacy = m.privacy.unwrap_or(old.privacy);
                let external = match external_id(&m.external_id) {
                    None => old.external_id.clone(),
                    Some(e) if e.is_empty() => None,
                    Some(e) => Some(e),
                };
                sqlx::query(
                    "UPDATE mailboxes SET kind = ?, external_id = ?, privacy = ? WHERE id = ?",
                )
                .bind(kind.as_str())
                .bind(external.as_deref())
                .bind(privacy.as_str())
                .bind(old.id.0)
                .execute(&mut *tx)
                .await
                .ctx("cannot update the mailbox")?;
                if privacy != old.privacy {
                    Self::privacy_changed(&mut tx, old.id, old.privacy, privacy).await?;
                }
                old.id.0
            }
            None => {
                let external = external_id(&m.external_id).filter(|e| !e.is_empty());
                sqlx::query_scalar(
                    "INSERT INTO mailboxes (address, address_key, connection_id, kind, \
                     external_id, privacy, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(address)
                .bind(&key)
                .bind(conn.0)
                .bind(m.kind.unwrap_or(MailboxKind::User).as_str())
                .bind(external.as_deref())
                .bind(m.privacy.unwrap_or_default().as_str())
                .bind(us(Timestamp::now()))
                .fetch_one(&mut *tx)
                .await
                .ctx("cannot link the mailbox")?
            }
        };
        tx.commit().await.ctx("cannot link the mailbox")?;
        Ok(MailboxId(id))
    }

    /// A narrower policy scrubs what it hides now (with SQLite's secure delete, so the old
    /// text does not linger in free pages); a wider one asks for a full resync, since the
    /// details it shows were never stored.
    async fn privacy_changed(
        tx: &mut Tx,
        mailbox: MailboxId,
        old: PrivacyPolicy,
        new: PrivacyPolicy,
    ) -> Result<()> {
        if new.reveals_more_than(old) {
            sqlx::query(
                "UPDATE mailboxes SET resync_reason = ?, resync_seq = resync_seq + 1 WHERE id = ?",
            )
            .bind(format!(
                "privacy changed from {old} to {new}: details that were not stored are fetched again"
            ))
            .bind(mailbox.0)
            .execute(&mut **tx)
            .await
            .ctx("cannot request a full resync")?;
            return Ok(());
        }
        let Some(hidden) = hidden_rows(new) else {
            return Ok(());
        };
        let what = "cannot remove the details the new privacy policy hides";
        sqlx::raw_sql("PRAGMA secure_delete = ON")
            .execute(&mut **tx)
            .await
            .ctx(what)?;
        for table in ["instances", "shadow_instances"] {
            sqlx::query(sql(format!(
                "UPDATE {table} SET subject = NULL, location = NULL, body_preview = NULL, \
                 organizer = NULL, attendees = '[]' WHERE mailbox_id = ? AND ({hidden})"
            )))
            .bind(mailbox.0)
            .execute(&mut **tx)
            .await
            .ctx(what)?;
        }
        for table in ["series_masters", "shadow_series_masters"] {
            sqlx::query(sql(format!(
                "UPDATE {table} SET subject = NULL, location = NULL, organizer = NULL \
                 WHERE mailbox_id = ? AND ({hidden})"
            )))
            .bind(mailbox.0)
            .execute(&mut **tx)
            .await
            .ctx(what)?;
        }
        sqlx::raw_sql("PRAGMA secure_delete = OFF")
            .execute(&mut **tx)
            .await
            .ctx(what)?;
        Ok(())
    }

    pub(super) async fn unlink_mailbox_impl(&self, address: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM mailboxes WHERE address_key = ?")
            .bind(address_key(address))
            .execute(&mut *tx)
            .await
            .ctx("cannot unlink the mailbox")?;
        tx.commit().await.ctx("cannot unlink the mailbox")?;
        Ok(done.rows_affected() > 0)
    }

    /// Every mailbox by address, or the one at `address`.
    pub(super) async fn mailboxes_impl(&self, address: Option<&str>) -> Result<Vec<Mailbox>> {
        let rows = match address {
            Some(a) => {
                sqlx::query(sql(format!("{SELECT_MAILBOX} WHERE m.address_key = ?")))
                    .bind(address_key(a))
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(sql(format!("{SELECT_MAILBOX} ORDER BY m.address_key")))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx("cannot read mailboxes")?;
        rows.iter().map(mailbox_from_row).collect()
    }

    pub(super) async fn mailboxes_named_impl(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(Mailbox, Option<Timestamp>)>> {
        let mut out = Vec::with_capacity(addresses.len());
        let c = "cannot read mailboxes";
        for chunk in addresses.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "SELECT m.id, m.address, m.connection_id, c.name AS connection, m.kind, \
                 m.external_id, m.privacy, m.linked_at, m.resync_reason, s.last_success \
                 FROM mailboxes m JOIN connections c ON c.id = m.connection_id \
                 LEFT JOIN sync_status s ON s.mailbox_id = m.id WHERE m.address_key IN ({marks})"
            )));
            for a in chunk {
                q = q.bind(address_key(a));
            }
            for row in q.fetch_all(&self.pool).await.ctx(c)? {
                let last: Option<i64> = row.try_get("last_success").ctx(c)?;
                out.push((mailbox_from_row(&row)?, super::opt_ts(last)?));
            }
        }
        Ok(out)
    }

    /// The mailbox's privacy policy, or NotFound: the check every write of its data starts with.
    pub(super) async fn require_mailbox(tx: &mut Tx, mailbox: MailboxId) -> Result<PrivacyPolicy> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT privacy FROM mailboxes WHERE id = ?")
                .bind(mailbox.0)
                .fetch_optional(&mut **tx)
                .await
                .ctx("cannot read mailboxes")?;
        policy_of(mailbox, found.as_deref())
    }
}

/// A mailbox's privacy policy from its stored name; no row: the mailbox is not linked.
pub(super) fn policy_of(mailbox: MailboxId, found: Option<&str>) -> Result<PrivacyPolicy> {
    match found {
        Some(p) => parse_enum("privacy policy", p),
        None => Err(Error::not_found(format!(
            "mailbox {mailbox} is not linked (was it unlinked meanwhile?)"
        ))),
    }
}
