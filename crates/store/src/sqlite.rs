//! The SQLite backend (sqlx): one file, WAL, foreign keys, a busy timeout and a small pool.
//! Every write runs in one `BEGIN IMMEDIATE` transaction, so concurrent writers queue on the
//! busy timeout instead of failing on a read-to-write upgrade.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use calgate_core::{
    Instance, InstanceType, MailboxKind, Origin, Person, PrivacyPolicy, Sensitivity, ShowAs, When,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use crate::Store;
use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

mod accounts;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAIN: &[u8] = b"calgate master key check v1";

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    key: MasterKey,
    file: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

// ---- error mapping ---------------------------------------------------------------------------

fn map_sqlx(what: &str, e: sqlx::Error) -> Error {
    let (kind, detail) = match &e {
        sqlx::Error::Database(d) => (
            match d.kind() {
                sqlx::error::ErrorKind::UniqueViolation => ErrorKind::Conflict,
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => ErrorKind::InvalidData,
                sqlx::error::ErrorKind::ForeignKeyViolation => ErrorKind::NotFound,
                _ => ErrorKind::Database,
            },
            d.message().to_owned(),
        ),
        other => (ErrorKind::Database, other.to_string()),
    };
    Error::with_source(kind, format!("{what}: {detail}"), e)
}

trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, sqlx::Error> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| map_sqlx(what, e))
    }
}

// ---- value codecs ----------------------------------------------------------------------------

fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(v: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|_| Error::corrupt("instant", &v.to_string()))
}

fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(ts).transpose()
}

fn text_ts(v: Option<String>) -> Result<Option<Timestamp>> {
    v.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|_| Error::corrupt("instant", &s))
    })
    .transpose()
}

fn date(v: Option<String>) -> Result<Option<Date>> {
    v.map(|s| s.parse::<Date>().map_err(|_| Error::corrupt("date", &s)))
        .transpose()
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sensitivity_str(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "normal",
        Sensitivity::Personal => "personal",
        Sensitivity::Private => "private",
        Sensitivity::Confidential => "confidential",
    }
}

fn parse_sensitivity(s: &str) -> Result<Sensitivity> {
    match s {
        "normal" => Ok(Sensitivity::Normal),
        "personal" => Ok(Sensitivity::Personal),
        "private" => Ok(Sensitivity::Private),
        "confidential" => Ok(Sensitivity::Confidential),
        other => Err(Error::corrupt("sensitivity", other)),
    }
}

fn parse_show_as(s: &str) -> Result<ShowAs> {
    let v = ShowAs::parse(s);
    if v.as_str() == s {
        Ok(v)
    } else {
        Err(Error::corrupt("showAs", s))
    }
}

fn type_str(t: InstanceType) -> &'static str {
    match t {
        InstanceType::SingleInstance => "singleInstance",
        InstanceType::Occurrence => "occurrence",
        InstanceType::Exception => "exception",
    }
}

fn parse_type(s: &str) -> Result<InstanceType> {
    match s {
        "singleInstance" => Ok(InstanceType::SingleInstance),
        "occurrence" => Ok(InstanceType::Occurrence),
        "exception" => Ok(InstanceType::Exception),
        other => Err(Error::corrupt("instance type", other)),
    }
}

fn origin_str(o: Origin) -> &'static str {
    match o {
        Origin::Exchange => "exchange",
        Origin::Calgate => "calgate",
    }
}

fn parse_origin(s: &str) -> Result<Origin> {
    match s {
        "exchange" => Ok(Origin::Exchange),
        "calgate" => Ok(Origin::Calgate),
        other => Err(Error::corrupt("origin", other)),
    }
}

fn kind_str(k: MailboxKind) -> &'static str {
    match k {
        MailboxKind::User => "user",
        MailboxKind::Room => "room",
        MailboxKind::Equipment => "equipment",
    }
}

fn privacy_str(p: PrivacyPolicy) -> &'static str {
    match p {
        PrivacyPolicy::Full => "full",
        PrivacyPolicy::BusyOnly => "busy-only",
        PrivacyPolicy::FullIncludingPrivate => "full-including-private",
    }
}

fn parse_credential_kind(s: &str) -> Result<CredentialKind> {
    match s {
        "secret" => Ok(CredentialKind::Secret),
        "certificate" => Ok(CredentialKind::Certificate),
        other => Err(Error::corrupt("credential kind", other)),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::invalid(format!("cannot encode a value as JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| Error::corrupt(what, s))
}

fn address_key(address: &str) -> String {
    address.trim().to_lowercase()
}

fn credential_aad(uid: &str) -> Vec<u8> {
    format!("calgate:credential:{uid}").into_bytes()
}

// ---- live vs shadow --------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    Live,
    Shadow,
}

impl Set {
    fn instances(self) -> &'static str {
        match self {
            Set::Live => "instances",
            Set::Shadow => "shadow_instances",
        }
    }
    fn masters(self) -> &'static str {
        match self {
            Set::Live => "series_masters",
            Set::Shadow => "shadow_series_masters",
        }
    }
}

const INSTANCE_COLUMNS: &str = "mailbox_id, exchange_id, id, ical_uid, type, series_master_id, \
     start_us, end_us, all_day_start, all_day_end, time_zone, show_as, sensitivity, subject, \
     location, body_preview, organizer, attendees, web_link, change_key, last_modified, origin, \
     stored_at";

const MASTER_COLUMNS: &str = "mailbox_id, exchange_id, ical_uid, subject, location, organizer, \
     recurrence, start_us, end_us, time_zone, show_as, sensitivity, web_link, change_key, \
     last_modified, stored_at";

/// SQL built from the constant table and column names above only (never from input).
fn sql(s: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(s)
}

fn upsert_instance_sql(set: Set) -> String {
    format!(
        "INSERT INTO {t} ({INSTANCE_COLUMNS}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (mailbox_id, exchange_id) DO UPDATE SET \
         ical_uid = excluded.ical_uid, type = excluded.type, \
         series_master_id = excluded.series_master_id, start_us = excluded.start_us, \
         end_us = excluded.end_us, all_day_start = excluded.all_day_start, \
         all_day_end = excluded.all_day_end, time_zone = excluded.time_zone, \
         show_as = excluded.show_as, sensitivity = excluded.sensitivity, \
         subject = excluded.subject, location = excluded.location, \
         body_preview = excluded.body_preview, organizer = excluded.organizer, \
         attendees = excluded.attendees, web_link = excluded.web_link, \
         change_key = excluded.change_key, last_modified = excluded.last_modified, \
         origin = excluded.origin, stored_at = excluded.stored_at",
        t = set.instances()
    )
}

fn upsert_master_sql(set: Set) -> String {
    format!(
        "INSERT INTO {t} ({MASTER_COLUMNS}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (mailbox_id, exchange_id) DO UPDATE SET \
         ical_uid = excluded.ical_uid, subject = excluded.subject, \
         location = excluded.location, organizer = excluded.organizer, \
         recurrence = excluded.recurrence, start_us = excluded.start_us, \
         end_us = excluded.end_us, time_zone = excluded.time_zone, \
         show_as = excluded.show_as, sensitivity = excluded.sensitivity, \
         web_link = excluded.web_link, change_key = excluded.change_key, \
         last_modified = excluded.last_modified, stored_at = excluded.stored_at",
        t = set.masters()
    )
}

const SELECT_INSTANCE: &str = "SELECT i.*, m.address AS mailbox_address FROM instances i \
     JOIN mailboxes m ON m.id = i.mailbox_id";

const SELECT_MAILBOX: &str = "SELECT m.id, m.address, m.connection_id, c.name AS connection, \
     m.kind, m.external_id, m.privacy, m.linked_at FROM mailboxes m \
     JOIN connections c ON c.id = m.connection_id";

const SELECT_STATUS: &str = "SELECT m.id AS mid, m.address, c.name AS connection, s.*, \
     EXISTS (SELECT 1 FROM shadows sh WHERE sh.mailbox_id = m.id) AS resync \
     FROM mailboxes m JOIN connections c ON c.id = m.connection_id \
     LEFT JOIN sync_status s ON s.mailbox_id = m.id";

type Tx = Transaction<'static, Sqlite>;

impl SqliteStore {
    /// Opens (creating and migrating) the database file and checks the master key against it.
    pub async fn open(file: &Path, key: MasterKey, max_connections: Option<u32>) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let what = format!("cannot open the database {}", file.display());
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.unwrap_or(8).max(1))
            .connect_with(options)
            .await
            .ctx(&what)?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            let message = format!("cannot migrate the database {}: {e}", file.display());
            Error::with_source(ErrorKind::Database, message, e)
        })?;
        let store = SqliteStore {
            pool,
            key,
            file: file.to_path_buf(),
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn write_tx(&self) -> Result<Tx> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .ctx("cannot start a write transaction")
    }

    /// Seals a known value with the key on first open; later opens must open it.
    async fn check_key(&self) -> Result<()> {
        let aad = b"calgate:meta:master_key_check";
        let mut tx = self.write_tx().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read the master key check")?;
        match existing {
            None => {
                let sealed = self.key.seal(aad, KEY_CHECK_PLAIN)?;
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                    .bind(KEY_CHECK)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await
                    .ctx("cannot write the master key check")?;
                tx.commit().await.ctx("cannot write the master key check")?;
                Ok(())
            }
            Some(sealed) => {
                drop(tx);
                match self.key.open(aad, &sealed) {
                    Ok(plain) if plain == KEY_CHECK_PLAIN => Ok(()),
                    _ => Err(Error::new(
                        ErrorKind::MasterKey,
                        format!(
                            "the master key does not match the database {}: it was created with another {} or {}; restore that key",
                            self.file.display(),
                            crate::MASTER_KEY_ENV,
                            crate::MASTER_KEY_FILE
                        ),
                    )),
                }
            }
        }
    }

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
             key_id, expires_at, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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

    fn credential_from_row(&self, row: &SqliteRow) -> Result<Credential> {
        let uid: String = row.try_get("uid").ctx("credential")?;
        let sealed: Vec<u8> = row.try_get("sealed_secret").ctx("credential")?;
        let plain = self.key.open(&credential_aad(&uid), &sealed)?;
        let secret = String::from_utf8(plain).map_err(|_| Error::corrupt("secret", "<binary>"))?;
        let kind: String = row.try_get("kind").ctx("credential")?;
        Ok(Credential {
            id: CredentialId(row.try_get("id").ctx("credential")?),
            kind: parse_credential_kind(&kind)?,
            secret: SecretString::new(secret),
            certificate_pem: row.try_get("certificate_pem").ctx("credential")?,
            key_id: row.try_get("key_id").ctx("credential")?,
            expires_at: opt_ts(row.try_get("expires_at").ctx("credential")?)?,
            added_at: ts(row.try_get("added_at").ctx("credential")?)?,
        })
    }

    async fn load_connections(&self, name: Option<&str>) -> Result<Vec<Connection>> {
        // One read transaction: a consistent snapshot of connections and their credentials.
        let mut conn = self.pool.begin().await.ctx("cannot read connections")?;
        let rows = match name {
            Some(n) => {
                sqlx::query("SELECT * FROM connections WHERE name = ?")
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
        for row in rows {
            let id: i64 = row.try_get("id").ctx("connection")?;
            let creds = sqlx::query(
                "SELECT * FROM credentials WHERE connection_id = ? ORDER BY added_at DESC, id DESC",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .ctx("cannot read credentials")?;
            let credentials = creds
                .iter()
                .map(|r| self.credential_from_row(r))
                .collect::<Result<Vec<_>>>()?;
            out.push(Connection {
                id: ConnectionId(id),
                name: row.try_get("name").ctx("connection")?,
                tenant: row.try_get("tenant").ctx("connection")?,
                client_id: row.try_get("client_id").ctx("connection")?,
                authority: row.try_get("authority").ctx("connection")?,
                graph_url: row.try_get("graph_url").ctx("connection")?,
                cloud: row.try_get("cloud").ctx("connection")?,
                created_at: ts(row.try_get("created_at").ctx("connection")?)?,
                credentials,
            });
        }
        Ok(out)
    }

    async fn connection_id(tx: &mut Tx, name: &str) -> Result<ConnectionId> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE name = ?")
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

    async fn require_mailbox(tx: &mut Tx, mailbox: MailboxId) -> Result<()> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM mailboxes WHERE id = ?")
            .bind(mailbox.0)
            .fetch_optional(&mut **tx)
            .await
            .ctx("cannot read mailboxes")?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!(
                "mailbox {mailbox} is not linked (was it unlinked meanwhile?)"
            ))),
        }
    }

    async fn require_shadow(tx: &mut Tx, mailbox: MailboxId) -> Result<()> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT mailbox_id FROM shadows WHERE mailbox_id = ?")
                .bind(mailbox.0)
                .fetch_optional(&mut **tx)
                .await
                .ctx("cannot read the resync state")?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!(
                "no full resync is in progress for mailbox {mailbox} (begin_shadow first)"
            ))),
        }
    }

    async fn write_changes(
        tx: &mut Tx,
        set: Set,
        mailbox: MailboxId,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<()> {
        let remove = format!(
            "DELETE FROM {} WHERE mailbox_id = ? AND exchange_id = ?",
            set.instances()
        );
        for id in &changes.removals {
            sqlx::query(sql(remove.clone()))
                .bind(mailbox.0)
                .bind(id)
                .execute(&mut **tx)
                .await
                .ctx("cannot remove an instance")?;
        }
        let remove_master = format!(
            "DELETE FROM {} WHERE mailbox_id = ? AND exchange_id = ?",
            set.masters()
        );
        for id in &changes.master_removals {
            sqlx::query(sql(remove_master.clone()))
                .bind(mailbox.0)
                .bind(id)
                .execute(&mut **tx)
                .await
                .ctx("cannot remove a series master")?;
        }
        let upsert = upsert_instance_sql(set);
        for i in &changes.upserts {
            let what = format!("cannot store instance {}", i.exchange_id);
            let (ad_start, ad_end) = match i.when.all_day {
                Some((s, e)) => (Some(s.to_string()), Some(e.to_string())),
                None => (None, None),
            };
            let organizer = i.organizer.as_ref().map(to_json).transpose()?;
            sqlx::query(sql(upsert.clone()))
                .bind(mailbox.0)
                .bind(&i.exchange_id)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(i.ical_uid.as_deref())
                .bind(type_str(i.kind))
                .bind(i.series_master_id.as_deref())
                .bind(us(i.when.start))
                .bind(us(i.when.end))
                .bind(ad_start)
                .bind(ad_end)
                .bind(&i.when.time_zone)
                .bind(i.show_as.as_str())
                .bind(sensitivity_str(i.sensitivity))
                .bind(i.subject.as_deref())
                .bind(i.location.as_deref())
                .bind(i.body_preview.as_deref())
                .bind(organizer)
                .bind(to_json(&i.attendees)?)
                .bind(i.web_link.as_deref())
                .bind(i.change_key.as_deref())
                .bind(i.last_modified.map(|t| t.to_string()))
                .bind(origin_str(i.origin))
                .bind(us(now))
                .execute(&mut **tx)
                .await
                .ctx(&what)?;
        }
        let upsert_master = upsert_master_sql(set);
        for m in &changes.masters {
            let what = format!("cannot store series master {}", m.exchange_id);
            let organizer = m.organizer.as_ref().map(to_json).transpose()?;
            let recurrence = m.recurrence.as_ref().map(to_json).transpose()?;
            sqlx::query(sql(upsert_master.clone()))
                .bind(mailbox.0)
                .bind(&m.exchange_id)
                .bind(m.ical_uid.as_deref())
                .bind(m.subject.as_deref())
                .bind(m.location.as_deref())
                .bind(organizer)
                .bind(recurrence)
                .bind(m.start.map(us))
                .bind(m.end.map(us))
                .bind(m.time_zone.as_deref())
                .bind(m.show_as.map(|s| s.as_str()))
                .bind(m.sensitivity.map(sensitivity_str))
                .bind(m.web_link.as_deref())
                .bind(m.change_key.as_deref())
                .bind(m.last_modified.map(|t| t.to_string()))
                .bind(us(now))
                .execute(&mut **tx)
                .await
                .ctx(&what)?;
        }
        if let Some(c) = &changes.cursor {
            match set {
                Set::Live => Self::write_cursor(tx, mailbox, c, now).await?,
                Set::Shadow => {
                    sqlx::query("UPDATE shadows SET delta_link = ? WHERE mailbox_id = ?")
                        .bind(&c.delta_link)
                        .bind(mailbox.0)
                        .execute(&mut **tx)
                        .await
                        .ctx("cannot record the resync's progress")?;
                }
            }
        }
        Ok(())
    }

    async fn write_cursor(
        tx: &mut Tx,
        mailbox: MailboxId,
        c: &Cursor,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO delta_cursors (mailbox_id, delta_link, window_start, window_end, \
             rebased_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (mailbox_id) DO UPDATE SET delta_link = excluded.delta_link, \
             window_start = excluded.window_start, window_end = excluded.window_end, \
             rebased_at = excluded.rebased_at, updated_at = excluded.updated_at",
        )
        .bind(mailbox.0)
        .bind(&c.delta_link)
        .bind(us(c.window_start))
        .bind(us(c.window_end))
        .bind(us(c.rebased_at))
        .bind(us(now))
        .execute(&mut **tx)
        .await
        .ctx("cannot store the delta cursor")?;
        Ok(())
    }

    async fn clear_shadow(tx: &mut Tx, mailbox: MailboxId) -> Result<bool> {
        for q in [
            "DELETE FROM shadow_instances WHERE mailbox_id = ?",
            "DELETE FROM shadow_series_masters WHERE mailbox_id = ?",
        ] {
            sqlx::query(q)
                .bind(mailbox.0)
                .execute(&mut **tx)
                .await
                .ctx("cannot discard the shadow set")?;
        }
        let done = sqlx::query("DELETE FROM shadows WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .execute(&mut **tx)
            .await
            .ctx("cannot discard the shadow set")?;
        Ok(done.rows_affected() > 0)
    }
}

fn instance_from_row(row: &SqliteRow) -> Result<StoredInstance> {
    let c = "cannot read an instance";
    let all_day = match (
        date(row.try_get("all_day_start").ctx(c)?)?,
        date(row.try_get("all_day_end").ctx(c)?)?,
    ) {
        (Some(s), Some(e)) => Some((s, e)),
        _ => None,
    };
    let organizer: Option<String> = row.try_get("organizer").ctx(c)?;
    let attendees: String = row.try_get("attendees").ctx(c)?;
    let id: String = row.try_get("id").ctx(c)?;
    let kind: String = row.try_get("type").ctx(c)?;
    let show_as: String = row.try_get("show_as").ctx(c)?;
    let sensitivity: String = row.try_get("sensitivity").ctx(c)?;
    let origin: String = row.try_get("origin").ctx(c)?;
    let instance = Instance {
        exchange_id: row.try_get("exchange_id").ctx(c)?,
        ical_uid: row.try_get("ical_uid").ctx(c)?,
        mailbox: row.try_get("mailbox_address").ctx(c)?,
        kind: parse_type(&kind)?,
        series_master_id: row.try_get("series_master_id").ctx(c)?,
        when: When {
            start: ts(row.try_get("start_us").ctx(c)?)?,
            end: ts(row.try_get("end_us").ctx(c)?)?,
            time_zone: row.try_get("time_zone").ctx(c)?,
            all_day,
        },
        show_as: parse_show_as(&show_as)?,
        sensitivity: parse_sensitivity(&sensitivity)?,
        subject: row.try_get("subject").ctx(c)?,
        location: row.try_get("location").ctx(c)?,
        body_preview: row.try_get("body_preview").ctx(c)?,
        organizer: organizer
            .map(|o| from_json::<Person>("organizer", &o))
            .transpose()?,
        attendees: from_json("attendees", &attendees)?,
        web_link: row.try_get("web_link").ctx(c)?,
        change_key: row.try_get("change_key").ctx(c)?,
        last_modified: text_ts(row.try_get("last_modified").ctx(c)?)?,
        origin: parse_origin(&origin)?,
    };
    Ok(StoredInstance {
        id: uuid::Uuid::parse_str(&id).map_err(|_| Error::corrupt("instance id", &id))?,
        mailbox_id: MailboxId(row.try_get("mailbox_id").ctx(c)?),
        instance,
        stored_at: ts(row.try_get("stored_at").ctx(c)?)?,
    })
}

fn master_from_row(row: &SqliteRow) -> Result<SeriesMaster> {
    let c = "cannot read a series master";
    let organizer: Option<String> = row.try_get("organizer").ctx(c)?;
    let recurrence: Option<String> = row.try_get("recurrence").ctx(c)?;
    let show_as: Option<String> = row.try_get("show_as").ctx(c)?;
    let sensitivity: Option<String> = row.try_get("sensitivity").ctx(c)?;
    Ok(SeriesMaster {
        exchange_id: row.try_get("exchange_id").ctx(c)?,
        ical_uid: row.try_get("ical_uid").ctx(c)?,
        subject: row.try_get("subject").ctx(c)?,
        location: row.try_get("location").ctx(c)?,
        organizer: organizer
            .map(|o| from_json::<Person>("organizer", &o))
            .transpose()?,
        recurrence: recurrence
            .map(|r| from_json::<serde_json::Value>("recurrence", &r))
            .transpose()?,
        start: opt_ts(row.try_get("start_us").ctx(c)?)?,
        end: opt_ts(row.try_get("end_us").ctx(c)?)?,
        time_zone: row.try_get("time_zone").ctx(c)?,
        show_as: show_as.as_deref().map(parse_show_as).transpose()?,
        sensitivity: sensitivity.as_deref().map(parse_sensitivity).transpose()?,
        web_link: row.try_get("web_link").ctx(c)?,
        change_key: row.try_get("change_key").ctx(c)?,
        last_modified: text_ts(row.try_get("last_modified").ctx(c)?)?,
    })
}

fn mailbox_from_row(row: &SqliteRow) -> Result<Mailbox> {
    let c = "cannot read a mailbox";
    let kind: String = row.try_get("kind").ctx(c)?;
    let privacy: String = row.try_get("privacy").ctx(c)?;
    Ok(Mailbox {
        id: MailboxId(row.try_get("id").ctx(c)?),
        address: row.try_get("address").ctx(c)?,
        connection_id: ConnectionId(row.try_get("connection_id").ctx(c)?),
        connection: row.try_get("connection").ctx(c)?,
        kind: MailboxKind::from_str(&kind).map_err(|_| Error::corrupt("mailbox kind", &kind))?,
        external_id: row.try_get("external_id").ctx(c)?,
        privacy: PrivacyPolicy::from_str(&privacy)
            .map_err(|_| Error::corrupt("privacy policy", &privacy))?,
        linked_at: ts(row.try_get("linked_at").ctx(c)?)?,
    })
}

fn status_from_row(row: &SqliteRow) -> Result<MailboxStatus> {
    let c = "cannot read a sync status";
    let class: Option<String> = row.try_get("last_error_class").ctx(c)?;
    let message: Option<String> = row.try_get("last_error_message").ctx(c)?;
    let at = opt_ts(row.try_get("last_error_at").ctx(c)?)?;
    let last_error = match (class, message, at) {
        (Some(class), Some(message), Some(at)) => Some(StatusError { class, message, at }),
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

#[async_trait]
impl Store for SqliteStore {
    async fn add_connection(&self, c: &NewConnection) -> Result<ConnectionId> {
        if c.name.trim().is_empty() {
            return Err(Error::invalid("a connection needs a name"));
        }
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO connections (name, tenant, client_id, authority, graph_url, cloud, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.tenant)
        .bind(&c.client_id)
        .bind(&c.authority)
        .bind(&c.graph_url)
        .bind(&c.cloud)
        .bind(us(now))
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

    async fn list_connections(&self) -> Result<Vec<Connection>> {
        self.load_connections(None).await
    }

    async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        Ok(self.load_connections(Some(name)).await?.into_iter().next())
    }

    async fn remove_connection(&self, name: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read connections")?;
        let Some(id) = id else { return Ok(false) };
        let linked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mailboxes WHERE connection_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .ctx("cannot read mailboxes")?;
        if linked > 0 {
            return Err(Error::conflict(format!(
                "connection '{name}' still has {linked} linked mailbox(es): unlink them first (`calgate mailbox unlink ADDRESS`)"
            )));
        }
        sqlx::query("DELETE FROM connections WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the connection")?;
        tx.commit().await.ctx("cannot remove the connection")?;
        Ok(true)
    }

    async fn add_credential(&self, connection: &str, c: &NewCredential) -> Result<CredentialId> {
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, connection).await?;
        let id = self
            .insert_credential(&mut tx, conn, c, Timestamp::now())
            .await?;
        tx.commit().await.ctx("cannot add the credential")?;
        Ok(id)
    }

    async fn remove_credential(&self, connection: &str, id: CredentialId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, connection).await?;
        let done = sqlx::query("DELETE FROM credentials WHERE id = ? AND connection_id = ?")
            .bind(id.0)
            .bind(conn.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot remove the credential")?;
        tx.commit().await.ctx("cannot remove the credential")?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_credential_expiry(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE credentials SET expires_at = ? WHERE id = ?")
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

    async fn link_mailbox(&self, m: &NewMailbox) -> Result<MailboxId> {
        let address = m.address.trim();
        if address.is_empty() {
            return Err(Error::invalid("a mailbox needs an address"));
        }
        let key = address_key(address);
        let mut tx = self.write_tx().await?;
        let conn = Self::connection_id(&mut tx, &m.connection).await?;
        let existing = sqlx::query(
            "SELECT m.id, m.connection_id, c.name FROM mailboxes m \
             JOIN connections c ON c.id = m.connection_id WHERE m.address_key = ?",
        )
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await
        .ctx("cannot read mailboxes")?;
        let id = match existing {
            Some(row) => {
                let id: i64 = row.try_get("id").ctx("mailbox")?;
                let other: i64 = row.try_get("connection_id").ctx("mailbox")?;
                if other != conn.0 {
                    let name: String = row.try_get("name").ctx("mailbox")?;
                    return Err(Error::conflict(format!(
                        "mailbox {address} is already linked to connection '{name}': unlink it first"
                    )));
                }
                sqlx::query(
                    "UPDATE mailboxes SET kind = ?, external_id = ?, privacy = ? WHERE id = ?",
                )
                .bind(kind_str(m.kind))
                .bind(m.external_id.as_deref())
                .bind(privacy_str(m.privacy))
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx("cannot update the mailbox")?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO mailboxes (address, address_key, connection_id, kind, external_id, \
                 privacy, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(address)
            .bind(&key)
            .bind(conn.0)
            .bind(kind_str(m.kind))
            .bind(m.external_id.as_deref())
            .bind(privacy_str(m.privacy))
            .bind(us(Timestamp::now()))
            .fetch_one(&mut *tx)
            .await
            .ctx("cannot link the mailbox")?,
        };
        tx.commit().await.ctx("cannot link the mailbox")?;
        Ok(MailboxId(id))
    }

    async fn unlink_mailbox(&self, address: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM mailboxes WHERE address_key = ?")
            .bind(address_key(address))
            .execute(&mut *tx)
            .await
            .ctx("cannot unlink the mailbox")?;
        tx.commit().await.ctx("cannot unlink the mailbox")?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_mailboxes(&self) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query(sql(format!("{SELECT_MAILBOX} ORDER BY m.address_key")))
            .fetch_all(&self.pool)
            .await
            .ctx("cannot read mailboxes")?;
        rows.iter().map(mailbox_from_row).collect()
    }

    async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>> {
        let row = sqlx::query(sql(format!("{SELECT_MAILBOX} WHERE m.address_key = ?")))
            .bind(address_key(address))
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read mailboxes")?;
        row.as_ref().map(mailbox_from_row).transpose()
    }

    async fn apply_changes(&self, mailbox: MailboxId, changes: &ChangeSet) -> Result<()> {
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, mailbox).await?;
        Self::write_changes(&mut tx, Set::Live, mailbox, changes, Timestamp::now()).await?;
        tx.commit().await.ctx("cannot apply the changes")
    }

    async fn begin_shadow(&self, mailbox: MailboxId, window: Window) -> Result<()> {
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, mailbox).await?;
        Self::clear_shadow(&mut tx, mailbox).await?;
        sqlx::query(
            "INSERT INTO shadows (mailbox_id, window_start, window_end, delta_link, started_at) \
             VALUES (?, ?, ?, NULL, ?)",
        )
        .bind(mailbox.0)
        .bind(us(window.start))
        .bind(us(window.end))
        .bind(us(Timestamp::now()))
        .execute(&mut *tx)
        .await
        .ctx("cannot start the full resync")?;
        tx.commit().await.ctx("cannot start the full resync")
    }

    async fn apply_shadow(&self, mailbox: MailboxId, changes: &ChangeSet) -> Result<()> {
        let mut tx = self.write_tx().await?;
        Self::require_shadow(&mut tx, mailbox).await?;
        Self::write_changes(&mut tx, Set::Shadow, mailbox, changes, Timestamp::now()).await?;
        tx.commit().await.ctx("cannot apply the resync's changes")
    }

    async fn commit_shadow(&self, mailbox: MailboxId, cursor: &Cursor) -> Result<()> {
        let what = "cannot swap in the full resync";
        let mut tx = self.write_tx().await?;
        Self::require_shadow(&mut tx, mailbox).await?;
        // Keep calgate's ids for instances that survive the resync.
        sqlx::query(
            "UPDATE shadow_instances SET id = (SELECT l.id FROM instances l \
               WHERE l.mailbox_id = shadow_instances.mailbox_id \
               AND l.exchange_id = shadow_instances.exchange_id) \
             WHERE mailbox_id = ? AND EXISTS (SELECT 1 FROM instances l \
               WHERE l.mailbox_id = shadow_instances.mailbox_id \
               AND l.exchange_id = shadow_instances.exchange_id)",
        )
        .bind(mailbox.0)
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        let statements = [
            "DELETE FROM instances WHERE mailbox_id = ?".to_owned(),
            format!(
                "INSERT INTO instances ({INSTANCE_COLUMNS}) SELECT {INSTANCE_COLUMNS} \
                 FROM shadow_instances WHERE mailbox_id = ?"
            ),
            "DELETE FROM series_masters WHERE mailbox_id = ?".to_owned(),
            format!(
                "INSERT INTO series_masters ({MASTER_COLUMNS}) SELECT {MASTER_COLUMNS} \
                 FROM shadow_series_masters WHERE mailbox_id = ?"
            ),
        ];
        for s in statements {
            sqlx::query(sql(s))
                .bind(mailbox.0)
                .execute(&mut *tx)
                .await
                .ctx(what)?;
        }
        Self::clear_shadow(&mut tx, mailbox).await?;
        Self::write_cursor(&mut tx, mailbox, cursor, Timestamp::now()).await?;
        tx.commit().await.ctx(what)
    }

    async fn abort_shadow(&self, mailbox: MailboxId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let had = Self::clear_shadow(&mut tx, mailbox).await?;
        tx.commit().await.ctx("cannot discard the full resync")?;
        Ok(had)
    }

    async fn shadow(&self, mailbox: MailboxId) -> Result<Option<ShadowState>> {
        let c = "cannot read the resync state";
        let row = sqlx::query(
            "SELECT s.*, (SELECT COUNT(*) FROM shadow_instances i WHERE i.mailbox_id = s.mailbox_id) \
             AS n FROM shadows s WHERE s.mailbox_id = ?",
        )
        .bind(mailbox.0)
        .fetch_optional(&self.pool)
        .await
        .ctx(c)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ShadowState {
            window: Window {
                start: ts(row.try_get("window_start").ctx(c)?)?,
                end: ts(row.try_get("window_end").ctx(c)?)?,
            },
            progress_link: row.try_get("delta_link").ctx(c)?,
            started_at: ts(row.try_get("started_at").ctx(c)?)?,
            instances: count(row.try_get("n").ctx(c)?),
        }))
    }

    async fn instances(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>> {
        let rows = sqlx::query(sql(format!(
            "{SELECT_INSTANCE} WHERE i.mailbox_id = ? AND i.start_us < ? \
             AND (i.end_us > ? OR i.start_us = ?) ORDER BY i.start_us, i.exchange_id"
        )))
        .bind(mailbox.0)
        .bind(us(to))
        .bind(us(from))
        .bind(us(from))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read instances")?;
        rows.iter().map(instance_from_row).collect()
    }

    async fn instance(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>> {
        let row = sqlx::query(sql(format!(
            "{SELECT_INSTANCE} WHERE i.mailbox_id = ? AND i.exchange_id = ?"
        )))
        .bind(mailbox.0)
        .bind(exchange_id)
        .fetch_optional(&self.pool)
        .await
        .ctx("cannot read an instance")?;
        row.as_ref().map(instance_from_row).transpose()
    }

    async fn count_instances(&self, mailbox: MailboxId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .fetch_one(&self.pool)
            .await
            .ctx("cannot count instances")?;
        Ok(count(n))
    }

    async fn series_masters(&self, mailbox: MailboxId) -> Result<Vec<SeriesMaster>> {
        let rows =
            sqlx::query("SELECT * FROM series_masters WHERE mailbox_id = ? ORDER BY exchange_id")
                .bind(mailbox.0)
                .fetch_all(&self.pool)
                .await
                .ctx("cannot read series masters")?;
        rows.iter().map(master_from_row).collect()
    }

    async fn cursor(&self, mailbox: MailboxId) -> Result<Option<Cursor>> {
        let c = "cannot read the delta cursor";
        let row = sqlx::query("SELECT * FROM delta_cursors WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .fetch_optional(&self.pool)
            .await
            .ctx(c)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Cursor {
            delta_link: row.try_get("delta_link").ctx(c)?,
            window_start: ts(row.try_get("window_start").ctx(c)?)?,
            window_end: ts(row.try_get("window_end").ctx(c)?)?,
            rebased_at: ts(row.try_get("rebased_at").ctx(c)?)?,
        }))
    }

    async fn clear_cursor(&self, mailbox: MailboxId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM delta_cursors WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot clear the delta cursor")?;
        tx.commit().await.ctx("cannot clear the delta cursor")?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_status(&self, mailbox: MailboxId, s: &SyncStatusUpdate) -> Result<()> {
        let what = "cannot record the sync status";
        let mut tx = self.write_tx().await?;
        Self::require_mailbox(&mut tx, mailbox).await?;
        let (success, class, message) = match &s.outcome {
            SyncOutcome::Success => (true, None, None),
            SyncOutcome::Failure { class, message } => {
                (false, Some(class.as_str()), Some(message.as_str()))
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

    async fn statuses(&self) -> Result<Vec<MailboxStatus>> {
        let rows = sqlx::query(sql(format!("{SELECT_STATUS} ORDER BY m.address_key")))
            .fetch_all(&self.pool)
            .await
            .ctx("cannot read sync statuses")?;
        rows.iter().map(status_from_row).collect()
    }

    async fn status(&self, mailbox: MailboxId) -> Result<Option<MailboxStatus>> {
        let row = sqlx::query(sql(format!("{SELECT_STATUS} WHERE m.id = ?")))
            .bind(mailbox.0)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read the sync status")?;
        row.as_ref().map(status_from_row).transpose()
    }

    // ---- connected accounts: sqlite/accounts.rs ---------------------------------------------

    async fn save_account(&self, a: &crate::NewAccount) -> Result<crate::AccountId> {
        self.save_account_impl(a).await
    }

    async fn list_accounts(&self) -> Result<Vec<crate::Account>> {
        self.list_accounts_impl().await
    }

    async fn account(&self, id: crate::AccountId) -> Result<Option<crate::Account>> {
        self.account_impl(id).await
    }

    async fn store_refresh_token(
        &self,
        id: crate::AccountId,
        refresh_token: &SecretString,
        refreshed_at: Timestamp,
    ) -> Result<bool> {
        self.store_refresh_token_impl(id, refresh_token, refreshed_at)
            .await
    }

    async fn set_account_state(
        &self,
        id: crate::AccountId,
        state: crate::AccountState,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        self.set_account_state_impl(id, state, message, at).await
    }

    async fn remove_accounts(&self, address: &str, connection: Option<&str>) -> Result<u64> {
        self.remove_accounts_impl(address, connection).await
    }
}
