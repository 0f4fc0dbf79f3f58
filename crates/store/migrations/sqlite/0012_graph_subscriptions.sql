-- calgate store, SQLite schema v12: change notifications. One row per linked mailbox that
-- calgate asked Graph to notify it about: the subscription, when it expires, and whether it is
-- working (`active`) or not (`failing`: calgate polls the mailbox meanwhile, and says why).
-- The clientState is a secret that every notification must echo: only its SHA-256 is kept,
-- and notifications are checked against it in constant time.
CREATE TABLE graph_subscriptions (
    mailbox_id        INTEGER PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE,
    subscription_id   TEXT UNIQUE,
    client_state_hash BLOB,
    expires_at        INTEGER,
    state             TEXT NOT NULL CHECK (state IN ('active', 'failing')),
    reason            TEXT,
    failures          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    updated_at        INTEGER NOT NULL,
    CHECK ((state = 'active') = (subscription_id IS NOT NULL AND client_state_hash IS NOT NULL
                                 AND expires_at IS NOT NULL))
);
