-- Role leases: work that one process does for every process sharing the store (the webhook
-- dispatcher, the keeper of Graph subscriptions), held with a deadline and renewed.
CREATE TABLE role_leases (
    role        TEXT PRIMARY KEY NOT NULL,
    owner       TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    deadline    INTEGER NOT NULL
);
