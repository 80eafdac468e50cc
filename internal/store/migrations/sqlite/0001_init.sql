-- nsauth built-in provider, schema version 1 (SQLite).
-- Times are Unix milliseconds. Secrets (codes, tokens, client secrets) are
-- stored only as SHA-256 digests; passwords only as argon2id hashes.

CREATE TABLE nsauth_users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE nsauth_clients (
    id            TEXT PRIMARY KEY,
    secret_hash   BLOB NOT NULL,
    redirect_uris TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE nsauth_instance_values (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE nsauth_auth_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    state                 TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    response_type         TEXT NOT NULL,
    response_mode         TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    prompt                TEXT NOT NULL,
    login_hint            TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    user_id               TEXT REFERENCES nsauth_users (id) ON DELETE CASCADE,
    auth_time             BIGINT,
    amr                   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX nsauth_auth_requests_expires_at ON nsauth_auth_requests (expires_at);

CREATE TABLE nsauth_auth_codes (
    code_hash       BLOB PRIMARY KEY,
    auth_request_id TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX nsauth_auth_codes_expires_at ON nsauth_auth_codes (expires_at);

CREATE TABLE nsauth_refresh_tokens (
    id         TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    audience   TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    amr        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX nsauth_refresh_tokens_family_id ON nsauth_refresh_tokens (family_id);
CREATE INDEX nsauth_refresh_tokens_user_id ON nsauth_refresh_tokens (user_id);
CREATE INDEX nsauth_refresh_tokens_expires_at ON nsauth_refresh_tokens (expires_at);

CREATE TABLE nsauth_access_tokens (
    id         TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX nsauth_access_tokens_grant_id ON nsauth_access_tokens (grant_id);
CREATE INDEX nsauth_access_tokens_user_id ON nsauth_access_tokens (user_id);
CREATE INDEX nsauth_access_tokens_expires_at ON nsauth_access_tokens (expires_at);

CREATE TABLE nsauth_signing_keys (
    id           TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    expires_at   BIGINT
);

CREATE TABLE nsauth_login_failures (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     INTEGER NOT NULL
);

CREATE TABLE nsauth_locks (
    name TEXT PRIMARY KEY
);
INSERT INTO nsauth_locks (name) VALUES ('signing_keys');
