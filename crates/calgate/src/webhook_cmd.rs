//! `calgate webhook add URL [--events TYPE,...] | list | remove ID | rotate-secret ID |
//! deliveries ID [--state S] | replay ID [--delivery N]...`: the host application's webhook
//! endpoints. `calgate serve` delivers them.

use calgate_api::webhooks::{ROTATION_OVERLAP, check_event_types, check_url};
use calgate_store::DeliveryState;
use clap::Subcommand;
use jiff::tz::TimeZone;

use crate::output::{Table, local_minute, print_out};
use crate::{StoreLocation, Usage};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Add an endpoint (https, or http to this machine); prints its id and its signing secret,
    /// once. It receives what changes from now on.
    Add {
        url: String,
        /// The event types to send (comma-separated); default: all. Types: event.created,
        /// event.updated, event.deleted, mailbox.sync_failed, mailbox.recovered,
        /// booking.synced, booking.failed, booking.drifted, booking.deleted_in_exchange,
        /// credential.expiring, credential.expired.
        #[arg(long, value_name = "TYPES", value_delimiter = ',')]
        events: Option<Vec<String>>,
    },
    /// List the endpoints (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and its queued deliveries.
    Remove { id: String },
    /// Give an endpoint a new signing secret (printed once); the old one keeps signing beside
    /// it for 24 hours, so the receiver can switch without losing a delivery.
    RotateSecret { id: String },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        id: String,
        /// Only `pending`, `delivered` or `dead` ones.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Send dead-lettered deliveries again (all of the endpoint's, or those named).
    Replay {
        id: String,
        /// A delivery id (from `calgate webhook deliveries ID --state dead`); repeatable.
        #[arg(long = "delivery", value_name = "N")]
        deliveries: Vec<i64>,
    },
}

fn unknown(id: &str) -> anyhow::Error {
    anyhow::anyhow!("there is no webhook {id} (see `calgate webhook list`)")
}

pub(crate) async fn run(cmd: WebhookCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        WebhookCommand::Add { url, events } => {
            let url = check_url(&url).map_err(Usage)?;
            let events = events.map(|e| {
                e.into_iter()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            });
            check_event_types(events.as_deref()).map_err(Usage)?;
            let store = loc.open().await?;
            let (hook, secret) = store.add_webhook(url.as_str(), events.as_deref()).await?;
            // The one time the secret is shown.
            print_out(&format!(
                "webhook {} added for {}\nsigning secret (shown once, keep it in the receiver): {secret}\n`calgate serve` delivers it.\n",
                hook.id, hook.url
            ));
            Ok(())
        }
        WebhookCommand::List { json } => {
            let store = loc.open().await?;
            let hooks = store.webhooks().await?;
            if json {
                let v: Vec<serde_json::Value> = hooks
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "id": h.id, "url": h.url, "events": h.events,
                            "created_at": h.created_at.to_string(),
                        })
                    })
                    .collect();
                print_out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
                return Ok(());
            }
            if hooks.is_empty() {
                print_out("no webhooks: add one with `calgate webhook add https://…`\n");
                return Ok(());
            }
            let tz = TimeZone::system();
            let mut t = Table::new(&["ID", "URL", "EVENTS", "CREATED", "PENDING", "DEAD"]);
            for h in hooks {
                let count = |s| {
                    let store = store.clone();
                    let id = h.id.clone();
                    async move {
                        store
                            .deliveries(&id, Some(s), 10_000)
                            .await
                            .map(|d| d.len())
                    }
                };
                let pending = count(DeliveryState::Pending).await?;
                let dead = count(DeliveryState::Dead).await?;
                t.row(vec![
                    h.id.clone(),
                    h.url.clone(),
                    h.events.as_ref().map_or("all".to_owned(), |e| e.join(",")),
                    local_minute(h.created_at, &tz),
                    pending.to_string(),
                    dead.to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
        WebhookCommand::Remove { id } => {
            let store = loc.open().await?;
            if !store.remove_webhook(id.trim()).await? {
                return Err(unknown(id.trim()));
            }
            print_out(&format!("webhook {} removed\n", id.trim()));
            Ok(())
        }
        WebhookCommand::RotateSecret { id } => {
            let store = loc.open().await?;
            let secret = store
                .rotate_webhook_secret(id.trim(), ROTATION_OVERLAP)
                .await?
                .ok_or_else(|| unknown(id.trim()))?;
            print_out(&format!(
                "new signing secret (shown once): {secret}\nthe previous secret also signs deliveries for 24 hours\n"
            ));
            Ok(())
        }
        WebhookCommand::Deliveries {
            id,
            state,
            limit,
            json,
        } => {
            let state = state
                .as_deref()
                .map(str::parse::<DeliveryState>)
                .transpose()
                .map_err(Usage)?;
            let store = loc.open().await?;
            if store.webhook(id.trim()).await?.is_none() {
                return Err(unknown(id.trim()));
            }
            let list = store.deliveries(id.trim(), state, limit.max(1)).await?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(calgate_api::webhooks::DeliveryDto::new)
                    .collect();
                print_out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
                return Ok(());
            }
            if list.is_empty() {
                print_out("no deliveries\n");
                return Ok(());
            }
            let tz = TimeZone::system();
            let mut t = Table::new(&[
                "ID", "TYPE", "MAILBOX", "STATE", "ATTEMPTS", "LAST", "QUEUED",
            ]);
            for d in list {
                t.row(vec![
                    d.id.to_string(),
                    d.event_type,
                    d.partition,
                    d.state.as_str().to_owned(),
                    d.attempts.to_string(),
                    match (d.last_status, d.last_error) {
                        (_, Some(e)) => e,
                        (Some(s), None) => s.to_string(),
                        (None, None) => String::new(),
                    },
                    local_minute(d.created_at, &tz),
                ]);
            }
            t.print();
            Ok(())
        }
        WebhookCommand::Replay { id, deliveries } => {
            let store = loc.open().await?;
            if store.webhook(id.trim()).await?.is_none() {
                return Err(unknown(id.trim()));
            }
            let ids = (!deliveries.is_empty()).then_some(deliveries.as_slice());
            let n = store.replay_deliveries(id.trim(), ids).await?;
            print_out(&format!(
                "{n} dead-lettered deliveries queued again (`calgate serve` sends them)\n"
            ));
            Ok(())
        }
    }
}
