//! The pure page applier: one delta page's items + the window → the [`ChangeSet`] to write.

use std::collections::HashMap;

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
pub fn plan_page(items: Vec<Change>, window: Window) -> ChangeSet {
    // Which items have the last word on their id (a later item of the same id supersedes).
    let mut last_word = vec![true; items.len()];
    {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (at, item) in items.iter().enumerate() {
            let id = match item {
                Change::Upsert(i) => i.exchange_id.as_str(),
                Change::Removed { exchange_id } => exchange_id.as_str(),
            };
            if let Some(prev) = last.insert(id, at)
                && let Some(slot) = last_word.get_mut(prev)
            {
                *slot = false;
            }
        }
    }
    let mut changes = ChangeSet::default();
    for (item, keep) in items.into_iter().zip(last_word) {
        if !keep {
            continue;
        }
        match item {
            Change::Upsert(i) if i.overlaps(window.start, window.end) => changes.upserts.push(*i),
            Change::Upsert(i) => changes.removals.push(i.exchange_id),
            Change::Removed { exchange_id } => changes.removals.push(exchange_id),
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
