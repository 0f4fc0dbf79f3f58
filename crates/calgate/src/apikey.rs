//! `calgate apikey create NAME --scope read[,write][,admin] | list | revoke NAME`.

use calgate_core::ApiScope;
use clap::Subcommand;
use jiff::tz::TimeZone;

use crate::output::{Table, local_minute, print_out};
use crate::{StoreLocation, Usage};

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Make a key for the host application; it is printed once, on stdout, alone.
    Create {
        /// A name for the key (who uses it).
        name: String,
        /// What it may do: read (events, availability, feeds), write (bookings, sync now),
        /// admin (connections, mailboxes, keys; includes read and write). Comma-separated.
        #[arg(long, value_name = "SCOPES", value_delimiter = ',', required = true)]
        scope: Vec<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key: it stops working at once.
    Revoke { name: String },
}

pub(crate) async fn run(cmd: ApiKeyCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Create { name, scope } => {
            let mut scopes = Vec::new();
            for s in &scope {
                let s = s.trim().to_ascii_lowercase();
                scopes.push(s.parse::<ApiScope>().map_err(Usage)?);
            }
            scopes.sort();
            scopes.dedup();
            let name = name.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(Usage(
                    "the key's name must be 1 to 64 characters, no control characters".into(),
                )
                .into());
            }
            let store = loc.open().await?;
            let (key, new) = calgate_api::auth::generate_key(name, &scopes);
            store
                .add_api_key(&new)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            // The one time the key is shown.
            print_out(&format!("{}\n", key.expose()));
            Ok(())
        }
        ApiKeyCommand::List => {
            let store = loc.open().await?;
            let keys = store.list_api_keys().await?;
            if keys.is_empty() {
                print_out("no API keys: make one with `calgate apikey create NAME --scope read`\n");
                return Ok(());
            }
            let tz = TimeZone::system();
            let mut t = Table::new(&["NAME", "KEY ID", "SCOPES", "CREATED", "STATE"]);
            for k in keys {
                t.row(vec![
                    k.name,
                    k.key_id,
                    k.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    local_minute(k.created_at, &tz),
                    match k.revoked_at {
                        Some(at) => format!("revoked {}", local_minute(at, &tz)),
                        None => "active".to_owned(),
                    },
                ]);
            }
            t.print();
            Ok(())
        }
        ApiKeyCommand::Revoke { name } => {
            let store = loc.open().await?;
            if !store.revoke_api_key(name.trim()).await? {
                anyhow::bail!(
                    "there is no active API key named '{}' (see `calgate apikey list`)",
                    name.trim()
                );
            }
            print_out(&format!("API key '{}' revoked\n", name.trim()));
            Ok(())
        }
    }
}
