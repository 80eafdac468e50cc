-- Connectors (issue 28): login methods backed by an upstream identity
-- source, the users bound to upstream identities, and the sign-ins
-- waiting at an upstream provider. Times are Unix milliseconds; booleans
-- are 0 or 1.
--
-- nsauth_connectors: settings is the type's settings as JSON (never a
-- secret); secret is the client secret or LDAP bind password, sealed
-- under the keyring and bound to the connector's name (NULL: none).
CREATE TABLE nsauth_connectors (
    name               TEXT PRIMARY KEY,
    type               TEXT NOT NULL,
    display_name       TEXT NOT NULL DEFAULT '',
    settings           TEXT NOT NULL,
    secret             BLOB,
    create_users       INTEGER NOT NULL DEFAULT 0,
    trust_upstream_mfa INTEGER NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    disabled_at        BIGINT
);

-- nsauth_identities: a user bound to (connector, upstream subject), the
-- only way a connector sign-in finds a user; at most one identity per
-- user and connector. group_names is a JSON array of the groups seen at the
-- last sign-in, prefixed with the connector's name; state is what a
-- refresh check needs, sealed and bound to the identity (NULL: none).
CREATE TABLE nsauth_identities (
    connector     TEXT NOT NULL REFERENCES nsauth_connectors (name) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    group_names   TEXT NOT NULL DEFAULT '[]',
    state         BLOB,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT,
    checked_at    BIGINT,
    PRIMARY KEY (connector, subject),
    UNIQUE (user_id, connector)
);

-- nsauth_connector_pending: a sign-in waiting at an upstream provider,
-- under the digest of its key (the state sent upstream joined to the
-- browser's CSRF token). Single use: taking it deletes the row; expired
-- rows are deleted with the other expired records. auth_request is the
-- sealed auth request the sign-in is for; empty, with enrol_link 1, for a
-- sign-in that opens an enrolment link (whose secret stays in the
-- browser).
CREATE TABLE nsauth_connector_pending (
    key_hash     BLOB PRIMARY KEY,
    connector    TEXT NOT NULL REFERENCES nsauth_connectors (name) ON DELETE CASCADE,
    auth_request TEXT NOT NULL,
    enrol_link   INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX nsauth_connector_pending_expires_at ON nsauth_connector_pending (expires_at);
