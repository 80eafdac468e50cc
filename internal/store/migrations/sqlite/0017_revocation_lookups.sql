-- Revocations looked up by token id (issue 27): a server whose in-memory
-- set of revoked tokens is full asks the database about each token it does
-- not hold, one probe of this index. SQLite followers read new rows by seq
-- (the primary key) and need no other index.
CREATE INDEX nsauth_revocations_token_id ON nsauth_revocations (token_id);
