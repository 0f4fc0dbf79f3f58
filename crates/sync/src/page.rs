//! The pure page applier: one delta page's items + the window → the [`ChangeSet`] to write.

use std::collections::HashMap;

use calgate_core::Instance;
use calgate_store::{ChangeSet, Window};

use crate::backend::Change;

/// Turns one delta page into the changes to store. Pure; the cursor is left `None` (the
/// executor sets it on a round's last page).
///
/// - An instance overlapping the window → upsert.
/// - `@removed` → removal (deleted, cancelled, or moved out of the window: Graph flags
///   out-of-window changes that way).
/// - An instance now entirely outside the window → removal: it is positive evidence that
///   the instance is no longer in the window.
/// - An id that appears several times in the page: the last item wins (the store applies
///   removals before upserts, so the set must not hold both for one id).
///
/// Applying the result twice gives the same store (upserts replace by Exchange id, removals of
/// unknown ids are ignored): replayed pages are harmless.
pub fn plan_page(items: &[Change], window: Window) -> ChangeSet {
    enum Op<'a> {
        Upsert(&'a Instance),
        Remove(&'a str),
    }
    let mut ops: Vec<Option<Op<'_>>> = Vec::with_capacity(items.len());
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for item in items {
        let (id, op) = match item {
            Change::Upsert(i) if i.overlaps(window.start, window.end) => {
                (i.exchange_id.as_str(), Op::Upsert(i))
            }
            Change::Upsert(i) => (i.exchange_id.as_str(), Op::Remove(&i.exchange_id)),
            Change::Removed { exchange_id } => (exchange_id.as_str(), Op::Remove(exchange_id)),
        };
        if let Some(prev) = last.insert(id, ops.len())
            && let Some(slot) = ops.get_mut(prev)
        {
            *slot = None;
        }
        ops.push(Some(op));
    }
    let mut changes = ChangeSet::default();
    for op in ops.into_iter().flatten() {
        match op {
            Op::Upsert(i) => changes.upserts.push(i.clone()),
            Op::Remove(id) => changes.removals.push(id.to_owned()),
        }
    }
    changes
}

/// Folds a later page's changes into `into`, as applying both in order would: the last word on
/// an id wins (the store applies removals before upserts, so an id is in one list only).
pub fn merge_changes(into: &mut ChangeSet, later: ChangeSet) {
    let removed: std::collections::HashSet<&str> =
        later.removals.iter().map(String::as_str).collect();
    let upserted: std::collections::HashSet<&str> = later
        .upserts
        .iter()
        .map(|i| i.exchange_id.as_str())
        .collect();
    into.upserts.retain(|i| {
        !removed.contains(i.exchange_id.as_str()) && !upserted.contains(i.exchange_id.as_str())
    });
    into.removals
        .retain(|id| !upserted.contains(id.as_str()) && !removed.contains(id.as_str()));
    into.upserts.extend(later.upserts);
    into.removals.extend(later.removals);
    let removed_m: std::collections::HashSet<&str> =
        later.master_removals.iter().map(String::as_str).collect();
    let upserted_m: std::collections::HashSet<&str> = later
        .masters
        .iter()
        .map(|m| m.exchange_id.as_str())
        .collect();
    into.masters.retain(|m| {
        !removed_m.contains(m.exchange_id.as_str()) && !upserted_m.contains(m.exchange_id.as_str())
    });
    into.master_removals
        .retain(|id| !upserted_m.contains(id.as_str()) && !removed_m.contains(id.as_str()));
    into.masters.extend(later.masters);
    into.master_removals.extend(later.master_removals);
    if later.cursor.is_some() {
        into.cursor = later.cursor;
    }
}
