-- calgate store, SQLite schema v6: the host application's access — API keys (only a salted hash
-- of each key is kept) and ICS feeds (only a hash of each feed's token is kept).

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- the public part of the key, by which it is found (the key is cgk_<key_id>_<secret>)
    key_id      TEXT NOT NULL UNIQUE,
    salt        BLOB NOT NULL,
    -- SHA-256(salt || key)
    hash        BLOB NOT NULL,
    -- space-separated: read, write, admin
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE feeds (
    id          INTEGER PRIMARY KEY,
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    -- SHA-256 of the feed's token (the URL holds the token; 256 random bits)
    token_hash  BLOB NOT NULL UNIQUE,
    -- the token's first characters, to tell feeds apart in a list
    token_hint  TEXT NOT NULL,
    privacy     TEXT NOT NULL CHECK (privacy IN ('full', 'busy-only', 'full-including-private')),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX feeds_by_mailbox ON feeds (mailbox_id);
