-- calgate store, SQLite schema v2: connected accounts (delegated "Connect account").
--
-- A connected account is a user who signed in through a connection's app registration
-- (authorization code + PKCE, offline_access). calgate keeps the user's refresh token, sealed
-- like every other secret (AES-256-GCM, associated data 'calgate:account:<uid>'), and the
-- account's state. A mailbox of the same connection whose address is the account's UPN (or
-- mail) is synced with the account's delegated token instead of the app-only token.

CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY,
    -- removing a connection forgets its accounts' tokens
    connection_id        INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- random id, bound into the sealed refresh token as AEAD associated data
    uid                  TEXT NOT NULL UNIQUE,
    upn                  TEXT NOT NULL,
    upn_key              TEXT NOT NULL,
    mail                 TEXT,
    mail_key             TEXT,
    display_name         TEXT,
    -- the user's object id in Entra ID
    user_id              TEXT,
    sealed_refresh_token BLOB NOT NULL,
    -- the delegated scopes granted, space-separated, as Entra ID returned them
    scopes               TEXT NOT NULL,
    -- 'v2' (/oauth2/v2.0/token, scope=) or 'v1' (/oauth2/token, resource=): legacy registrations
    endpoint             TEXT NOT NULL CHECK (endpoint IN ('v2', 'v1')),
    state                TEXT NOT NULL CHECK (state IN ('ok', 'reconnect-needed')),
    state_message        TEXT,
    state_at             INTEGER NOT NULL,
    connected_at         INTEGER NOT NULL,
    -- the last successful use of the refresh token (or the connect itself)
    refreshed_at         INTEGER NOT NULL,
    UNIQUE (connection_id, upn_key)
);
CREATE INDEX accounts_by_upn ON accounts (upn_key);
CREATE INDEX accounts_by_mail ON accounts (mail_key);
