//! Connections and their sealed credentials.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Ctx, PgStore, Tx, map_sqlx, opt_ts, ts, us};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

fn credential_aad(uid: &str) -> Vec<u8> {
    format!("calgate:credential:{uid}").into_bytes()
}

fn ews_password_aad(uid: &str) -> Vec<u8> {
    format!("calgate:ews-password:{uid}").into_bytes()
}

impl PgStore {
    async fn insert_credential(
        &self,
        tx: &mut Tx,
        connection: ConnectionId,
        c: &NewCredential,
        now: Timestamp,
    ) -> Result<CredentialId> {
        if c.kind == CredentialKind::Certificate && c.certificate_pem.is_none() {
            return Err(Error::invalid(
                "a certificate credential needs its certificate (PEM) as well as its private key",
            ));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let sealed = self
            .key
            .seal(&credential_aad(&uid), c.secret.expose().as_bytes())?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO credentials (connection_id, uid, kind, sealed_secret, certificate_pem, \
             key_id, expires_at, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(connection.0)
        .bind(&uid)
        .bind(c.kind.as_str())
        .bind(sealed)
        .bind(c.certificate_pem.as_deref())
        .bind(c.key_id.as_deref())
        .bind(c.expires_at.map(us))
        .bind(us(now))
        .fetch_one(&mut **tx)
        .await
        .ctx("cannot store a credential")?;
        Ok(CredentialId(id))
    }

    fn credential_from_row(&self, row: &PgRow) -> Result<Credential> {
        let c = "cannot read a credential";
        let uid: String = row.try_get("uid").ctx(c)?;
        let sealed: Vec<u8> = row.try_get("sealed_secret").ctx(c)?;
        let plain = self.key.open(&credential_aad(&uid), &sealed)?;
        let secret = String::from_utf8(plain).map_err(|_| Error::corrupt("secret", "<binary>"))?;
        let kind: String = row.try_get("kind").ctx(c)?;
        Ok(Credential {
            id: CredentialId(row.try_get("id").ctx(c)?),
            kind: super::parse_enum("credential kind", &kind)?,
            secret: SecretString::new(secret),
            certificate_pem: row.try_get("certificate_pem").ctx(c)?,
            key_id: row.try_get("key_id").ctx(c)?,
            expires_at: opt_ts(row.try_get("expires_at").ctx(c)?)?,
            added_at: ts(row.try_get("added_at").ctx(c)?)?,
        })
    }

    pub(super) async fn load_connections(&self, name: Option<&str>) -> Result<Vec<Connection>> {
        // One REPEATABLE READ snapshot: connections and their credentials agree (PostgreSQL's
        // default READ COMMITTED would let each statement see a different moment).
        let mut conn = self.read_tx().await?;
        let rows = match name {
            Some(n) => {
                sqlx::query("SELECT * FROM connections WHERE name = $1")
                    .bind(n)
                    .fetch_all(&mut *conn)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM connections ORDER BY name")
                    .fetch_all(&mut *conn)
                    .await
            }
        }
        .ctx("cannot read connections")?;
        let mut out = Vec::with_capacity(rows.len());
        let c = "cannot read a connection";
        for row in rows {
            let id: i64 = row.try_get("id").ctx(c)?;
            let creds = sqlx::query(
                "SELECT * FROM credentials WHERE connection_id = $1 ORDER BY added_at DESC, id DESC",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .ctx("cannot read credentials")?;
            let credentials = creds
                .iter()
                .map(|r| self.credential_from_row(r))
                .collect::<Result<Vec<_>>>()?;
            let kind: String = row.try_get("kind").ctx(c)?;
            let ews = match super::parse_enum::<ConnectionKind>("connection kind", &kind)? {
                ConnectionKind::Graph => None,
                ConnectionKind::Ews => Some(self.ews_from_row(&row)?),
            };
            out.push(Connection {
                id: ConnectionId(id),
                name: row.try_get("name").ctx(c)?,
                tenant: row.try_get("tenant").ctx(c)?,
                client_id: row.try_get("client_id").ctx(c)?,
                authority: row.try_get("authority").ctx(c)?,
                graph_url: row.try_get("graph_url").ctx(c)?,
                cloud: row.try_get("cloud").ctx(c)?,
                created_at: ts(row.try_get("created_at").ctx(c)?)?,
                credentials,
                ca_cert_pem: row.try_get("ca_cert_pem").ctx(c)?,
                ews,
            });
        }
        Ok(out)
    }

    fn ews_from_row(&self, row: &PgRow) -> Result<EwsSettings> {
        let c = "cannot read an EWS connection";
        let uid: Option<String> = row.try_get("ews_uid").ctx(c)?;
        let sealed: Option<Vec<u8>> = row.try_get("ews_sealed_password").ctx(c)?;
        let (Some(uid), Some(sealed)) = (uid, sealed) else {
            return Err(Error::corrupt("EWS password", "<missing>"));
        };
        let plain = self.key.open(&ews_password_aad(&uid), &sealed)?;
        let password =
            String::from_utf8(plain).map_err(|_| Error::corrupt("EWS password", "<binary>"))?;
        let auth: Option<String> = row.try_get("ews_auth").ctx(c)?;
        let url: Option<String> = row.try_get("ews_url").ctx(c)?;
        let username: Option<String> = row.try_get("ews_username").ctx(c)?;
        let impersonation: i64 = row.try_get("ews_impersonation").ctx(c)?;
        Ok(EwsSettings {
            url: url.ok_or_else(|| Error::corrupt("EWS URL", "<missing>"))?,
            username: username.ok_or_else(|| Error::corrupt("EWS user name", "<missing>"))?,
            password: SecretString::new(password),
            auth: super::parse_enum("EWS authentication", auth.as_deref().unwrap_or("ntlm"))?,
            impersonation: impersonation != 0,
        })
    }

    pub(super) async fn set_ews_password_impl(
        &self,
        connection: &str,
        password: &SecretString,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM connections WHERE name = $1")
                .bind(connection)
                .fetch_optional(&mut *tx)
                .await
                .ctx("cannot read connections")?;
        let Some(kind) = kind else { return Ok(false) };
        if kind != ConnectionKind::Ews.as_str() {
            return Err(Error::invalid(format!(
                "connection '{connection}' signs in with Entra ID credentials, not a password: rotate them with `calgate connection secret add`"
            )));
        }
        // A new uid for the new value: the old ciphertext cannot be put back under it.
        let uid = uuid::Uuid::new_v4().to_string();
        let sealed = self
            .key
            .seal(&ews_password_aad(&uid), password.expose().as_bytes())?;
        sqlx::query(
            "UPDATE connections SET ews_uid = $1, ews_sealed_password = $2 WHERE name = $3",
        )
        .bind(&uid)
        .bind(sealed)
        .bind(connection)
        .execute(&mut *tx)
        .await
        .ctx("cannot store the password")?;
        tx.commit().await.ctx("cannot store the password")?;
        Ok(true)
    }

    pub(super) async fn connection_id(tx: &mut Tx, name: &str) -> Result<ConnectionId> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .ctx("cannot read connections")?;
        id.map(ConnectionId).ok_or_else(|| {
            Error::not_found(format!(
                "there is no connection named '{name}': add it with `calgate connection add {name} …`"
            ))
        })
    }

    pub(super) async fn add_connection_impl(&self, c: &NewConnection) -> Result<ConnectionId> {
        if c.name.trim().is_empty() {
            return Err(Error::invalid("a connection needs a name"));
        }
        if c.ews.is_some() && !c.credentials.is_empty() {
            return Err(Error::invalid(
                "an EWS connection signs in with its service account's password, not with Entra ID credentials",
            ));
        }
        let now = Timestamp::now();
        let (kind, uid, sealed) = match &c.ews {
            None => (ConnectionKind::Graph, None, None),
            Some(e) => {
                let uid = uuid::Uuid::new_v4().to_string();
                let sealed = self
                    .key
                    .seal(&ews_password_aad(&uid), e.password.expose().as_bytes())?;
                (ConnectionKind::Ews, Some(uid), Some(sealed))
            }
        };
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO connections (name, tenant, client_id, authority, graph_url, cloud, \
             created_at, ca_cert_pem, kind, ews_url, ews_username, ews_auth, ews_impersonation, \
             ews_uid, ews_sealed_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.tenant)
        .bind(&c.client_id)
        .bind(&c.authority)
        .bind(&c.graph_url)
        .bind(&c.cloud)
        .bind(us(now))
        .bind(c.ca_cert_pem.as_deref())
        .bind(kind.as_str())
        .bind(c.ews.as_ref().map(|e| e.url.as_str()))
        .bind(c.ews.as_ref().map(|e| e.username.as_str()))
        .bind(c.ews.as_ref().map(|e| e.auth.as_str()))
        .bind(c.ews.as_ref().is_some_and(|e| e.impersonation) as i64)
        .bind(uid)
        .bind(sealed)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match map_sqlx("cannot add the connection", e) {
            e if e.kind() == ErrorKind::Conflict => Error::conflict(format!(
                "a connection named '{}' already exists: pick another name or remove it first",
                c.name
            )),
            e => e,
        })?;
        for cred in &c.credentials {
            self.insert_credential(&mut tx, ConnectionId(id), cred, now)
                .await?;
        }
        tx.commit().await.ctx("cannot add the connection")?;
        Ok(ConnectionId(id))
    }

    pub(super) async fn remove_connection_impl(&self, name: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read connections")?;
        let Some(id) = id else { return Ok(false) };
        let linked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mailboxes WHERE connection_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .ctx("cannot read mailboxes")?;
        if linked > 0 {
            return Err(Error::conflict(format!(
                "connection '{name}' still has {linked} linked mailbox(es): unlink them first (`calgate mailbox unlink ADDRESS`)"
            )));
        }
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the connection")?;
        tx.commit().await.ctx("cannot remove the connection")?;
        Ok(true)
    }

    pub(super) async fn add_credential_impl(
        &self,
        connection: &str,
        c: &NewCredential,
    ) -> Result<CredentialId> {
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, connection).await?;
        let id = self
            .insert_credential(&mut tx, conn, c, Timestamp::now())
            .await?;
        tx.commit().await.ctx("cannot add the credential")?;
        Ok(id)
    }

    pub(super) async fn remove_credential_impl(
        &self,
        connection: &str,
        id: CredentialId,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, connection).await?;
        let done = sqlx::query("DELETE FROM credentials WHERE id = $1 AND connection_id = $2")
            .bind(id.0)
            .bind(conn.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the credential")?;
        tx.commit().await.ctx("cannot remove the credential")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn set_credential_expiry_impl(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE credentials SET expires_at = $1 WHERE id = $2")
            .bind(expires_at.map(us))
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot record the credential's expiry")?;
        tx.commit()
            .await
            .ctx("cannot record the credential's expiry")?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn set_connection_ca_impl(
        &self,
        connection: &str,
        ca_cert_pem: Option<&str>,
    ) -> Result<bool> {
        let what = "cannot store the connection's CA certificates";
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE connections SET ca_cert_pem = $1 WHERE name = $2")
            .bind(ca_cert_pem)
            .bind(connection)
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(done.rows_affected() > 0)
    }
}
