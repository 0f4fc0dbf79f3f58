//! `calgate admin set-password (--password-env VAR | --password-file FILE)`: the admin
//! console's password, stored as an argon2id hash (never the password).

use clap::{Args, Subcommand};

use crate::output::print_out;
use crate::{StoreLocation, Usage};

/// The shortest password accepted.
const MIN_LEN: usize = 12;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Set (or replace) the password of the admin console at /console of `calgate serve`.
    SetPassword(SetPasswordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SetPasswordArgs {
    #[command(flatten)]
    pub password: crate::connection::PasswordSource,
}

pub(crate) async fn run(cmd: AdminCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::SetPassword(args) => {
            let password = args.password.read("the console password")?;
            if password.expose().chars().count() < MIN_LEN {
                return Err(Usage(format!(
                    "the console password must have at least {MIN_LEN} characters"
                ))
                .into());
            }
            let phc = tokio::task::spawn_blocking(move || {
                calgate_api::console::hash_password(password.expose())
            })
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = loc.open_or_create().await?;
            store.set_console_password_hash(&phc).await?;
            print_out(
                "the admin console's password is set (stored as an argon2id hash): sign in at /console of `calgate serve`\n",
            );
            Ok(())
        }
    }
}
