//! `calgate account connect|list|disconnect`: delegated "Connect account" (authorization code
//! with PKCE, `offline_access`); the refresh token is stored sealed and refreshed by the sync
//! engine as needed.

use std::net::SocketAddr;
use std::time::Duration;

use calgate_admin::accounts::{self, ConnectOptions, LinkOptions};
use calgate_graph::Shared;
use clap::{Args, Subcommand};

use crate::StoreLocation;
use crate::mailbox::{KindArg, PrivacyArg};
use crate::output::{finish_checklist, print_json, print_out};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Connect a user's own calendar through a connection's app: prints a sign-in URL and
    /// waits for the browser to come back to a local callback.
    Connect(Box<ConnectArgs>),
    /// List connected accounts and their state (ok / reconnect needed).
    List {
        /// A JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Forget a connected account's tokens (its mailbox stays linked).
    Disconnect {
        /// The account's address (UPN).
        email: String,
        /// Only the account connected through this connection.
        #[arg(long, value_name = "NAME")]
        connection: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The connection whose app registration the user signs in to.
    #[arg(long, value_name = "NAME")]
    pub connection: String,
    /// Where the sign-in callback listens (loopback only; port 0: any free port).
    #[arg(long, value_name = "127.0.0.1:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Use the Entra ID v1 endpoints (legacy "Azure AD" registrations).
    #[arg(long)]
    pub v1: bool,
    /// Pre-fill the sign-in page with this account.
    #[arg(long, value_name = "UPN")]
    pub login_hint: Option<String>,
    /// How long to wait for the sign-in.
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Ask for Calendars.Read only (pull), instead of Calendars.ReadWrite.
    #[arg(long)]
    pub read_only: bool,
    /// Ask the user to consent again.
    #[arg(long)]
    pub consent: bool,
    /// Link the account's mailbox to the connection.
    #[arg(long)]
    pub link: bool,
    /// With --link: the mailbox's kind.
    #[arg(long, value_enum, requires = "link")]
    pub kind: Option<KindArg>,
    /// With --link: the host application's id for it.
    #[arg(long, value_name = "ID", requires = "link")]
    pub external_id: Option<String>,
    /// With --link: what the host application may see of its events.
    #[arg(long, value_enum, requires = "link")]
    pub privacy: Option<PrivacyArg>,
    /// The result as JSON (the sign-in instructions go to stderr).
    #[arg(long)]
    pub json: bool,
}

fn wait_words(secs: u64) -> String {
    match secs {
        60 => "1 minute".to_owned(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        1 => "1 second".to_owned(),
        s => format!("{s} seconds"),
    }
}

pub(crate) async fn run(cmd: AccountCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    match cmd {
        AccountCommand::Connect(args) => {
            let mut options = ConnectOptions {
                listen: args.listen,
                v1: args.v1,
                login_hint: args.login_hint.clone(),
                force_consent: args.consent,
                link: args.link.then(|| LinkOptions {
                    kind: args.kind.map(Into::into),
                    external_id: args.external_id.clone(),
                    privacy: args.privacy.map(Into::into),
                }),
                timeout: Duration::from_secs(args.timeout),
                ..ConnectOptions::default()
            };
            if args.read_only {
                options.permissions = vec!["Calendars.Read".to_owned()];
            }
            let shared = Shared::new().map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let json = args.json;
            let wait = wait_words(args.timeout);
            let connected = accounts::connect_account(
                store.clone(),
                &shared,
                &args.connection,
                &options,
                |url| {
                    let text = format!(
                        "Open this URL in a browser on this machine and sign in as the account to connect:\n  {url}\nWaiting for the sign-in ({wait})…\n"
                    );
                    if json {
                        eprint!("{text}");
                    } else {
                        print_out(&text);
                    }
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                print_json(&connected)?;
                return finish_checklist_quiet(&connected.checklist);
            }
            finish_checklist(&connected.checklist, false, "connecting the account")
        }
        AccountCommand::List { json } => {
            let list = accounts::list_accounts(store.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                print_json(&list)
            } else {
                print_out(&accounts::render_accounts(&list));
                Ok(())
            }
        }
        AccountCommand::Disconnect { email, connection } => {
            let report =
                accounts::disconnect_account(store.as_ref(), &email, connection.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = format!(
                "disconnected {email}: its tokens are forgotten ({} account{})\n",
                report.removed,
                if report.removed == 1 { "" } else { "s" }
            );
            for m in &report.mailboxes_still_linked {
                out.push_str(&format!(
                    "mailbox {m} stays linked and now syncs with the connection's application access; unlink it with `calgate mailbox unlink {m}` if that is not wanted\n"
                ));
            }
            print_out(&out);
            Ok(())
        }
    }
}

/// The exit status of a checklist already printed (as part of a JSON document).
fn finish_checklist_quiet(list: &calgate_admin::Checklist) -> anyhow::Result<()> {
    if list.passed() {
        return Ok(());
    }
    crate::error_line(&crate::output::checklist_failure(
        list,
        "connecting the account",
    ));
    Err(crate::Reported.into())
}
