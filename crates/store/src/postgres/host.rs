//! PostgreSQL: host (to be ported from ../sqlite/host.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use jiff::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn add_api_key_impl(&self, key: &NewApiKey) -> Result<()> {
        todo!("postgres: add_api_key_impl")
    }

    pub(super) async fn api_key_impl(&self, key_id: &str) -> Result<Option<ApiKey>> {
        todo!("postgres: api_key_impl")
    }

    pub(super) async fn list_api_keys_impl(&self) -> Result<Vec<ApiKey>> {
        todo!("postgres: list_api_keys_impl")
    }

    pub(super) async fn revoke_api_key_impl(&self, name: &str) -> Result<bool> {
        todo!("postgres: revoke_api_key_impl")
    }

    pub(super) async fn add_feed_impl(&self, feed: &NewFeed) -> Result<i64> {
        todo!("postgres: add_feed_impl")
    }

    pub(super) async fn feed_by_token_hash_impl(&self, token_hash: &[u8]) -> Result<Option<Feed>> {
        todo!("postgres: feed_by_token_hash_impl")
    }

    pub(super) async fn list_feeds_impl(&self) -> Result<Vec<Feed>> {
        todo!("postgres: list_feeds_impl")
    }

    pub(super) async fn revoke_feed_impl(&self, id: i64) -> Result<bool> {
        todo!("postgres: revoke_feed_impl")
    }

    pub(super) async fn console_password_hash_impl(&self) -> Result<Option<String>> {
        todo!("postgres: console_password_hash_impl")
    }

    pub(super) async fn set_console_password_hash_impl(&self, phc: &str) -> Result<()> {
        todo!("postgres: set_console_password_hash_impl")
    }

    pub(super) async fn put_console_session_impl(&self, session: &ConsoleSession) -> Result<()> {
        todo!("postgres: put_console_session_impl")
    }

    pub(super) async fn console_session_impl(
        &self,
        token_sha256: &[u8],
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        todo!("postgres: console_session_impl")
    }

    pub(super) async fn remove_console_session_impl(&self, token_sha256: &[u8]) -> Result<()> {
        todo!("postgres: remove_console_session_impl")
    }

    pub(super) async fn close_impl(&self) {
        todo!("postgres: close_impl")
    }
}
