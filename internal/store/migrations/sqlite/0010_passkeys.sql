-- Passkeys (issue 15): WebAuthn credentials, several per user, each named.
-- Only public keys are stored. credential_id is the authenticator's
-- credential id (unique across users); flags is a bit set: 1 user
-- verified at registration, 2 backup eligible, 4 backed up, 8 a clone
-- warning was seen. transports is space-separated.
CREATE TABLE nsauth_passkeys (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    credential_id    BLOB NOT NULL UNIQUE,
    public_key       BLOB NOT NULL,
    sign_count       BIGINT NOT NULL DEFAULT 0,
    flags            INTEGER NOT NULL DEFAULT 0,
    transports       TEXT NOT NULL DEFAULT '',
    aaguid           BLOB,
    attestation_type TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    UNIQUE (user_id, name)
);
CREATE INDEX nsauth_passkeys_user_id ON nsauth_passkeys (user_id);

-- WebAuthn ceremonies in progress: at most one per pending auth request
-- (a new one replaces the old), used once (taken, then gone), expiring
-- with the auth request at the latest. session is the library's
-- SessionData as JSON: a challenge, never a secret that logs anyone in.
CREATE TABLE nsauth_passkey_ceremonies (
    auth_request_id TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT NOT NULL DEFAULT '',
    session         TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX nsauth_passkey_ceremonies_expires_at ON nsauth_passkey_ceremonies (expires_at);
