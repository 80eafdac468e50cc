-- Every access token revoked before its expiry, written in the transaction
-- that revokes it, so that servers can refuse the token without asking the
-- database on each call: they load the live rows at start, follow new ones
-- (by seq) and resync periodically. The rows do not reference the token
-- records, which deleting a user removes by cascade: the revocation must
-- outlive them until the token expires, when the row goes too.
CREATE TABLE nsauth_revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX nsauth_revocations_expires_at ON nsauth_revocations (expires_at);
