-- calgate store, SQLite schema v14: how each instance row of the change log was written —
-- 'round' (a sync round applied Exchange's changes to the live set) or 'resync' (a full resync's
-- shadow set swapped in). NULL for rows written before this version and for notices. The
-- console's event history and `calgate events --explain` name it.
ALTER TABLE change_log ADD COLUMN via TEXT;
