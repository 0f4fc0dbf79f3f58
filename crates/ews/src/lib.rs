//! calgate's EWS client for on-premises Exchange Server (2016, 2019, Subscription Edition):
//! typed SOAP requests written through an escaping XML writer (never a template with user data
//! pasted in), answers read into a small element tree and then into typed items, errors
//! classified into calgate's failure kinds in an administrator's words.
//!
//! - [`transport`]: HTTPS (with an optional private CA), Basic, NTLMv2 ([`ntlm`]) or bearer
//!   authentication; plain http only to loopback.
//! - [`soap`]: envelopes (`RequestServerVersion`, `ExchangeImpersonation`) and answers (SOAP
//!   faults, `ResponseClass`/`ResponseCode`, `BackOffMilliseconds`, `ServerVersionInfo`).
//! - [`client`]: the operations — GetFolder, FindItem with a CalendarView or a restriction on
//!   an extended property, SyncFolderItems, GetItem, CreateItem/UpdateItem/DeleteItem,
//!   GetUserAvailability, GetRoomLists, GetRooms — with throttling honoured.
//! - [`types`]: calendar items and their conversion to [`calgate_core::Instance`].
//!
//! API boundary: only this crate knows EWS's XML; the sync engine sees it through its
//! calendar-backend adapter.
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod ntlm;
pub mod soap;
pub mod transport;
pub mod types;
pub mod xml;

pub use client::{EwsClient, EwsConfig, MAX_PAGE, MAX_SYNC_CHANGES, RequestHook};
pub use error::Error;
pub use soap::ServerVersion;
pub use transport::Auth;
pub use types::{CalendarItem, ItemId, ItemWrite, RecurrenceXml, SyncChange, SyncPage};
