//! PostgreSQL: connections (to be ported from ../sqlite/connections.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use jiff::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn load_connections(&self, name: Option<&str>) -> Result<Vec<Connection>> {
        todo!("postgres: load_connections")
    }

    pub(super) async fn set_ews_password_impl(
        &self,
        connection: &str,
        password: &SecretString,
    ) -> Result<bool> {
        todo!("postgres: set_ews_password_impl")
    }

    pub(super) async fn connection_id(tx: &mut Tx, name: &str) -> Result<ConnectionId> {
        todo!("postgres: connection_id")
    }

    pub(super) async fn add_connection_impl(&self, c: &NewConnection) -> Result<ConnectionId> {
        todo!("postgres: add_connection_impl")
    }

    pub(super) async fn remove_connection_impl(&self, name: &str) -> Result<bool> {
        todo!("postgres: remove_connection_impl")
    }

    pub(super) async fn add_credential_impl(
        &self,
        connection: &str,
        c: &NewCredential,
    ) -> Result<CredentialId> {
        todo!("postgres: add_credential_impl")
    }

    pub(super) async fn remove_credential_impl(
        &self,
        connection: &str,
        id: CredentialId,
    ) -> Result<bool> {
        todo!("postgres: remove_credential_impl")
    }

    pub(super) async fn set_credential_expiry_impl(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        todo!("postgres: set_credential_expiry_impl")
    }

    pub(super) async fn set_connection_ca_impl(
        &self,
        connection: &str,
        ca_cert_pem: Option<&str>,
    ) -> Result<bool> {
        todo!("postgres: set_connection_ca_impl")
    }
}
