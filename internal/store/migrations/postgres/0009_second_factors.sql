-- Second factors (issue 15). Times are Unix milliseconds.
--
-- nsauth_totp: a user's confirmed TOTP secret (RFC 6238), sealed under the
-- keyring like the signing keys, bound to this table, column and user id.
-- last_step is the time step of the last code accepted: a code whose step
-- is not above it is refused, so no code works twice (replicas included:
-- the update that accepts a code is one conditional statement).
CREATE TABLE nsauth_totp (
    user_id    TEXT PRIMARY KEY REFERENCES nsauth_users (id) ON DELETE CASCADE,
    secret     BYTEA NOT NULL,
    last_step  BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- nsauth_recovery_codes: single-use recovery codes, as SHA-256 digests of
-- high-entropy random codes. Using one deletes its row.
CREATE TABLE nsauth_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- nsauth_mfa_pending: a login between its password and its second factor
-- (or its enrolment, when the policy requires one). The browser holds a
-- random token; the row holds its digest, the auth request it belongs to,
-- the user and the methods used so far. totp_secret is the secret offered
-- during a browser enrolment, sealed, bound to the row. Single use: the
-- row is deleted when the login goes on; expired rows are deleted with
-- the other expired records.
CREATE TABLE nsauth_mfa_pending (
    token_hash      BYTEA PRIMARY KEY,
    auth_request_id TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    amr             TEXT NOT NULL,
    kind            TEXT NOT NULL,
    totp_secret     BYTEA,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX nsauth_mfa_pending_user_id ON nsauth_mfa_pending (user_id, created_at);
CREATE INDEX nsauth_mfa_pending_expires_at ON nsauth_mfa_pending (expires_at);

-- How the user of an access token authenticated (its grant's amr, RFC
-- 8176), for introspection; '' for machine tokens and older records.
ALTER TABLE nsauth_access_tokens ADD COLUMN amr TEXT NOT NULL DEFAULT '';
