-- Revocations looked up by token id and read by time (issue 27): a server
-- whose in-memory set of revoked tokens is full asks the database about each
-- token it does not hold, one probe of the token_id index; and a follower
-- reads again only the rows revoked since shortly before its last read (a
-- range of the revoked_at index), not every live row, since sequence values
-- may commit out of order.
CREATE INDEX nsauth_revocations_token_id ON nsauth_revocations (token_id);
CREATE INDEX nsauth_revocations_revoked_at ON nsauth_revocations (revoked_at);
