-- Device authorization grants (RFC 8628). Device and user codes are stored
-- only as SHA-256 digests: a copy of the database lets nobody poll for
-- tokens. A row is pending until the user approves or denies it (once);
-- an approved one is redeemed once (used_at). Rows are kept for a while
-- after they expire, so late polls still answer expired_token and a
-- replayed device code is recognised.
CREATE TABLE nsauth_device_authorizations (
    id               TEXT PRIMARY KEY,
    device_code_hash BYTEA NOT NULL UNIQUE,
    user_code_hash   BYTEA NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    state            TEXT NOT NULL,
    user_id          TEXT REFERENCES nsauth_users (id) ON DELETE CASCADE,
    auth_time        BIGINT,
    amr              TEXT NOT NULL DEFAULT '',
    decided_at       BIGINT,
    used_at          BIGINT,
    last_polled_at   BIGINT,
    poll_interval_ms BIGINT NOT NULL
);
CREATE INDEX nsauth_device_authorizations_expires_at ON nsauth_device_authorizations (expires_at);
