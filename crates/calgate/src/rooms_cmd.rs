//! `calgate rooms discover`: room lists and their rooms from Graph's places API, and `--link`
//! to link them all as rooms (the room-list model, without impersonation).

use calgate_admin::rooms::{self, RoomsError, RoomsOptions};
use calgate_graph::Shared;
use clap::{Args, Subcommand};

use crate::StoreLocation;
use crate::output::{print_json, print_out};

#[derive(Debug, Subcommand)]
pub(crate) enum RoomsCommand {
    /// List the tenant's room lists and their rooms (Place.Read.All); `--link` links them all
    /// as kind room. Safe to repeat.
    Discover(DiscoverArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// The connection whose app reads the places API.
    #[arg(long, value_name = "NAME")]
    pub connection: String,
    /// Only this room list (its email address).
    #[arg(long, value_name = "EMAIL")]
    pub room_list: Option<String>,
    /// Link every room found to the connection as kind room (privacy full).
    #[arg(long)]
    pub link: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(cmd: RoomsCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let RoomsCommand::Discover(args) = cmd;
    let store = loc.open().await?;
    let shared = Shared::new().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let opts = RoomsOptions {
        room_list: args.room_list.clone(),
        link: args.link,
    };
    let report = rooms::discover(store.as_ref(), &shared, &args.connection, &opts)
        .await
        // One line: the message already holds its cause (no source chain appended).
        .map_err(|e: RoomsError| anyhow::anyhow!("{e}"))?;
    if args.json {
        print_json(&report.to_json())
    } else {
        print_out(&report.render_text());
        Ok(())
    }
}
