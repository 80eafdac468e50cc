-- Apps, browser sessions and consents (issue 24).
--
-- Apps are the native clients of nsauth_clients (kind 'native'): their id
-- is their name, kept in the name column too, so that apps and machine
-- clients share one namespace (the unique index on name). A public app
-- has an empty secret_hash (it holds no secret). Booleans are 0 or 1.
-- Lists of URIs are JSON arrays (as redirect_uris); scopes, grant types
-- and audiences are space-separated. token_ttl_ms is an app's access-token
-- lifetime, refresh_token_ttl_ms its refresh-token lifetime (0: the
-- server's).
ALTER TABLE nsauth_clients ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_clients ADD COLUMN is_public INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nsauth_clients ADD COLUMN native INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nsauth_clients ADD COLUMN third_party INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nsauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nsauth_clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_clients ADD COLUMN refresh_token_ttl_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nsauth_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';

-- The native clients registered so far are the broker's (nsauth-cli): a
-- native, first-party app with the code flow, refreshing and the device
-- flow, and no post-logout redirect URIs. It takes its id as its name
-- unless a machine client has that name already.
UPDATE nsauth_clients SET native = 1,
    grant_types = 'authorization_code refresh_token urn:ietf:params:oauth:grant-type:device_code',
    updated_at = COALESCE(updated_at, created_at)
    WHERE kind = 'native';
UPDATE nsauth_clients SET name = id
    WHERE kind = 'native' AND name IS NULL
    AND NOT EXISTS (SELECT 1 FROM nsauth_clients AS m WHERE m.name = nsauth_clients.id);

-- Browser sessions: the cookie's value is stored only as its digest.
-- browser is the device cookie's id the session is bound to. A session
-- ends (ended_at) when signed out or revoked, or when it passes
-- expires_at; last_seen_at measures its idleness.
CREATE TABLE nsauth_browser_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    browser      TEXT NOT NULL,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX nsauth_browser_sessions_user_id ON nsauth_browser_sessions (user_id);
CREATE INDEX nsauth_browser_sessions_expires_at ON nsauth_browser_sessions (expires_at);

-- The grants (one per app login; the grant id is the completed auth
-- request's id, the family of its refresh tokens) issued within a session.
CREATE TABLE nsauth_session_grants (
    session_id TEXT NOT NULL REFERENCES nsauth_browser_sessions (id) ON DELETE CASCADE,
    grant_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    offline    INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (session_id, grant_id)
);
CREATE INDEX nsauth_session_grants_grant_id ON nsauth_session_grants (grant_id);

-- What users allowed third-party apps: space-separated scopes.
CREATE TABLE nsauth_consents (
    user_id    TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX nsauth_consents_client_id ON nsauth_consents (client_id);

-- Requested resources (RFC 8707 audiences besides nsauth's own), carried
-- from the completed auth request to its refresh and access tokens, and
-- the request's max_age (NULL: none).
ALTER TABLE nsauth_auth_requests ADD COLUMN resources TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_auth_requests ADD COLUMN max_age_ms BIGINT;
ALTER TABLE nsauth_refresh_tokens ADD COLUMN resources TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_access_tokens ADD COLUMN resources TEXT NOT NULL DEFAULT '';
