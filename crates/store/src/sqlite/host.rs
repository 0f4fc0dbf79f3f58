//! The host application's access: API keys and ICS feeds (hashes only).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{
    CONSOLE_PASSWORD, Ctx, SqliteStore, address_key, map_sqlx, opt_ts, parse_enum, ts, us,
};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

fn scopes_text(scopes: &[ApiScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKey> {
    let c = "cannot read an API key";
    let scopes: String = row.try_get("scopes").ctx(c)?;
    Ok(ApiKey {
        name: row.try_get("name").ctx(c)?,
        key_id: row.try_get("key_id").ctx(c)?,
        salt: row.try_get("salt").ctx(c)?,
        hash: row.try_get("hash").ctx(c)?,
        scopes: scopes
            .split_whitespace()
            .map(|s| parse_enum("scope", s))
            .collect::<Result<Vec<_>>>()?,
        created_at: ts(row.try_get("created_at").ctx(c)?)?,
        revoked_at: opt_ts(row.try_get("revoked_at").ctx(c)?)?,
    })
}

const SELECT_FEED: &str =
    "SELECT f.*, m.address FROM feeds f JOIN mailboxes m ON m.id = f.mailbox_id";

fn feed_from_row(row: &SqliteRow) -> Result<Feed> {
    let c = "cannot read a feed";
    let privacy: String = row.try_get("privacy").ctx(c)?;
    Ok(Feed {
        id: row.try_get("id").ctx(c)?,
        mailbox_id: MailboxId(row.try_get("mailbox_id").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        token_hint: row.try_get("token_hint").ctx(c)?,
        privacy: parse_enum("privacy policy", &privacy)?,
        created_at: ts(row.try_get("created_at").ctx(c)?)?,
        revoked_at: opt_ts(row.try_get("revoked_at").ctx(c)?)?,
    })
}

impl SqliteStore {
    pub(super) async fn add_api_key_impl(&self, key: &NewApiKey) -> Result<()> {
        if key.name.trim().is_empty() {
            return Err(Error::invalid("an API key needs a name"));
        }
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO api_keys (name, key_id, salt, hash, scopes, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.name.trim())
        .bind(&key.key_id)
        .bind(&key.salt)
        .bind(&key.hash)
        .bind(scopes_text(&key.scopes))
        .bind(us(Timestamp::now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| match map_sqlx("cannot store the API key", e) {
            e if e.kind() == ErrorKind::Conflict => Error::conflict(format!(
                "an API key named '{}' exists already: pick another name, or revoke it first (`calgate apikey revoke {}`)",
                key.name, key.name
            )),
            e => e,
        })?;
        tx.commit().await.ctx("cannot store the API key")
    }

    pub(super) async fn api_key_impl(&self, key_id: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_id = ?")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read API keys")?;
        row.as_ref().map(key_from_row).transpose()
    }

    pub(super) async fn list_api_keys_impl(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .ctx("cannot read API keys")?;
        rows.iter().map(key_from_row).collect()
    }

    pub(super) async fn revoke_api_key_impl(&self, name: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
                .bind(us(Timestamp::now()))
                .bind(name)
                .execute(&mut *tx)
                .await
                .ctx("cannot revoke the API key")?;
        tx.commit().await.ctx("cannot revoke the API key")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn add_feed_impl(&self, feed: &NewFeed) -> Result<i64> {
        let what = "cannot store the feed";
        let mut tx = self.write_tx().await?;
        let mailbox: Option<i64> =
            sqlx::query_scalar("SELECT id FROM mailboxes WHERE address_key = ?")
                .bind(address_key(&feed.address))
                .fetch_optional(&mut *tx)
                .await
                .ctx(what)?;
        let Some(mailbox) = mailbox else {
            return Err(Error::not_found(format!(
                "{} is not linked: link it with `calgate mailbox link {} --connection NAME` first",
                feed.address, feed.address
            )));
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO feeds (mailbox_id, token_hash, token_hint, privacy, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(mailbox)
        .bind(&feed.token_hash)
        .bind(&feed.token_hint)
        .bind(feed.privacy.as_str())
        .bind(us(Timestamp::now()))
        .fetch_one(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(id)
    }

    pub(super) async fn feed_by_token_hash_impl(&self, token_hash: &[u8]) -> Result<Option<Feed>> {
        let row = sqlx::query(super::sql(format!("{SELECT_FEED} WHERE f.token_hash = ?")))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read feeds")?;
        row.as_ref().map(feed_from_row).transpose()
    }

    pub(super) async fn list_feeds_impl(&self) -> Result<Vec<Feed>> {
        let rows = sqlx::query(super::sql(format!(
            "{SELECT_FEED} ORDER BY m.address_key, f.id"
        )))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read feeds")?;
        rows.iter().map(feed_from_row).collect()
    }

    pub(super) async fn revoke_feed_impl(&self, id: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE feeds SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(us(Timestamp::now()))
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx("cannot revoke the feed")?;
        tx.commit().await.ctx("cannot revoke the feed")?;
        Ok(done.rows_affected() > 0)
    }
}

impl SqliteStore {
    pub(super) async fn console_password_hash_impl(&self) -> Result<Option<String>> {
        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(CONSOLE_PASSWORD)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read the console password")?;
        v.map(|b| String::from_utf8(b).map_err(|_| Error::corrupt("console password", "<binary>")))
            .transpose()
    }
    pub(super) async fn set_console_password_hash_impl(&self, phc: &str) -> Result<()> {
        if !phc.starts_with("$argon2") {
            return Err(Error::invalid(
                "the console password must be stored as an argon2 hash",
            ));
        }
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(CONSOLE_PASSWORD)
        .bind(phc.as_bytes())
        .execute(&mut *tx)
        .await
        .ctx("cannot store the console password")?;
        tx.commit().await.ctx("cannot store the console password")?;
        Ok(())
    }
    pub(super) async fn put_console_session_impl(&self, session: &ConsoleSession) -> Result<()> {
        let what = "cannot store the console session";
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(us(Timestamp::now()))
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        sqlx::query(
            "INSERT INTO console_sessions (token_sha256, csrf, via, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (token_sha256) DO UPDATE SET csrf = excluded.csrf, \
             via = excluded.via, expires_at = excluded.expires_at",
        )
        .bind(&session.token_sha256)
        .bind(&session.csrf)
        .bind(&session.via)
        .bind(us(session.expires_at))
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(())
    }
    pub(super) async fn console_session_impl(
        &self,
        token_sha256: &[u8],
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let what = "cannot read the console session";
        let row = sqlx::query(
            "SELECT csrf, via, expires_at FROM console_sessions \
             WHERE token_sha256 = ? AND expires_at > ?",
        )
        .bind(token_sha256)
        .bind(us(now))
        .fetch_optional(&self.pool)
        .await
        .ctx(what)?;
        row.map(|r| {
            use sqlx::Row as _;
            Ok(ConsoleSession {
                token_sha256: token_sha256.to_vec(),
                csrf: r.try_get("csrf").ctx(what)?,
                via: r.try_get("via").ctx(what)?,
                expires_at: ts(r.try_get("expires_at").ctx(what)?)?,
            })
        })
        .transpose()
    }
    pub(super) async fn remove_console_session_impl(&self, token_sha256: &[u8]) -> Result<()> {
        let what = "cannot end the console session";
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = ?")
            .bind(token_sha256)
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(())
    }

    pub(super) async fn close_impl(&self) {
        self.bulk.close().await;
        self.writer.close().await;
        self.pool.close().await;
    }
}
