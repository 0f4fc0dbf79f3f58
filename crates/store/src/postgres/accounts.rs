//! Storage of connected accounts (SQLite's migration 0002_accounts.sql; here part of
//! 0001_initial.sql).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Ctx, PgStore, address_key, ts, us};
use crate::accounts::*;
use crate::error::{Error, Result};
use crate::types::{ConnectionId, SecretString};

fn account_aad(uid: &str) -> Vec<u8> {
    format!("calgate:account:{uid}").into_bytes()
}

const SELECT_ACCOUNT: &str = "SELECT a.*, c.name AS connection FROM accounts a \
     JOIN connections c ON c.id = a.connection_id";

fn parse_endpoint(s: &str) -> Result<AccountEndpoint> {
    match s {
        "v2" => Ok(AccountEndpoint::V2),
        "v1" => Ok(AccountEndpoint::V1),
        other => Err(Error::corrupt("account endpoint", other)),
    }
}

fn parse_state(s: &str) -> Result<AccountState> {
    match s {
        "ok" => Ok(AccountState::Ok),
        "reconnect-needed" => Ok(AccountState::ReconnectNeeded),
        other => Err(Error::corrupt("account state", other)),
    }
}

impl PgStore {
    fn account_from_row(&self, row: &PgRow) -> Result<Account> {
        let c = "cannot read an account";
        let uid: String = row.try_get("uid").ctx(c)?;
        let sealed: Vec<u8> = row.try_get("sealed_refresh_token").ctx(c)?;
        let plain = self.key.open(&account_aad(&uid), &sealed)?;
        let rt = String::from_utf8(plain).map_err(|_| Error::corrupt("secret", "<binary>"))?;
        let endpoint: String = row.try_get("endpoint").ctx(c)?;
        let state: String = row.try_get("state").ctx(c)?;
        Ok(Account {
            id: AccountId(row.try_get("id").ctx(c)?),
            connection_id: ConnectionId(row.try_get("connection_id").ctx(c)?),
            connection: row.try_get("connection").ctx(c)?,
            upn: row.try_get("upn").ctx(c)?,
            mail: row.try_get("mail").ctx(c)?,
            display_name: row.try_get("display_name").ctx(c)?,
            user_id: row.try_get("user_id").ctx(c)?,
            refresh_token: SecretString::new(rt),
            scopes: row.try_get("scopes").ctx(c)?,
            endpoint: parse_endpoint(&endpoint)?,
            state: parse_state(&state)?,
            state_message: row.try_get("state_message").ctx(c)?,
            state_at: ts(row.try_get("state_at").ctx(c)?)?,
            connected_at: ts(row.try_get("connected_at").ctx(c)?)?,
            refreshed_at: ts(row.try_get("refreshed_at").ctx(c)?)?,
        })
    }

    pub(super) async fn save_account_impl(&self, a: &NewAccount) -> Result<AccountId> {
        if a.upn.trim().is_empty() {
            return Err(Error::invalid(
                "a connected account needs its user principal name",
            ));
        }
        if a.refresh_token.expose().is_empty() {
            return Err(Error::invalid(
                "Entra ID sent no refresh token: the sign-in must ask for offline_access",
            ));
        }
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let connection = Self::connection_id(&mut tx, &a.connection).await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT uid FROM accounts WHERE connection_id = $1 AND upn_key = $2",
        )
        .bind(connection.0)
        .bind(address_key(&a.upn))
        .fetch_optional(&mut *tx)
        .await
        .ctx("cannot read accounts")?;
        let uid = existing.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let sealed = self
            .key
            .seal(&account_aad(&uid), a.refresh_token.expose().as_bytes())?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (connection_id, uid, upn, upn_key, mail, mail_key, display_name, \
             user_id, sealed_refresh_token, scopes, endpoint, state, state_message, state_at, \
             connected_at, refreshed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'ok', NULL, $12, $13, $14) \
             ON CONFLICT (connection_id, upn_key) DO UPDATE SET upn = excluded.upn, \
             mail = excluded.mail, mail_key = excluded.mail_key, \
             display_name = excluded.display_name, user_id = excluded.user_id, \
             sealed_refresh_token = excluded.sealed_refresh_token, scopes = excluded.scopes, \
             endpoint = excluded.endpoint, state = 'ok', state_message = NULL, \
             state_at = excluded.state_at, connected_at = excluded.connected_at, \
             refreshed_at = excluded.refreshed_at RETURNING id",
        )
        .bind(connection.0)
        .bind(&uid)
        .bind(a.upn.trim())
        .bind(address_key(&a.upn))
        .bind(a.mail.as_deref().map(str::trim))
        .bind(a.mail.as_deref().map(address_key))
        .bind(a.display_name.as_deref())
        .bind(a.user_id.as_deref())
        .bind(sealed)
        .bind(&a.scopes)
        .bind(a.endpoint.as_str())
        .bind(us(now))
        .bind(us(now))
        .bind(us(now))
        .fetch_one(&mut *tx)
        .await
        .ctx("cannot store the connected account")?;
        tx.commit()
            .await
            .ctx("cannot store the connected account")?;
        Ok(AccountId(id))
    }

    pub(super) async fn list_accounts_impl(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query(super::sql(format!(
            "{SELECT_ACCOUNT} ORDER BY c.name, a.upn_key"
        )))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read accounts")?;
        rows.iter().map(|r| self.account_from_row(r)).collect()
    }

    pub(super) async fn account_impl(&self, id: AccountId) -> Result<Option<Account>> {
        let row = sqlx::query(super::sql(format!("{SELECT_ACCOUNT} WHERE a.id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read accounts")?;
        row.as_ref().map(|r| self.account_from_row(r)).transpose()
    }

    pub(super) async fn store_refresh_token_impl(
        &self,
        id: AccountId,
        refresh_token: &SecretString,
        refreshed_at: Timestamp,
    ) -> Result<bool> {
        if refresh_token.expose().is_empty() {
            return Err(Error::invalid("an empty refresh token cannot be stored"));
        }
        let mut tx = self.write_tx().await?;
        let uid: Option<String> = sqlx::query_scalar("SELECT uid FROM accounts WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read accounts")?;
        let Some(uid) = uid else {
            return Ok(false);
        };
        let sealed = self
            .key
            .seal(&account_aad(&uid), refresh_token.expose().as_bytes())?;
        sqlx::query(
            "UPDATE accounts SET sealed_refresh_token = $1, refreshed_at = $2, state = 'ok', \
             state_message = NULL, state_at = CASE WHEN state = 'ok' THEN state_at ELSE $3 END \
             WHERE id = $4",
        )
        .bind(sealed)
        .bind(us(refreshed_at))
        .bind(us(refreshed_at))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .ctx("cannot store the refresh token")?;
        tx.commit().await.ctx("cannot store the refresh token")?;
        Ok(true)
    }

    pub(super) async fn set_account_state_impl(
        &self,
        id: AccountId,
        state: AccountState,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE accounts SET state = $1, state_message = $2, state_at = $3 WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(message)
        .bind(us(at))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .ctx("cannot record the account's state")?;
        tx.commit().await.ctx("cannot record the account's state")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn remove_accounts_impl(
        &self,
        address: &str,
        connection: Option<&str>,
    ) -> Result<u64> {
        let key = address_key(address);
        let mut tx = self.write_tx().await?;
        let done = match connection {
            Some(name) => {
                let c = Self::connection_id(&mut tx, name).await?;
                sqlx::query(
                    "DELETE FROM accounts WHERE connection_id = $1 AND (upn_key = $2 OR mail_key = $3)",
                )
                .bind(c.0)
                .bind(&key)
                .bind(&key)
                .execute(&mut *tx)
                .await
            }
            None => {
                sqlx::query("DELETE FROM accounts WHERE upn_key = $1 OR mail_key = $2")
                    .bind(&key)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await
            }
        }
        .ctx("cannot forget the account")?;
        tx.commit().await.ctx("cannot forget the account")?;
        Ok(done.rows_affected())
    }
}
