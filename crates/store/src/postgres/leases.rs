//! PostgreSQL: leases (to be ported from ../sqlite/leases.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use jiff::{SignedDuration, Timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn acquire_lease_impl(
        &self,
        mailbox: MailboxId,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<LeaseGrant> {
        todo!("postgres: acquire_lease_impl")
    }

    pub(super) async fn fence(tx: &mut Tx, lease: &Lease) -> Result<calgate_core::PrivacyPolicy> {
        todo!("postgres: fence")
    }

    pub(super) async fn renew_lease_impl(&self, lease: &Lease) -> Result<()> {
        todo!("postgres: renew_lease_impl")
    }

    pub(super) async fn release_lease_impl(&self, lease: &Lease) -> Result<bool> {
        todo!("postgres: release_lease_impl")
    }

    pub(super) async fn release_in(tx: &mut Tx, lease: &Lease) -> Result<bool> {
        todo!("postgres: release_in")
    }

    pub(super) async fn leases_impl(&self) -> Result<Vec<LeaseInfo>> {
        todo!("postgres: leases_impl")
    }
}
