//! `calgate feed create ADDRESS [--privacy busy-only|full] | list | revoke ID`: ICS feeds of a
//! mailbox, served by `calgate serve` at `/v1/feeds/{token}.ics`.

use calgate_core::PrivacyPolicy;
use calgate_store::NewFeed;
use clap::Subcommand;
use jiff::tz::TimeZone;

use crate::StoreLocation;
use crate::config::Config;
use crate::mailbox::PrivacyArg;
use crate::output::{Table, local_minute, print_out};

#[derive(Debug, Subcommand)]
pub(crate) enum FeedCommand {
    /// Make an ICS feed of a mailbox and print its URL (the token in it is the secret).
    Create {
        address: String,
        /// What the feed shows (never more than the mailbox's own policy). Default busy-only.
        #[arg(long, value_enum, default_value = "busy-only")]
        privacy: PrivacyArg,
    },
    /// List feeds (not their URLs: a feed's token is shown once).
    List,
    /// Revoke a feed: its URL stops working.
    Revoke { id: i64 },
}

pub(crate) async fn run(
    cmd: FeedCommand,
    loc: StoreLocation,
    config: &Config,
) -> anyhow::Result<()> {
    let store = loc.open().await?;
    match cmd {
        FeedCommand::Create { address, privacy } => {
            let (token, hash) = calgate_api::auth::generate_feed_token();
            let privacy: PrivacyPolicy = privacy.into();
            store
                .add_feed(&NewFeed {
                    address: address.trim().to_owned(),
                    token_hint: token.chars().take(6).collect(),
                    token_hash: hash,
                    privacy,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            print_out(&format!("{}/v1/feeds/{token}.ics\n", config.public_url()));
            Ok(())
        }
        FeedCommand::List => {
            let feeds = store.list_feeds().await?;
            if feeds.is_empty() {
                print_out("no feeds: make one with `calgate feed create ADDRESS`\n");
                return Ok(());
            }
            let tz = TimeZone::system();
            let mut t = Table::new(&["ID", "MAILBOX", "PRIVACY", "TOKEN", "CREATED", "STATE"]);
            for f in feeds {
                t.row(vec![
                    f.id.to_string(),
                    f.address,
                    f.privacy.as_str().to_owned(),
                    format!("{}…", f.token_hint),
                    local_minute(f.created_at, &tz),
                    match f.revoked_at {
                        Some(at) => format!("revoked {}", local_minute(at, &tz)),
                        None => "active".to_owned(),
                    },
                ]);
            }
            t.print();
            Ok(())
        }
        FeedCommand::Revoke { id } => {
            if !store.revoke_feed(id).await? {
                anyhow::bail!("there is no active feed #{id} (see `calgate feed list`)");
            }
            print_out(&format!("feed #{id} revoked\n"));
            Ok(())
        }
    }
}
