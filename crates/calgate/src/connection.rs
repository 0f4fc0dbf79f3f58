//! `calgate connection add|list|remove|test` and `calgate connection secret add|remove`.
//!
//! Secrets come from an environment variable or a file, never from the command line, and are
//! never printed: the store seals them at rest. Reading and checking a credential, the
//! rotation rules and Test settings live in `calgate-admin`; this module parses and prints.

use std::path::PathBuf;

use anyhow::Context as _;
use calgate_admin::connections::{self, ConnectionError, ConnectionSpec};
use calgate_admin::diagnose::{self, Purpose, TestOptions};
use calgate_admin::lifecycle::{
    self, CredentialInput, CredentialOptions, CredentialSummary, LifecycleError, RemoveOptions,
};
use calgate_graph::Shared;
use calgate_store::{Connection, NewCredential, Store};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::output::{DateArg, Table, finish_checklist, print_json, print_out};
use crate::{Reported, StoreLocation, Usage, error_line};

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionCommand {
    /// Add a connection: an app registration (tenant, client id, credential), or an Exchange
    /// Server's EWS URL and service account (--ews-url, --username, --password-env|-file).
    Add(Box<AddArgs>),
    /// List connections and their credentials: id, expiry, the one in use (never the secrets).
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a connection's settings.
    Set {
        /// The connection's name.
        name: String,
        /// When someone edits an event calgate pushed, in Outlook: put the booking back
        /// (`app-wins`, the default) or mark the calendar `drifted` and leave it (`report`).
        #[arg(long, value_name = "POLICY", value_parser = ["app-wins", "report"])]
        outlook_edits: String,
    },
    /// Remove a connection and its credentials (unlink its mailboxes first).
    Remove {
        /// The connection's name.
        name: String,
    },
    /// Test settings: sign in with every credential, check permissions, the directory and
    /// one mailbox; one ✓/✗ line per step. Exit 0 only when every step passes.
    Test(TestArgs),
    /// Secrets and certificates of a connection (rotation without downtime).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Replace the password of an EWS connection's service account (after changing it in
    /// Active Directory); check it with `calgate connection test NAME`.
    SetPassword(SetPasswordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SetPasswordArgs {
    /// The connection's name.
    pub name: String,
    #[command(flatten)]
    pub password: PasswordSource,
}

/// `--password-env VAR | --password-file FILE`, one of them required: where a new password
/// is read from (never the command line). `connection set-password` and `admin set-password`.
#[derive(Debug, Args)]
pub(crate) struct PasswordSource {
    /// Read the new password from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "password_file",
        required_unless_present = "password_file"
    )]
    pub password_env: Option<String>,
    /// Read the new password from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl PasswordSource {
    /// The password; `whose` words the errors ("the service account's password").
    pub(crate) fn read(&self, whose: &str) -> anyhow::Result<calgate_store::SecretString> {
        read_password(
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            whose,
        )
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Add a client secret or certificate to a connection; it is used from the next token
    /// request on, the others stay as fallbacks until removed.
    Add(Box<SecretAddArgs>),
    /// Remove one credential (by the id `connection list` shows, the Entra Secret ID or the
    /// certificate thumbprint).
    Remove {
        /// The connection's name.
        name: String,
        /// `#3` / `3`, the Secret ID, or the thumbprint (a unique prefix of 6+ characters).
        id: String,
        /// Remove it even though every credential left has expired.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CloudArg {
    /// Microsoft's global cloud (login.microsoftonline.com, graph.microsoft.com).
    Global,
    /// US Government GCC High.
    Usgov,
    /// US Government DoD.
    UsgovDod,
    /// Microsoft 365 operated by 21Vianet.
    China,
}

impl CloudArg {
    fn name(self) -> &'static str {
        match self {
            CloudArg::Global => "global",
            CloudArg::Usgov => "usgov",
            CloudArg::UsgovDod => "usgov-dod",
            CloudArg::China => "china",
        }
    }
}

/// Where a credential comes from: exactly one of the three.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct CredentialSource {
    /// Read the client secret's value from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Read the client secret's value from this file.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file holding the certificate and its private key (recommended over secrets).
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
}

impl CredentialSource {
    fn input(&self) -> anyhow::Result<CredentialInput> {
        Ok(
            match (
                &self.client_secret_env,
                &self.client_secret_file,
                &self.certificate,
            ) {
                (Some(var), _, _) => CredentialInput::SecretEnv(var.clone()),
                (_, Some(file), _) => CredentialInput::SecretFile(file.clone()),
                (_, _, Some(file)) => CredentialInput::Certificate(file.clone()),
                _ => {
                    return Err(Usage(
                        "give one of --client-secret-env VAR, --client-secret-file FILE or --certificate FILE".to_owned(),
                    )
                    .into());
                }
            },
        )
    }
}

/// Reads the credential the flags name (see `calgate_admin::lifecycle::read_credential`).
fn read_credential(
    source: &CredentialSource,
    expires: Option<DateArg>,
    secret_id: Option<&str>,
    now: Timestamp,
) -> anyhow::Result<NewCredential> {
    let expires = match expires {
        Some(d) => Some(d.resolve(&TimeZone::UTC, false).map_err(Usage)?),
        None => None,
    };
    let options = CredentialOptions {
        expires,
        secret_id: secret_id.map(str::to_owned),
    };
    Ok(lifecycle::read_credential(&source.input()?, &options, now)?)
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// A name for the connection (letters, digits, '.', '_', '-').
    pub name: String,
    /// Directory (tenant) ID, or a verified domain of the tenant.
    #[arg(long, value_name = "ID", required_unless_present = "ews_url")]
    pub tenant: Option<String>,
    /// Application (client) ID of the app registration.
    #[arg(long, value_name = "ID", required_unless_present = "ews_url")]
    pub client_id: Option<String>,
    #[command(flatten)]
    pub ews: EwsArgs,
    #[command(flatten)]
    pub credential: CredentialSource,
    /// Entra ID authority host (default: the cloud's, e.g. https://login.microsoftonline.com).
    #[arg(long, value_name = "URL")]
    pub authority: Option<String>,
    /// Microsoft Graph base URL (default: the cloud's, e.g. https://graph.microsoft.com/v1.0).
    #[arg(long, value_name = "URL")]
    pub graph_url: Option<String>,
    /// The Microsoft cloud the tenant lives in.
    #[arg(long, value_enum)]
    pub cloud: Option<CloudArg>,
    /// When the client secret expires (YYYY-MM-DD or RFC 3339), as Entra ID shows it.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub secret_expires: Option<DateArg>,
    /// The secret's Secret ID (a GUID) in Entra ID, to name it as the portal does.
    #[arg(long, value_name = "ID")]
    pub secret_id: Option<String>,
    /// An extra root CA to trust (PEM), e.g. the one `calgate sim --tls` writes.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// Exchange Server (on premises) through EWS with a service account, instead of an Entra ID
/// app registration.
#[derive(Debug, Args)]
pub(crate) struct EwsArgs {
    /// The EWS URL of Exchange Server, e.g. https://mail.example.org/EWS/Exchange.asmx.
    #[arg(long, value_name = "URL", conflicts_with_all = ["tenant", "client_id", "authority", "graph_url", "cloud", "secret_expires", "secret_id", "client_secret_env", "client_secret_file", "certificate"], requires = "username")]
    pub ews_url: Option<String>,
    /// The service account: DOMAIN\user or user@domain.
    #[arg(long, value_name = "USER", requires = "ews_url")]
    pub username: Option<String>,
    /// Read the service account's password from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        requires = "ews_url",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// Read the service account's password from this file (its first line).
    #[arg(long, value_name = "FILE", requires = "ews_url")]
    pub password_file: Option<PathBuf>,
    /// How the service account signs in (default ntlm, Exchange Server's default).
    #[arg(long, value_enum, requires = "ews_url")]
    pub auth: Option<EwsAuthArg>,
    /// Act as each mailbox with ApplicationImpersonation (otherwise: delegate access).
    #[arg(long, requires = "ews_url")]
    pub impersonation: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EwsAuthArg {
    Basic,
    Ntlm,
}

/// The password the EWS flags name: from the environment or a file, never the command line.
fn read_ews_password(args: &EwsArgs) -> anyhow::Result<calgate_store::SecretString> {
    read_password(
        args.password_env.as_deref(),
        args.password_file.as_deref(),
        "the service account's password",
    )
}

/// A password from an environment variable or a file's first line; `whose` words the errors.
fn read_password(
    env: Option<&str>,
    file: Option<&std::path::Path>,
    whose: &str,
) -> anyhow::Result<calgate_store::SecretString> {
    let raw = match (env, file) {
        (Some(var), _) => std::env::var(var).map_err(|_| {
            Usage(format!(
                "the environment variable {var} is not set (or not valid UTF-8): export {whose} in it"
            ))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the password file {} — check the path and its permissions", path.display())
        })?,
        (None, None) => {
            return Err(Usage(format!(
                "give {whose} with --password-env VAR or --password-file FILE"
            ))
            .into());
        }
    };
    let line = raw
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_owned();
    Ok(calgate_store::SecretString::new(line))
}

#[derive(Debug, Args)]
pub(crate) struct SecretAddArgs {
    /// The connection's name.
    pub name: String,
    #[command(flatten)]
    pub credential: CredentialSource,
    /// When the client secret expires (YYYY-MM-DD or RFC 3339), as Entra ID shows it (for a
    /// certificate: only when earlier than its notAfter).
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub secret_expires: Option<DateArg>,
    /// The secret's Secret ID (a GUID) in Entra ID, to name it as the portal does.
    #[arg(long, value_name = "ID")]
    pub secret_id: Option<String>,
    /// Do not ask Entra ID for a token with the new credential alone.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PurposeArg {
    /// Only read calendars (Calendars.Read is enough).
    Pull,
    /// Also write the host application's events (needs Calendars.ReadWrite).
    Push,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The connection's name.
    pub name: String,
    /// The mailbox to probe (default: the first linked to the connection).
    #[arg(long, value_name = "ADDRESS")]
    pub mailbox: Option<String>,
    /// What the connection is for.
    #[arg(
        long = "for",
        value_enum,
        value_name = "PURPOSE",
        default_value = "pull"
    )]
    pub purpose: PurposeArg,
    /// The checklist as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(cmd: ConnectionCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        ConnectionCommand::Add(args) => {
            // Check everything first: a bad invocation sets nothing up.
            let now = Timestamp::now();
            let spec = spec(&args, now)?;
            connections::prepare(&spec, now).map_err(connection_error)?;
            let store = loc.open_or_create().await?;
            let c = add(store.as_ref(), &spec).await?;
            if let Some(e) = &c.ews {
                print_out(&format!(
                    "connection '{}' added: Exchange Server at {}, {} as {} ({}), password sealed in the store\ncheck it with `calgate connection test {} --mailbox ADDRESS`\n",
                    c.name,
                    e.url,
                    e.auth,
                    e.username,
                    if e.impersonation {
                        "impersonation"
                    } else {
                        "delegate access"
                    },
                    c.name
                ));
                return Ok(());
            }
            let creds: Vec<String> = lifecycle::summarize(&c, now)
                .iter()
                .map(credential_words)
                .collect();
            print_out(&format!(
                "connection '{}' added: tenant {}, client id {}, {}\ncheck it with `calgate connection test {}`\n",
                c.name,
                c.tenant,
                c.client_id,
                creds.join(", "),
                c.name
            ));
            Ok(())
        }
        ConnectionCommand::List { json } => {
            let store = loc.open().await?;
            list(store.as_ref(), json).await
        }
        ConnectionCommand::Set {
            name,
            outlook_edits,
        } => {
            let store = loc.open().await?;
            let policy: calgate_core::booking::OutlookEdits = outlook_edits
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{e}"))?;
            if !store.set_outlook_edits(&name, policy).await? {
                anyhow::bail!("there is no connection '{name}' (see `calgate connection list`)");
            }
            print_out(&format!(
                "connection '{name}': Outlook edits of calgate's events: {policy}\n"
            ));
            Ok(())
        }
        ConnectionCommand::Remove { name } => {
            let store = loc.open().await?;
            remove(store.as_ref(), &name).await?;
            print_out(&format!("connection '{name}' removed\n"));
            Ok(())
        }
        ConnectionCommand::Test(args) => {
            let store = loc.open().await?;
            let opts = TestOptions {
                mailbox: args.mailbox.clone(),
                purpose: match args.purpose {
                    PurposeArg::Pull => Purpose::Pull,
                    PurposeArg::Push => Purpose::Push,
                },
                ..TestOptions::default()
            };
            let list = diagnose::test_connection(store.as_ref(), &args.name, &opts).await?;
            finish_checklist(
                &list,
                args.json,
                &format!("connection test of '{}'", args.name),
            )
        }
        ConnectionCommand::SetPassword(args) => {
            let password = args.password.read("the service account's password")?;
            if password.expose().is_empty() {
                return Err(Usage(
                    "the new password is empty: check --password-env / --password-file".to_owned(),
                )
                .into());
            }
            let store = loc.open().await?;
            if !store.set_ews_password(&args.name, &password).await? {
                anyhow::bail!(
                    "there is no connection '{}' (see `calgate connection list`)",
                    args.name
                );
            }
            print_out(&format!(
                "connection '{}': the service account's password is replaced (sealed in the store); check it with `calgate connection test {}`\n",
                args.name, args.name
            ));
            Ok(())
        }
        ConnectionCommand::Secret(SecretCommand::Add(args)) => secret_add(&args, &loc).await,
        ConnectionCommand::Secret(SecretCommand::Remove { name, id, force }) => {
            let store = loc.open().await?;
            let removed = lifecycle::remove_credential(
                store.as_ref(),
                &name,
                &id,
                RemoveOptions { force },
                Timestamp::now(),
            )
            .await
            .map_err(lifecycle_error)?;
            print_out(&format!("{}\n", removed.message));
            Ok(())
        }
    }
}

/// A lifecycle error as the one line to print.
fn lifecycle_error(e: LifecycleError) -> anyhow::Error {
    match e {
        LifecycleError::Graph(g) => anyhow::anyhow!("{}", g.message),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn secret_add(args: &SecretAddArgs, loc: &StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    let now = Timestamp::now();
    let cred = read_credential(
        &args.credential,
        args.secret_expires,
        args.secret_id.as_deref(),
        now,
    )?;
    let added = lifecycle::add_credential(store.as_ref(), &args.name, cred, now)
        .await
        .map_err(lifecycle_error)?;
    print_out(&format!("{}\n", added.message));
    if args.no_verify {
        return Ok(());
    }
    let shared = Shared::with_retry_policy(diagnose::diagnostic_retry_policy())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let list = lifecycle::verify_credential(
        store.as_ref(),
        &shared,
        &args.name,
        &added.summary.display_id,
        now,
    )
    .await
    .map_err(lifecycle_error)?;
    print_out(&list.render());
    if list.passed() {
        return Ok(());
    }
    error_line(&format!(
        "{}; it stays configured: fix it in Entra ID and check again with `calgate connection test {n}`, or remove it with `calgate connection secret remove {n} {}`",
        crate::output::checklist_failure(&list, "verification of the new credential"),
        added.summary.display_id,
        n = added.connection.name
    ));
    Err(Reported.into())
}

/// The connection the arguments describe: the secret read from its environment variable or
/// file (or the certificate), the CA bundle read from its file. Checked by
/// `calgate_admin::connections` when it is added.
fn spec(args: &AddArgs, now: Timestamp) -> anyhow::Result<ConnectionSpec> {
    connections::check_name(&args.name).map_err(connection_error)?;
    let ca_cert_pem = match &args.ca_cert {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the CA certificate {} — check the path",
                path.display()
            )
        })?),
        None => None,
    };
    if let Some(url) = &args.ews.ews_url {
        return Ok(ConnectionSpec {
            name: args.name.clone(),
            ca_cert_pem,
            ews: Some(calgate_admin::ews::EwsSpec {
                url: url.clone(),
                username: args.ews.username.clone().unwrap_or_default(),
                password: read_ews_password(&args.ews)?,
                auth: match args.ews.auth {
                    Some(EwsAuthArg::Basic) => calgate_store::EwsAuth::Basic,
                    Some(EwsAuthArg::Ntlm) | None => calgate_store::EwsAuth::Ntlm,
                },
                impersonation: args.ews.impersonation,
            }),
            ..ConnectionSpec::default()
        });
    }
    let credential = read_credential(
        &args.credential,
        args.secret_expires,
        args.secret_id.as_deref(),
        now,
    )?;
    Ok(ConnectionSpec {
        name: args.name.clone(),
        tenant: args.tenant.clone().unwrap_or_default(),
        client_id: args.client_id.clone().unwrap_or_default(),
        cloud: args.cloud.map(|c| c.name().to_owned()),
        authority: args.authority.clone(),
        graph_url: args.graph_url.clone(),
        credentials: vec![credential],
        ca_cert_pem,
        ews: None,
    })
}

/// A connection error as the CLI reports it (bad usage: exit 2).
pub(crate) fn connection_error(e: ConnectionError) -> anyhow::Error {
    match e {
        ConnectionError::Usage(m) => Usage(m).into(),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Adds the connection. Shared with `calgate demo` and `bench`.
pub(crate) async fn add(store: &dyn Store, spec: &ConnectionSpec) -> anyhow::Result<Connection> {
    connections::add(store, spec, Timestamp::now())
        .await
        .map_err(connection_error)
}

/// Removes a connection. Shared with `calgate demo`.
pub(crate) async fn remove(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    connections::remove(store, name)
        .await
        .map_err(connection_error)
}

/// One connection as `connection list --json` shows it.
#[derive(Debug, Serialize)]
struct ConnectionJson {
    name: String,
    tenant: String,
    client_id: String,
    authority: String,
    graph_url: String,
    cloud: String,
    mailboxes: usize,
    /// Newest first; `preferred` marks the one in use.
    credentials: Vec<CredentialSummary>,
    /// `graph` or `ews`.
    kind: &'static str,
    /// EWS connections: the server and the service account (never the password).
    #[serde(skip_serializing_if = "Option::is_none")]
    ews: Option<EwsJson>,
}

#[derive(Debug, Serialize)]
struct EwsJson {
    url: String,
    username: String,
    auth: &'static str,
    impersonation: bool,
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let conns = store.list_connections().await?;
    let mailboxes = store.list_mailboxes().await?;
    let now = Timestamp::now();
    if json {
        let out: Vec<ConnectionJson> = conns
            .iter()
            .map(|c| ConnectionJson {
                name: c.name.clone(),
                tenant: c.tenant.clone(),
                client_id: c.client_id.clone(),
                authority: c.authority.clone(),
                graph_url: c.graph_url.clone(),
                cloud: c.cloud.clone(),
                mailboxes: mailboxes.iter().filter(|m| m.connection_id == c.id).count(),
                credentials: lifecycle::summarize(c, now),
                kind: c.kind().as_str(),
                ews: c.ews.as_ref().map(|e| EwsJson {
                    url: e.url.clone(),
                    username: e.username.clone(),
                    auth: e.auth.as_str(),
                    impersonation: e.impersonation,
                }),
            })
            .collect();
        return print_json(&out);
    }
    if conns.is_empty() {
        print_out(
            "no connections: add one with `calgate connection add NAME --tenant ID --client-id ID --client-secret-env VAR`\n",
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        "NAME",
        "TENANT",
        "CLIENT ID",
        "AUTHORITY",
        "MAILBOXES",
        "CREDENTIAL",
        "EXPIRES",
        "IN USE",
    ]);
    for c in &conns {
        let linked = mailboxes.iter().filter(|m| m.connection_id == c.id).count();
        if let Some(e) = &c.ews {
            t.row(vec![
                c.name.clone(),
                "(Exchange Server)".to_owned(),
                e.username.clone(),
                e.url.clone(),
                linked.to_string(),
                format!("{} password", e.auth),
                String::new(),
                if e.impersonation {
                    "impersonation"
                } else {
                    "delegate"
                }
                .to_owned(),
            ]);
            continue;
        }
        let creds = lifecycle::summarize(c, now);
        let head = vec![
            c.name.clone(),
            c.tenant.clone(),
            c.client_id.clone(),
            c.authority.clone(),
            linked.to_string(),
        ];
        if creds.is_empty() {
            let mut row = head;
            row.extend(["no credential".to_owned(), String::new(), String::new()]);
            t.row(row);
            continue;
        }
        for (i, cred) in creds.iter().enumerate() {
            let mut row = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); head.len()]
            };
            row.push(cred.label.clone());
            row.push(match (cred.expires_at, &cred.expires) {
                (Some(at), Some(note)) => format!("{}, {note}", lifecycle::utc_date(at)),
                _ => String::new(),
            });
            row.push(if cred.preferred { "✓" } else { "" }.to_owned());
            t.row(row);
        }
    }
    t.print();
    Ok(())
}

/// `secret #1 'abc…' (expires 2027-01-31, in 45 days)`, `certificate #2 (thumbprint 1A2B…)
/// (EXPIRED 3 days ago, 2026-11-20)`, `secret #3 (ID 0f8f…) (expiry not recorded)`.
pub(crate) fn credential_words(c: &CredentialSummary) -> String {
    match (c.expires_at, &c.expires) {
        (Some(at), Some(note)) if note.starts_with("EXPIRED") => {
            format!("{} ({note}, {})", c.label, lifecycle::utc_date(at))
        }
        (Some(at), Some(note)) => {
            format!("{} (expires {}, {note})", c.label, lifecycle::utc_date(at))
        }
        _ => format!("{} (expiry not recorded)", c.label),
    }
}
