//! Microsoft Graph as a [`CalendarBackend`]: `calendarView/delta` rounds through the graph
//! client, its errors classified into [`FailureKind`]s.

use async_trait::async_trait;
use calgate_core::{CredentialId, FailureKind};
use calgate_graph::{DeltaItem, DeltaNext, DeltaRequest, ErrorKind, GraphClient};

use super::{BackendError, CalendarBackend, Change, ChangesPage, ChangesRequest, PageNext};

/// A Graph client (app-only, or a connected account's delegated one) as a backend.
#[derive(Debug, Clone)]
pub struct GraphBackend {
    client: GraphClient,
}

impl GraphBackend {
    pub fn new(client: GraphClient) -> GraphBackend {
        GraphBackend { client }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }
}

/// The failure class of a graph error.
pub fn failure_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::Retryable => FailureKind::Retryable,
        ErrorKind::Authentication => FailureKind::Authentication,
        ErrorKind::Permission => FailureKind::Permission,
        ErrorKind::NotFound => FailureKind::NotFound,
        ErrorKind::InvalidData => FailureKind::InvalidData,
        ErrorKind::ResyncRequired => FailureKind::ResyncRequired,
        ErrorKind::Fatal => FailureKind::Fatal,
    }
}

impl From<calgate_graph::Error> for BackendError {
    fn from(e: calgate_graph::Error) -> BackendError {
        BackendError {
            kind: failure_kind(e.kind),
            reconnect_needed: calgate_graph::is_reconnect_needed(&e),
            code: e.code.clone(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl CalendarBackend for GraphBackend {
    async fn sign_in(&self) -> Result<(), BackendError> {
        self.client.access_token().await?;
        Ok(())
    }

    async fn changes(
        &self,
        mailbox: &str,
        request: ChangesRequest,
    ) -> Result<ChangesPage, BackendError> {
        let request = match request {
            ChangesRequest::Start { window, page_size } => DeltaRequest::Start {
                start: window.start,
                end: window.end,
                page_size,
            },
            ChangesRequest::Continue { link, page_size } => {
                DeltaRequest::FollowPaged { link, page_size }
            }
        };
        let page = self.client.delta(mailbox, request).await?;
        Ok(ChangesPage {
            changes: page
                .items
                .into_iter()
                .map(|i| match i {
                    DeltaItem::Upsert(instance) => Change::Upsert(instance),
                    DeltaItem::Removed { exchange_id, .. } => Change::Removed { exchange_id },
                })
                .collect(),
            next: match page.next {
                DeltaNext::NextLink(l) => PageNext::More(l),
                DeltaNext::DeltaLink(l) => PageNext::Done(l),
            },
        })
    }

    fn expired_credentials(&self) -> Vec<CredentialId> {
        self.client.expired_credentials()
    }
}
