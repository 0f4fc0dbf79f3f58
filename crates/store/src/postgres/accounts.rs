//! PostgreSQL: accounts (to be ported from ../sqlite/accounts.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use jiff::Timestamp;
use crate::accounts::*;
use crate::error::{Error, Result};
use crate::types::{ConnectionId, SecretString};
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn save_account_impl(&self, a: &NewAccount) -> Result<AccountId> {
        todo!("postgres: save_account_impl")
    }

    pub(super) async fn list_accounts_impl(&self) -> Result<Vec<Account>> {
        todo!("postgres: list_accounts_impl")
    }

    pub(super) async fn account_impl(&self, id: AccountId) -> Result<Option<Account>> {
        todo!("postgres: account_impl")
    }

    pub(super) async fn store_refresh_token_impl(
        &self,
        id: AccountId,
        refresh_token: &SecretString,
        refreshed_at: Timestamp,
    ) -> Result<bool> {
        todo!("postgres: store_refresh_token_impl")
    }

    pub(super) async fn set_account_state_impl(
        &self,
        id: AccountId,
        state: AccountState,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        todo!("postgres: set_account_state_impl")
    }

    pub(super) async fn remove_accounts_impl(
        &self,
        address: &str,
        connection: Option<&str>,
    ) -> Result<u64> {
        todo!("postgres: remove_accounts_impl")
    }
}
