-- Every access token revoked before its expiry, written in the transaction
-- that revokes it, so that replicas can refuse the token without asking the
-- database on each call: they load the live rows at start, learn of new
-- ones by LISTEN/NOTIFY (the notification carries them) and resync
-- periodically. The rows do not reference the token records, which
-- deleting a user removes by cascade: the revocation must outlive them
-- until the token expires, when the row goes too.
CREATE TABLE nsauth_revocations (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX nsauth_revocations_expires_at ON nsauth_revocations (expires_at);
