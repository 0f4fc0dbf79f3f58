//! `calgate doctor`: credential expiry (warnings 30, 14 and 7 days ahead, ✗ at expiry),
//! connections without a valid credential, mailboxes whose sync fails or is stale, and
//! connected accounts that must sign in again.

use calgate_admin::accounts;
use calgate_admin::lifecycle;
use calgate_admin::{Check, Checklist};
use clap::Args;
use jiff::Timestamp;

use crate::StoreLocation;
use crate::output::finish_checklist;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The checks as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(args: DoctorArgs, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    let mut list = lifecycle::doctor(store.as_ref(), Timestamp::now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let accounts = accounts::list_accounts(store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    add_account_checks(&mut list, &accounts);
    finish_checklist(&list, args.json, "doctor")
}

/// ✗ per connected account that needs to sign in again; ! for one whose refresh token is
/// about to lapse unused.
fn add_account_checks(list: &mut Checklist, accounts: &[accounts::AccountSummary]) {
    let healthy = accounts
        .iter()
        .filter(|a| a.state == "ok" && a.message.is_none())
        .count();
    for a in accounts {
        let id = format!("account:{}:{}", a.connection, a.upn);
        let why = a
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let fix = a.fix.clone().unwrap_or_else(|| {
            format!(
                "`calgate account connect --connection {} --login-hint {}`",
                a.connection, a.upn
            )
        });
        if a.state != "ok" {
            list.push(Check::fail(
                &id,
                format!(
                    "connected account {} (connection '{}') must sign in again{why}",
                    a.upn, a.connection
                ),
                fix,
            ));
        } else if a.message.is_some() {
            list.push(Check::warn(
                &id,
                format!(
                    "connected account {} (connection '{}'){why}",
                    a.upn, a.connection
                ),
                fix,
            ));
        }
    }
    if healthy > 0 {
        list.push(Check::pass(
            "accounts",
            format!(
                "{healthy} of {} connected account{} can sign in (refresh token in use)",
                accounts.len(),
                if accounts.len() == 1 { "" } else { "s" }
            ),
        ));
    }
}
