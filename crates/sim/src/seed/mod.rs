//! Seeds: `demo` (a realistic organisation, "Contoso") and `empty`; `--scale N` adds N extra
//! mailboxes with a realistic event mix; `--rng` makes everything deterministic: the same seed
//! gives the same tenant id, app ids, user ids, event ids and contents (dates are relative to
//! the wall clock at start-up).
//!
//! What the demo tenant contains is documented in `docs/sim/seed.md`.
//!
//! Seeding happens before [`SimState`] exists, so "now" here is the real clock at start-up.
//!
//! - `mod.rs` — [`build`]: apps, then (demo) directory and calendars, then `--scale`;
//!   the `--credentials-out` document;
//! - `demo_data.rs` — the demo tenant as tables: people, rooms, room lists, equipment, groups,
//!   apps, and the calendars' series and single events as rows;
//! - `demo.rs` — the generators that turn those tables into the model;
//! - `events.rs` — building blocks of seeded events, and copying them into calendars;
//! - `generator.rs` — [`Gen`], the seeded source of ids and random choices;
//! - `scale.rs` — the `--scale` mailboxes.

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};

use crate::model::{Directory, MailboxKind, RbacAssignment, Tenant, User, WorkingHours};
use crate::state::{PublishedApp, SimState};
use crate::{Seed, SimError, SimOptions};

mod demo;
mod demo_data;
mod events;
mod generator;
mod scale;

use demo_data::{APPS, APPS_BEFORE_DIRECTORY, AppDef, WEEKDAYS};
pub use generator::Gen;
use generator::publish;

/// The demo tenant's initial (`*.onmicrosoft.com`) domain.
pub const DEMO_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The demo tenant's vanity domain: every mailbox address uses it.
pub const DEMO_MAIL_DOMAIN: &str = "contoso.example";
/// Display name of the demo tenant.
pub const DEMO_TENANT_NAME: &str = "Contoso";

/// Days before "now" that seeded events start.
pub const WINDOW_PAST_DAYS: i64 = 30;
/// Days after "now" that seeded events end.
pub const WINDOW_FUTURE_DAYS: i64 = 120;

/// Builds the tenant described by `opts` and the app credentials to publish (the first one is
/// the main, read-write app).
pub fn build(opts: &SimOptions) -> Result<(Directory, Vec<PublishedApp>), SimError> {
    build_at(opts, Timestamp::now())
}

/// [`build`] with an explicit "now" (tests).
pub fn build_at(
    opts: &SimOptions,
    now: Timestamp,
) -> Result<(Directory, Vec<PublishedApp>), SimError> {
    let mut g = Gen::new(opts.rng, now)?;
    let mut tenant = Tenant::new(g.uuid(), DEMO_DOMAIN, DEMO_TENANT_NAME);
    tenant.domains.push(DEMO_MAIL_DOMAIN.to_owned());
    let mut published = Vec::new();
    let (before, after) = APPS.split_at(APPS_BEFORE_DIRECTORY);
    let (main, before) = before.split_at(1);
    // The main app first: published order matters (tests and docs use the first app).
    add_apps(&mut g, &mut tenant, &mut published, main)?;
    match opts.seed {
        Seed::Empty => {}
        Seed::Demo => {
            add_apps(&mut g, &mut tenant, &mut published, before)?;
            demo::directory(&mut g, &mut tenant)?;
            add_apps(&mut g, &mut tenant, &mut published, after)?;
            demo::events(&mut g, &mut tenant)?;
        }
    }
    if opts.scale > 0 {
        scale::scale_mailboxes(&mut g, &mut tenant, opts.scale, opts.scale_events)?;
    }
    // Last, so that adding them changed no other seeded value.
    ews_accounts(&mut g, &mut tenant, opts.seed);
    Ok((
        Directory {
            tenants: vec![tenant],
        },
        published,
    ))
}

/// NetBIOS name of the demo's Active Directory domain (EWS logons are `CONTOSO\\user`).
pub const DEMO_NETBIOS: &str = "CONTOSO";

/// The EWS service accounts (documented in `docs/sim/ews.md`): `svc-calgate` may impersonate
/// everyone; (demo) `svc-rooms` only the members of the HQ room list (the Serraview/Cronofy
/// setup); `svc-delegate` impersonates nobody but has delegate access to the London rooms.
fn ews_accounts(g: &mut Gen, tenant: &mut Tenant, seed: Seed) {
    use crate::model::{DelegateRight, EwsAccount, ImpersonationRight};
    let london: Vec<String> = tenant
        .room_lists
        .iter()
        .filter(|l| l.email.eq_ignore_ascii_case(&addr("rooms-lon")))
        .flat_map(|l| l.rooms.iter())
        .filter_map(|id| tenant.user_by_id(*id))
        .map(|u| u.mail.to_ascii_lowercase())
        .collect();
    let mut defs = vec![(
        "svc-calgate",
        ImpersonationRight::All,
        DelegateRight::Mailboxes(Vec::new()),
    )];
    if seed == Seed::Demo {
        defs.push((
            "svc-rooms",
            ImpersonationRight::RoomList(addr("rooms-hq")),
            DelegateRight::Mailboxes(Vec::new()),
        ));
        defs.push((
            "svc-delegate",
            ImpersonationRight::None,
            DelegateRight::Mailboxes(london),
        ));
    }
    for (sam, impersonation, delegate) in defs {
        tenant.ews_accounts.push(EwsAccount {
            sam: sam.to_owned(),
            domain: DEMO_NETBIOS.to_owned(),
            upn: addr(sam),
            password: g.password(),
            impersonation,
            delegate,
        });
    }
}

/// Adds the apps of `defs` to the tenant and to the published credentials.
fn add_apps(
    g: &mut Gen,
    tenant: &mut Tenant,
    published: &mut Vec<PublishedApp>,
    defs: &[AppDef],
) -> Result<(), SimError> {
    for def in defs {
        let mut new = g.app(
            def.name,
            def.roles,
            SignedDuration::from_hours(24 * def.secret_days),
        );
        let mut p = publish(&new);
        if let Some((permission, group)) = def.rbac {
            let scope = tenant
                .group(&addr(group))
                .ok_or_else(|| SimError::Seed(format!("{group} group missing")))?;
            new.app.rbac.push(RbacAssignment {
                permission: permission.into(),
                scope_group: Some(scope.id),
            });
            p.roles
                .push(format!("{permission} (RBAC, scope {})", scope.display_name));
        }
        published.push(p);
        tenant.apps.push(new.app);
    }
    Ok(())
}

/// A mailbox address in the demo's mail domain.
fn addr(local: &str) -> String {
    format!("{local}@{DEMO_MAIL_DOMAIN}")
}

/// A new mailbox with an empty default calendar, working weekdays from `hours.0` to `hours.1`.
fn mailbox(
    g: &mut Gen,
    local: &str,
    display_name: &str,
    kind: MailboxKind,
    zone: &str,
    hours: (Time, Time),
) -> User {
    let mail = addr(local);
    User {
        id: g.uuid(),
        upn: mail.clone(),
        mail,
        display_name: display_name.to_owned(),
        given_name: None,
        surname: None,
        job_title: None,
        department: None,
        office_location: None,
        kind,
        has_mailbox: true,
        account_enabled: true,
        time_zone: zone.to_owned(),
        working_hours: WorkingHours {
            days_of_week: WEEKDAYS.to_vec(),
            start_time: hours.0,
            end_time: hours.1,
            time_zone: zone.to_owned(),
        },
        room: None,
        calendars: vec![g.calendar().into()],
    }
}

/// The `--credentials-out` document (also served by `GET /_sim/credentials`):
/// `{"tenant_id","authority","graph_url","ews_url","ca_cert_pem"?,"apps":[…],"mailboxes":[…],
/// "ews_accounts":[{"username","password","impersonation"}]}`.
pub fn credentials_document(
    state: &SimState,
    base_url: &str,
    ca_pem: Option<&str>,
) -> serde_json::Value {
    let apps: Vec<serde_json::Value> = crate::state::lock(&state.published)
        .iter()
        .map(|a| {
            serde_json::json!({"name": a.name, "client_id": a.client_id,
                "client_secret": a.client_secret, "roles": a.roles})
        })
        .collect();
    let (tenant_id, mailboxes) = {
        let dir = state.dir();
        match dir.tenants.first() {
            Some(t) => (
                t.id.to_string(),
                t.users()
                    .filter(|u| u.has_mailbox)
                    .map(|u| {
                        serde_json::json!({"address": u.mail, "kind": u.kind,
                            "display_name": u.display_name})
                    })
                    .collect::<Vec<_>>(),
            ),
            None => (String::new(), Vec::new()),
        }
    };
    let ews_accounts: Vec<serde_json::Value> = {
        let dir = state.dir();
        dir.tenants
            .first()
            .map(|t| {
                t.ews_accounts
                    .iter()
                    .map(|a| {
                        serde_json::json!({"username": a.logon_name(), "password": a.password,
                            "impersonation": a.impersonation.as_text()})
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut doc = serde_json::json!({
        "tenant_id": tenant_id,
        "authority": format!("{base_url}/{tenant_id}"),
        "graph_url": format!("{base_url}/v1.0"),
        "ews_url": format!("{base_url}/EWS/Exchange.asmx"),
        "apps": apps,
        "mailboxes": mailboxes,
        "ews_accounts": ews_accounts,
    });
    if let Some(pem) = ca_pem {
        doc["ca_cert_pem"] = serde_json::Value::String(pem.to_owned());
    }
    doc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn demo_is_deterministic_and_complete() {
        let now = Timestamp::now();
        let opts = SimOptions {
            rng: 42,
            ..SimOptions::default()
        };
        let (a, pa) = build_at(&opts, now).unwrap();
        let (b, pb) = build_at(&opts, now).unwrap();
        let ta = &a.tenants[0];
        let tb = &b.tenants[0];
        assert_eq!(ta.id, tb.id);
        assert_eq!(pa[0].client_secret, pb[0].client_secret);
        let ids_a: Vec<_> = ta.users().map(|u| u.id).collect();
        let ids_b: Vec<_> = tb.users().map(|u| u.id).collect();
        assert_eq!(ids_a, ids_b);
        assert_eq!(ta.user_count(), 25 + 8 + 4);
        for u in ta.users() {
            let n = u.default_calendar().unwrap().events.len();
            if u.kind == MailboxKind::User {
                assert!((20..=70).contains(&n), "{} has {n} items", u.mail);
            }
        }
    }
}
