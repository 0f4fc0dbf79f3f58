//! Sync engines over a test store.

use std::sync::Arc;

use calgate_graph::Shared;
use calgate_store::Store;
use calgate_sync::{DeletionGuard, Engine, EngineOptions};

/// A sync engine over `store`: `concurrency` mailboxes at a time, delta pages of `page_size`,
/// `deletion_guard` as the bulk-delete guard, every other option default.
pub fn engine(
    store: &Arc<dyn Store>,
    shared: &Shared,
    concurrency: usize,
    page_size: u32,
    deletion_guard: DeletionGuard,
) -> Engine {
    Engine::new(
        store.clone(),
        shared.clone(),
        EngineOptions {
            concurrency,
            page_size,
            deletion_guard,
            ..EngineOptions::default()
        },
    )
}
