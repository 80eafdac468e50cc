-- Login flows after the first factor (issue 22). Every step after the
-- password (second factor, enrolment, the passkey offer, the recovery
-- codes) is a row of nsauth_mfa_pending, found only by the digest of the
-- step's random token joined to the browser's CSRF token: a step works in
-- the browser that gave the password and in no other.
--
-- ceremony: the WebAuthn ceremony of this step (the library's session
-- data as JSON: a challenge, never a secret that logs anyone in), taken
-- once by the answer. steps: what the flow has done so far, a
-- comma-separated list ("enrol_link": it began with an enrolment link and
-- has no auth request; "offered": the offer of a passkey was answered).
ALTER TABLE nsauth_mfa_pending ADD COLUMN ceremony TEXT;
ALTER TABLE nsauth_mfa_pending ADD COLUMN steps TEXT NOT NULL DEFAULT '';

-- Enrolment links (nsauth users enrol-link NAME): one live link per user,
-- single use, short-lived. Only the SHA-256 digest of the link's 256-bit
-- random secret is stored. Whoever holds the link and the user's password
-- may add a second factor to that account, once.
CREATE TABLE nsauth_enrol_links (
    user_id    TEXT PRIMARY KEY REFERENCES nsauth_users (id) ON DELETE CASCADE,
    link_hash  BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX nsauth_enrol_links_expires_at ON nsauth_enrol_links (expires_at);
