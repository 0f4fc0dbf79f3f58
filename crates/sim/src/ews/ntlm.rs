//! NTLM (MS-NLMP) for the EWS face: per-TCP-connection handshake state.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::state::lock;

/// What a connection has done so far.
#[derive(Debug, Clone)]
pub enum ConnAuth {
    /// A challenge was sent; the server challenge waits for the AUTHENTICATE message.
    Challenged { server_challenge: [u8; 8] },
    /// The connection is authenticated as this account (tenant, account index by logon).
    Authenticated { tenant: Uuid, logon: String },
}

/// NTLM state per connection id (see [`crate::server::ConnId`]).
#[derive(Debug, Default)]
pub struct Connections {
    map: Mutex<HashMap<u64, ConnAuth>>,
}

/// Most connections remembered (the oldest entries are dropped past it).
const MAX_CONNECTIONS: usize = 10_000;

impl Connections {
    pub fn get(&self, conn: u64) -> Option<ConnAuth> {
        lock(&self.map).get(&conn).cloned()
    }

    pub fn set(&self, conn: u64, a: ConnAuth) {
        let mut m = lock(&self.map);
        if m.len() >= MAX_CONNECTIONS
            && !m.contains_key(&conn)
            && let Some(k) = m.keys().min().copied()
        {
            m.remove(&k);
        }
        m.insert(conn, a);
    }

    pub fn forget(&self, conn: u64) {
        lock(&self.map).remove(&conn);
    }

    pub fn clear(&self) {
        lock(&self.map).clear();
    }
}

/// Handles an `Authorization: NTLM|Negotiate <token>` header on connection `conn`.
pub fn handle_header(
    st: &crate::state::SimState,
    _conn: u64,
    _scheme: &str,
    _token: &str,
    host: &str,
) -> Result<super::Caller, axum::response::Response> {
    Err(super::unauthorized(st, host, None))
}
